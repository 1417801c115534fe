"""Concurrent writers of the same sessions: no lost links, no double counts, no deadlocks."""

import contextlib
import threading
from datetime import timedelta

import pytest
from django.db import connection

from conversations import services
from conversations.models import Conversation
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.scans import topic_links, topic_names

pytestmark = pytest.mark.django_db(transaction=True)


def item(session_id: str, *, topics=(), csat=None, csat_given=False, turns=1) -> ConversationIn:
    return ConversationIn(
        session_id=session_id,
        timestamp=T0 - timedelta(hours=1),
        turns=turns,
        resolved_by_ai=True,
        topics=tuple(topics),
        csat=csat,
        csat_given=csat_given,
    )


def run_together(*batches: list[ConversationIn]) -> list:
    """Ingest each batch in its own thread (own connection), released at the same moment."""
    barrier = threading.Barrier(len(batches))
    results, errors = [None] * len(batches), []

    def work(index: int, batch: list[ConversationIn]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = services.conversations_ingest(items=batch)
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=pair) for pair in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.parametrize("round_", range(5))
def test_same_new_session_from_two_clients_is_stored_once_with_one_set_of_topics(round_):
    results = run_together([item("x", topics=["refund"], turns=1)], [item("x", topics=["billing"], turns=2)])

    assert sorted((r.created, r.updated) for r in results) == [(0, 1), (1, 0)]
    stored = Conversation.objects.get(session_id="x")
    topics = topic_names(stored)
    # Whichever came last wins, whole: its turns and its topics, nothing of the other.
    assert (stored.turns, topics) in [(1, ["refund"]), (2, ["billing"])]
    assert topic_links() == 1


@pytest.mark.parametrize("round_", range(5))
def test_batches_with_and_without_csat_in_opposite_orders_do_not_deadlock(round_):
    services.conversations_ingest(items=[item("a"), item("b")])
    first = [item("a", csat=5, csat_given=True), item("b")]
    second = [item("a"), item("b", csat=1, csat_given=True)]

    results = run_together(first, second)

    assert [(r.created, r.updated) for r in results] == [(0, 2), (0, 2)]
    assert Conversation.objects.get(session_id="a").csat == 5
    assert Conversation.objects.get(session_id="b").csat == 1


def test_many_overlapping_batches_store_every_session_once():
    batches = [
        [item(f"s{(offset + i) % 12}", topics=[f"t{offset}"]) for i in range(7)] for offset in range(6)
    ]
    results = run_together(*batches)
    assert Conversation.objects.count() == 12
    assert sum(result.created for result in results) == 12
    # Each conversation keeps exactly the topic of the batch that wrote it last.
    assert topic_links() == 12


def test_concurrent_writers_of_one_customer_never_deadlock_or_miscount():
    """Six writers post, re-post, move, re-score and delete conversations of the same two
    customers at once (single posts, batches with the other customer's, late CSATs): each write
    changes which of the others count as followed up. None may deadlock, and in the end every
    flag and every figure equals a recount."""
    from conversations.analytics import selectors
    from conversations.analytics.query import Filters, Period
    from conversations.customers import customer_hash
    from tests.scans import assert_follow_ups_exact, full_scan

    ann, bob = customer_hash("ann"), customer_hash("bob")
    hour = timedelta(hours=1)

    def one(session_id: str, hours: int, customer: bytes) -> ConversationIn:
        return ConversationIn(
            session_id=session_id,
            timestamp=T0 - timedelta(days=20) + hours * hour,
            turns=1,
            resolved_by_ai=hours % 3 != 0,
            customer_hash=customer,
            customer_given=True,
        )

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer(number: int) -> None:
        try:
            barrier.wait(timeout=10)
            for step in range(12):
                hours = (number * 37 + step * 53) % 400
                customer = ann if (number + step) % 2 else bob
                session = f"w{number}-{step % 5}"
                if step % 4 == 3:
                    # A batch of both customers' conversations, more than a small write.
                    services.conversations_ingest(
                        items=[one(f"b{number}-{i}", hours + 24 * i, (ann, bob)[i % 2]) for i in range(12)]
                    )
                elif step % 5 == 4:
                    services.conversations_delete(session_ids=[f"w{(number + 1) % 6}-{step % 5}"])
                elif step % 6 == 5:
                    with contextlib.suppress(Conversation.DoesNotExist):
                        services.conversation_set_csat(session_id=f"w{(number + 2) % 6}-0", csat=4)
                else:
                    services.conversations_ingest(items=[one(session, hours, customer)])
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors

    assert Conversation.objects.filter(followed_up=True).exists()
    assert_follow_ups_exact()
    period = Period(start=T0 - timedelta(days=30), end=T0)
    assert selectors.window_totals(period=period, filters=Filters()) == full_scan(period, Filters())
