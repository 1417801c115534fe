"""A new bot version's first conversation makes its release annotation, once (issue 17).

Most tests here commit (transaction=True): what is under test is what happens at commit and
between writers with connections of their own. conftest makes every test start in a process
that has seen no version recorded.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from conversations import services
from conversations.management.commands import import_jsonl
from conversations.models import Annotation, BotVersion, Conversation
from conversations.services import ConversationIn
from tests.conftest import T0

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)


def conversation(session_id: str, *, version: str, at) -> ConversationIn:
    return ConversationIn(
        session_id=session_id, timestamp=at, turns=2, resolved_by_ai=True, bot_version=version
    )


def releases() -> list[tuple]:
    """Every annotation, as (kind, version, time, title, channel, external id), in time order."""
    return [
        (a.kind, a.bot_version, a.timestamp, a.title, a.channel, a.external_id)
        for a in Annotation.objects.order_by("timestamp", "bot_version", "id")
    ]


def release(version: str, at) -> tuple:
    return ("release", version, at, f"Bot version {version} released", "", "")


def recorded() -> dict:
    return dict(BotVersion.objects.values_list("version", "first_seen"))


def test_a_conversation_with_a_new_version_makes_its_release_annotation():
    services.conversations_ingest(items=[conversation("a", version="2.4.0", at=T0 - HOUR)], details=True)

    assert releases() == [release("2.4.0", T0 - HOUR)]
    assert recorded() == {"2.4.0": T0 - HOUR}


def test_a_batch_makes_one_per_new_version_at_its_earliest_conversation_and_none_without_one():
    services.conversations_ingest(
        items=[
            conversation("a", version="2.0", at=T0 - 2 * HOUR),
            conversation("b", version="2.0", at=T0 - 5 * HOUR),  # the earliest of 2.0
            conversation("c", version="2.1", at=T0 - HOUR),
            conversation("d", version="", at=T0 - 9 * HOUR),  # no version: no release
            conversation("e", version="2.0", at=T0 - 3 * HOUR),
        ]
    )

    assert releases() == [release("2.0", T0 - 5 * HOUR), release("2.1", T0 - HOUR)]
    assert recorded() == {"2.0": T0 - 5 * HOUR, "2.1": T0 - HOUR}


def test_a_known_version_makes_none_and_its_time_never_moves():
    services.conversations_ingest(items=[conversation("a", version="2.0", at=T0 - HOUR)])
    # A later post with an earlier timestamp, from another process (nothing in memory).
    services.forget_recorded_versions()
    services.conversations_ingest(items=[conversation("b", version="2.0", at=T0 - 30 * HOUR)])
    # And a re-post of the first conversation, moved earlier.
    services.conversations_ingest(items=[conversation("a", version="2.0", at=T0 - 40 * HOUR)])

    assert releases() == [release("2.0", T0 - HOUR)]
    assert recorded() == {"2.0": T0 - HOUR}


def test_an_annotation_deleted_by_staff_does_not_come_back():
    services.conversations_ingest(items=[conversation("a", version="2.0", at=T0 - HOUR)])
    Annotation.objects.get().delete()
    services.forget_recorded_versions()

    services.conversations_ingest(items=[conversation("b", version="2.0", at=T0)])

    assert releases() == []
    assert recorded() == {"2.0": T0 - HOUR}


def test_once_committed_a_version_costs_no_statement_in_this_process():
    def to_record(version: str) -> tuple:
        prepared = services.conversations_ingest_prepare(items=[conversation("x", version=version, at=T0)])
        return prepared.releases

    assert to_record("2.0") == (("2.0", T0),)
    services.conversations_ingest(items=[conversation("a", version="2.0", at=T0 - HOUR)])

    assert to_record("2.0") == ()
    assert to_record("") == ()  # never a release
    assert to_record("2.1") == (("2.1", T0),)


def test_a_version_whose_write_rolled_back_is_neither_recorded_nor_remembered():
    with transaction.atomic():
        services.conversations_ingest(items=[conversation("a", version="2.0", at=T0 - HOUR)])
        assert [a.bot_version for a in Annotation.objects.all()] == ["2.0"]  # in the transaction
        transaction.set_rollback(True)

    assert releases() == [] and recorded() == {}
    services.conversations_ingest(items=[conversation("b", version="2.0", at=T0 - 2 * HOUR)])

    assert releases() == [release("2.0", T0 - 2 * HOUR)]


def test_the_ingest_api_makes_them_for_a_single_post_and_an_array(ingest_client):
    single = {"session_id": "one", "turns": 1, "resolved_by_ai": True, "bot_version": " 3.0 "}
    assert ingest_client.post(
        "/api/conversations/", {**single, "timestamp": "2026-03-14T08:00:00Z"}, format="json"
    )
    array = [
        {**single, "session_id": f"many-{n}", "bot_version": version, "timestamp": f"2026-03-14T0{n}:00:00Z"}
        for n, version in enumerate(["3.1", "3.0", "3.1", "3.2"])
    ]
    assert ingest_client.post("/api/conversations/", array, format="json").json() == {
        "created": 4,
        "updated": 0,
    }

    assert releases() == [
        release("3.1", T0 - 12 * HOUR),  # 00:00, the earliest 3.1 of the array
        release("3.2", T0 - 9 * HOUR),
        release("3.0", T0 - 4 * HOUR),  # trimmed as the conversation's label; the single post's time
    ]


def test_the_jsonl_import_makes_them(tmp_path, monkeypatch):
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 2)  # several batches, written by several writers
    lines = [
        {"session_id": f"s{n}", "turns": 1, "resolved_by_ai": True, "bot_version": version, "timestamp": at}
        for n, (version, at) in enumerate(
            [
                ("1.0", "2026-03-10T10:00:00"),
                ("1.0", "2026-03-10T09:00:00"),
                ("", "2026-03-01T00:00:00"),
                ("1.1", "2026-03-12T00:00:00"),
                ("1.1", "2026-03-12T00:00:00"),
                ("1.0", "2026-03-11T00:00:00"),
                ("1.1", "2026-03-12T01:00:00"),
            ]
        )
    ]
    path = tmp_path / "analytics.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    call_command("import_jsonl", str(path), "--no-progress", stdout=StringIO(), stderr=StringIO())

    assert Conversation.objects.count() == 7
    # One each; the time of whichever batch recorded it first (its own earliest).
    assert [(kind, version) for kind, version, *_ in releases()] == [("release", "1.0"), ("release", "1.1")]
    assert recorded() == {
        annotation.bot_version: annotation.timestamp for annotation in Annotation.objects.all()
    }
    assert recorded()["1.0"] in {T0.replace(day=10, hour=9), T0.replace(day=11, hour=0)}
    assert recorded()["1.1"] in {T0.replace(day=12, hour=0), T0.replace(day=12, hour=1)}


def run_together(*work) -> None:
    """Each callable in its own thread (own connection), released at the same moment."""
    barrier = threading.Barrier(len(work))
    errors = []

    def run(job) -> None:
        try:
            barrier.wait(timeout=10)
            job()
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_writers_of_one_new_version_make_exactly_one_annotation(round_):
    batches = [
        [conversation(f"w{writer}-{n}", version="5.0", at=T0 - (writer + n + 1) * HOUR) for n in range(3)]
        + [conversation(f"w{writer}-own", version=f"5.0-w{writer}", at=T0)]
        for writer in range(4)
    ]
    # Prepared before they start: every writer then carries the new version to the database
    # (none skips it for having seen another's commit), where the unique index decides.
    prepared = [services.conversations_ingest_prepare(items=batch) for batch in batches]
    assert all(("5.0", T0 - (writer + 3) * HOUR) in p.releases for writer, p in enumerate(prepared))

    run_together(*[lambda p=p: services.conversations_ingest_write(p) for p in prepared])

    [shared] = Annotation.objects.filter(bot_version="5.0")
    # The winner's earliest 5.0 conversation: writer w's is at T0 − (w + 3) h.
    assert shared.timestamp in {T0 - (writer + 3) * HOUR for writer in range(4)}
    assert shared.timestamp == recorded()["5.0"]
    assert sorted(Annotation.objects.values_list("bot_version", flat=True)) == [
        "5.0",
        "5.0-w0",
        "5.0-w1",
        "5.0-w2",
        "5.0-w3",
    ]


@pytest.mark.parametrize("first_commits", [True, False])
def test_a_second_writer_waits_for_the_first_and_annotates_only_if_it_rolled_back(first_commits):
    """Writer 1 has recorded 6.0 and not committed; writer 2's insert of 6.0 waits on the unique
    index (different sessions, topics and customers: nothing else to wait for) until writer 1
    ends, then inserts nothing (committed) or its own (rolled back)."""
    recorded_uncommitted, finish = threading.Event(), threading.Event()
    errors = []

    def first() -> None:
        try:
            with transaction.atomic():
                services.conversations_ingest(items=[conversation("one", version="6.0", at=T0 - HOUR)])
                recorded_uncommitted.set()
                assert finish.wait(timeout=10)
                transaction.set_rollback(not first_commits)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def second() -> None:
        try:
            services.conversations_ingest(items=[conversation("two", version="6.0", at=T0 - 9 * HOUR)])
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    writer_1 = threading.Thread(target=first)
    writer_1.start()
    assert recorded_uncommitted.wait(timeout=10)
    writer_2 = threading.Thread(target=second)
    writer_2.start()
    writer_2.join(timeout=0.5)
    assert writer_2.is_alive()  # waiting for writer 1

    finish.set()
    writer_1.join(timeout=10)
    writer_2.join(timeout=10)

    assert not errors, errors
    assert sorted(Conversation.objects.values_list("session_id", flat=True)) == (
        ["one", "two"] if first_commits else ["two"]
    )
    assert releases() == [release("6.0", T0 - HOUR if first_commits else T0 - 9 * HOUR)]


# --- Migration 0017's backfill (tests/test_migrations.py runs the migration itself) ---------


def test_the_backfill_records_each_stored_version_at_its_earliest_conversation():
    services.conversations_ingest(
        items=[
            conversation("a", version="1.0", at=T0 - 50 * HOUR),
            conversation("b", version="1.0", at=T0 - 70 * HOUR),
            conversation("c", version="1.1", at=T0 - 20 * HOUR),
            conversation("d", version="", at=T0 - 99 * HOUR),
        ]
    )
    # As a database from before 0017: conversations, no versions recorded.
    Annotation.objects.all().delete()
    BotVersion.objects.all().delete()
    services.forget_recorded_versions()
    services.conversations_ingest(items=[conversation("e", version="1.0", at=T0 - 90 * HOUR)], details=True)
    BotVersion.objects.filter(version="1.0").delete()  # 1.0's annotation stays, as if made by staff
    Annotation.objects.update(title="Kept")
    BotVersion.objects.create(version="0.9", first_seen=T0 - 500 * HOUR)  # recorded, no conversation

    assert services.bot_versions_backfill() == 2

    assert recorded() == {"0.9": T0 - 500 * HOUR, "1.0": T0 - 90 * HOUR, "1.1": T0 - 20 * HOUR}
    assert releases() == [
        ("release", "1.0", T0 - 90 * HOUR, "Kept", "", ""),
        release("1.0", T0 - 90 * HOUR),
        release("1.1", T0 - 20 * HOUR),
    ]
    assert services.bot_versions_backfill() == 0  # run again: nothing new
