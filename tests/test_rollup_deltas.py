"""Small writes leave their rollup changes in RollupDelta; `rollups.fold` moves them in.

Reads count the deltas not folded yet, so every figure is exact before and after a fold
(tests/test_rollups.py checks that on random data, with folds at random moments).
"""

from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from conversations import rollups, services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Period
from conversations.models import ConversationRollup, RollupDelta, TopicRollup
from conversations.services import ConversationIn
from tests.conftest import T0

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAY = Period(start=T0 - timedelta(days=1), end=T0)


def item(session_id: str, **overrides) -> ConversationIn:
    fields = {
        "session_id": session_id,
        "timestamp": T0 - timedelta(hours=3, minutes=10),
        "turns": 4,
        "resolved_by_ai": True,
        "topics": ("billing",),
        "avg_response_ms": 850.5,
        "channel": "web",
        "bot_version": "2.0",
    }
    return ConversationIn(**(fields | overrides))


def rollup_rows() -> set[tuple]:
    def frozen(row) -> tuple:
        return tuple(tuple(value) if isinstance(value, list) else value for value in row)

    rows = set()
    for model in (ConversationRollup, TopicRollup):
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        rows |= {(model.__name__, *frozen(row)) for row in model.objects.values_list(*fields)}
    return {row for row in rows if row[-len(rollups.METRICS) - 1 :] != (*[0] * len(rollups.METRICS), row[-1])}


def test_a_single_conversation_goes_to_the_deltas_and_is_counted_before_and_after_the_fold():
    services.conversations_ingest(items=[item("a")], details=True)
    services.conversation_set_csat(session_id="a", csat=4)

    # Put in (+1), then the score: taken out (−1) and put in again (+1).
    assert sorted(RollupDelta.objects.values_list("sign", "csat"), key=str) == [(-1, None), (1, 4), (1, None)]
    assert not ConversationRollup.objects.exists()
    before = selectors.summary(period=DAY, filters=Filters())
    assert before.totals.conversations == 1
    assert (before.totals.csat_4, before.totals.response_ms_count) == (1, 1)
    topics = selectors.topic_breakdown(period=DAY, filters=Filters(channel="web"))
    assert [(topic.topic, topic.totals.conversations) for topic in topics] == [("billing", 1)]

    assert rollups.fold() == 3

    assert not RollupDelta.objects.exists()
    folded = ConversationRollup.objects.filter(channel=None, conversations=1, csat_4=1)
    assert sorted(folded.values_list("span", flat=True)) == ["d", "h", "q"]
    assert selectors.summary(period=DAY, filters=Filters()) == before


def test_batches_update_the_rollups_themselves():
    services.conversations_ingest(items=[item(f"s{n}") for n in range(services._SMALL_BATCH_MAX + 1)])

    assert not RollupDelta.objects.exists()
    assert ConversationRollup.objects.get(span="h", channel=None).conversations == 11


def test_a_fold_while_another_runs_moves_nothing():
    services.conversations_ingest(items=[item("a")])
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"],
        port=settings["PORT"] or None,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s, 0)", [rollups._FOLD_LOCK_CLASS])  # "folding"

        assert rollups.fold() == 0
        assert RollupDelta.objects.count() == 1

        other.execute("SELECT pg_advisory_unlock(%s, 0)", [rollups._FOLD_LOCK_CLASS])
    assert rollups.fold() == 1


def test_rebuild_takes_the_deltas_in():
    services.conversations_ingest(items=[item("a"), item("b", channel="email")])
    services.conversation_set_csat(session_id="b", csat=2)
    with transaction.atomic():
        rollups.fold()
        folded = rollup_rows()
        transaction.set_rollback(True)
    assert RollupDelta.objects.exists()

    call_command("rebuild_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert not RollupDelta.objects.exists()
    assert rollup_rows() == folded


def test_fold_if_due_folds_what_this_process_wrote_every_quarter_second_and_anything_every_minute(
    monkeypatch,
):
    folds = []
    clock = [1000.0]
    monkeypatch.setattr(rollups, "fold", lambda: folds.append(clock[0]))
    monkeypatch.setattr(rollups.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(rollups, "_last_fold", 0.0)
    monkeypatch.setattr(rollups, "_pending", True)
    connection.ensure_connection()

    rollups.fold_if_due()  # the test's transaction is open
    assert folds == []

    monkeypatch.setattr(connections[DEFAULT_DB_ALIAS], "in_atomic_block", False)  # as in production
    rollups.fold_if_due()
    rollups.deltas_written()
    clock[0] += rollups.FOLD_SECONDS / 2
    rollups.fold_if_due()  # written, but folded less than FOLD_SECONDS ago
    assert folds == [1000.0]
    clock[0] += rollups.FOLD_SECONDS
    rollups.fold_if_due()
    assert len(folds) == 2
    clock[0] += 1
    rollups.fold_if_due()  # nothing written since
    assert len(folds) == 2
    clock[0] += rollups.FOLD_ANYWAY_SECONDS
    rollups.fold_if_due()  # nothing written, but a minute has gone by (others' deltas)
    assert len(folds) == 3


@pytest.mark.django_db(transaction=True)
def test_the_api_folds_after_its_responses(ingest_client, monkeypatch):
    monkeypatch.setattr(rollups, "_last_fold", 0.0)
    body = {"session_id": "a", "turns": 2, "resolved_by_ai": True, "timestamp": "2026-03-14T11:00:00Z"}

    response = ingest_client.post("/api/conversations/", body, format="json")

    assert response.status_code == 201
    assert not RollupDelta.objects.exists()  # folded once the response was out
    assert ConversationRollup.objects.get(span="h", channel=None).conversations == 1
