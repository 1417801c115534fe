"""A write outside any transaction is its own transaction, BEGIN to COMMIT in one pipeline."""

from datetime import timedelta

import psycopg
import pytest
from django.db import DataError, connection, transaction

from conversations import services
from conversations.models import Conversation, Topic
from conversations.services import ConversationIn
from tests.conftest import T0

pytestmark = pytest.mark.django_db(transaction=True)


def item(session_id: str, *, topics=("billing",)) -> ConversationIn:
    return ConversationIn(
        session_id=session_id, timestamp=T0 - timedelta(hours=1), turns=2, resolved_by_ai=True, topics=topics
    )


def status() -> psycopg.pq.TransactionStatus:
    return connection.connection.info.transaction_status


def seen_by_another_connection() -> set[str]:
    settings = connection.settings_dict
    with psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or None
    ) as other:
        return {row[0] for row in other.execute("SELECT session_id FROM conversations_conversation")}


def test_it_is_committed_when_it_returns():
    assert connection.get_autocommit()
    result = services.conversations_ingest(items=[item("a")], details=True)

    assert result.created == 1
    assert status() == psycopg.pq.TransactionStatus.IDLE  # no transaction left open
    assert seen_by_another_connection() == {"a"}


def test_a_failing_write_leaves_nothing_and_the_connection_usable(monkeypatch):
    # The statement of a small batch without details fails, after the topics are created.
    monkeypatch.setitem(services._INGEST_STATEMENTS, (False, True), services._Native.of("SELECT 1 / 0"))

    with pytest.raises(DataError, match="division by zero"):
        services.conversations_ingest(items=[item("a", topics=("fresh",))])

    assert status() == psycopg.pq.TransactionStatus.IDLE  # rolled back, not left aborted
    assert not Topic.objects.filter(name="fresh").exists()  # created in the same transaction
    monkeypatch.undo()
    services.conversations_ingest(items=[item("b")])
    assert seen_by_another_connection() == {"b"}


def test_inside_a_transaction_the_caller_commits_or_rolls_back():
    with transaction.atomic():
        services.conversations_ingest(items=[item("a")])
        assert seen_by_another_connection() == set()  # not committed yet
        transaction.set_rollback(True)
    assert not Conversation.objects.exists()


def test_preparing_a_batch_touches_no_database_and_writing_it_stores_it(django_assert_num_queries):
    # import_jsonl prepares batches in its parsing thread, which has no connection of its own.
    with django_assert_num_queries(0):
        prepared = services.conversations_ingest_prepare(items=[item("b"), item("a"), item("b", topics=())])

    assert list(prepared.items) == ["a", "b"]  # the last item of each session, sorted
    assert prepared.topics == {"billing"}
    result = services.conversations_ingest_write(prepared)

    assert (result.created, result.updated) == (2, 0)
    assert seen_by_another_connection() == {"a", "b"}
    assert Conversation.objects.get(session_id="b").topic_ids == []  # its last item had none
