"""Concurrent writers of the same sessions: no lost links, no double counts, no deadlocks."""

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
