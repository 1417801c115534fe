"""Migration 0008: topic links become topic ids in the conversation row, and back; 0010 builds
the rollups a database lacks, 0011 those without quarter-hour rows; 0017 records the stored bot
versions with their release annotations."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from conversations.models import ConversationRollup, TopicRollup

BEFORE = ("conversations", "0007_rate_limit_counter")
AFTER = ("conversations", "0008_topic_ids_in_row")
ROLLUPS_BUILT = ("conversations", "0011_rollup_quarter_hours")
T = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return MigrationExecutor(connection).loader.project_state([target]).apps


def rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture
def at_0007():
    yield migrate(BEFORE)
    call_command("migrate", verbosity=0)  # the latest schema again, for the tests that follow


@pytest.mark.django_db(transaction=True)
def test_links_move_into_the_rows_sorted_and_back(at_0007):
    apps = at_0007
    Topic = apps.get_model("conversations", "Topic")
    Conversation = apps.get_model("conversations", "Conversation")
    Link = apps.get_model("conversations", "ConversationTopic")
    billing, refund, login = (Topic.objects.create(name=name) for name in ("billing", "refund", "login"))
    fields = {"timestamp": T, "turns": 3, "resolved_by_ai": True, "received_at": T}
    two, one, _ = (Conversation.objects.create(session_id=s, **fields) for s in ("two", "one", "none"))
    # Inserted out of order: the array is sorted by id whatever the order of the links.
    Link.objects.create(conversation=two, topic=login)
    Link.objects.create(conversation=two, topic=billing)
    Link.objects.create(conversation=one, topic=refund)

    migrate(AFTER)

    assert dict(rows("SELECT session_id, topic_ids FROM conversations_conversation")) == {
        "two": sorted([billing.pk, login.pk]),
        "one": [refund.pk],
        "none": [],
    }
    assert not rows("SELECT FROM pg_class WHERE relname = 'conversations_conversationtopic'")

    migrate(BEFORE)

    links = rows(
        "SELECT c.session_id, t.name FROM conversations_conversationtopic l"
        " JOIN conversations_conversation c ON c.id = l.conversation_id"
        " JOIN conversations_topic t ON t.id = l.topic_id"
    )
    assert sorted(links) == [("one", "refund"), ("two", "billing"), ("two", "login")]


def five_billing_conversations(apps) -> None:
    Topic = apps.get_model("conversations", "Topic")
    Conversation = apps.get_model("conversations", "Conversation")
    Link = apps.get_model("conversations", "ConversationTopic")
    billing = Topic.objects.create(name="billing")
    for number in range(5):
        conversation = Conversation.objects.create(
            session_id=f"s{number}", timestamp=T, turns=number, resolved_by_ai=number % 2 == 0,
            csat=1 + number, channel="web", received_at=T,
        )  # fmt: skip
        Link.objects.create(conversation=conversation, topic=billing)


def rollup_rows() -> dict:
    return {
        model: set(model.objects.values_list("span", "start", "channel", "conversations", "turns_sum"))
        for model in (ConversationRollup, TopicRollup)
    }


# Five conversations of one quarter hour, turns 0..4: the quarter hour (per topic: for all
# channels only), the hour and the day, for "web" and for all.
HOUR, DAY = datetime(2026, 3, 14, 9, tzinfo=UTC), datetime(2026, 3, 14, tzinfo=UTC)
EXPECTED_TOPICS = {
    ("q", T, None, 5, 10),
    ("h", HOUR, "web", 5, 10),
    ("h", HOUR, None, 5, 10),
    ("d", DAY, "web", 5, 10),
    ("d", DAY, None, 5, 10),
}
EXPECTED = {ConversationRollup: EXPECTED_TOPICS | {("q", T, "web", 5, 10)}, TopicRollup: EXPECTED_TOPICS}


@pytest.mark.django_db(transaction=True)
def test_missing_rollups_are_built(at_0007):
    """A database that comes from before 0003 reaches 0010 with conversations and no rollups."""
    five_billing_conversations(at_0007)
    assert not rows("SELECT FROM conversations_conversationrollup")

    migrate(ROLLUPS_BUILT)

    assert rollup_rows() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_rollups_without_the_all_channels_rows_are_rebuilt(at_0007):
    """One that 0003 built (per channel only) and that never ran 0004's rebuild."""
    five_billing_conversations(at_0007)
    Rollup = at_0007.get_model("conversations", "ConversationRollup")
    zeros = [0] * 101
    for span, start in (("h", HOUR), ("d", DAY)):
        Rollup.objects.create(span=span, start=start, channel="web", bot_version="", conversations=5,
                              turns_sum=10, response_ms_histogram=zeros)  # fmt: skip

    migrate(ROLLUPS_BUILT)

    assert rollup_rows() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_complete_rollups_are_left_as_they_are(at_0007):
    """Every database that ran 0011: no rebuild (at 10M it would take minutes)."""
    five_billing_conversations(at_0007)
    Rollup = at_0007.get_model("conversations", "ConversationRollup")
    # Deliberately not what a rebuild would give, to see that none ran.
    for span, start in (("h", HOUR), ("q", T)):
        Rollup.objects.create(span=span, start=start, channel=None, bot_version=None, conversations=99,
                              turns_sum=0, response_ms_histogram=[0] * 101)  # fmt: skip

    migrate(ROLLUPS_BUILT)

    assert rollup_rows()[ConversationRollup] == {("h", HOUR, None, 99, 0), ("q", T, None, 99, 0)}


@pytest.mark.django_db(transaction=True)
def test_rollups_without_quarter_hours_are_rebuilt(at_0007):
    """A database that ran 0010 (every one before 0011): its rollups are rebuilt, quarter
    hours included."""
    five_billing_conversations(at_0007)
    Rollup = at_0007.get_model("conversations", "ConversationRollup")
    # Complete for 0010 (it keeps them), not what a rebuild gives.
    Rollup.objects.create(span="h", start=HOUR, channel=None, bot_version=None, conversations=99,
                          turns_sum=0, response_ms_histogram=[0] * 101)  # fmt: skip
    migrate(("conversations", "0010_rollup_deltas"))
    assert rollup_rows()[ConversationRollup] == {("h", HOUR, None, 99, 0)}

    migrate(ROLLUPS_BUILT)

    assert rollup_rows() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_back_to_0010_the_quarter_hours_go_and_0011_builds_them_again(at_0007):
    five_billing_conversations(at_0007)
    migrate(ROLLUPS_BUILT)
    assert rollup_rows() == EXPECTED

    migrate(("conversations", "0010_rollup_deltas"))
    assert {span for rows in rollup_rows().values() for span, *_ in rows} == {"h", "d"}

    migrate(ROLLUPS_BUILT)
    assert rollup_rows() == EXPECTED


@pytest.fixture
def at_0016():
    yield migrate(("conversations", "0016_sums_of_squares"))
    call_command("migrate", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_0017_records_each_stored_version_at_its_earliest_conversation(at_0016):
    Conversation = at_0016.get_model("conversations", "Conversation")
    for session_id, hours, version in [("a", 0, "2.0"), ("b", -30, "2.0"), ("c", -99, ""), ("d", 5, "2.1")]:
        at = T + timedelta(hours=hours)
        Conversation.objects.create(session_id=session_id, timestamp=at, turns=1, resolved_by_ai=True,
                                    bot_version=version, received_at=at)  # fmt: skip

    migrate(("conversations", "0017_annotations"))

    assert rows("SELECT version, first_seen FROM conversations_botversion ORDER BY version") == [
        ("2.0", T - timedelta(hours=30)),
        ("2.1", T + timedelta(hours=5)),
    ]
    assert rows(
        "SELECT timestamp, title, kind, channel, bot_version, external_id FROM conversations_annotation"
        " ORDER BY timestamp"
    ) == [
        (T - timedelta(hours=30), "Bot version 2.0 released", "release", "", "2.0", ""),
        (T + timedelta(hours=5), "Bot version 2.1 released", "release", "", "2.1", ""),
    ]
