"""manage.py purge_conversations: data retention that keeps every figure exact.

The data: 256 conversations, one every 5 h 37 min 13 s over the 60 days before T0, with
channels, versions, topics, CSAT, response times and costs varied, plus three placed on
purpose at the cutoff (T0 − 30 days): 1 µs before it, exactly on it, 1 µs after it.
"""

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Q

from conversations import retention, rollups, services
from conversations.analytics import selectors
from conversations.analytics.metrics import Totals, full_scan_aggregates
from conversations.analytics.query import Filters, Granularity, Period, conversations_in
from conversations.analytics.selectors import Summary
from conversations.models import (
    Conversation,
    ConversationRollup,
    CostSettings,
    Span,
    TopicRollup,
)
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.scans import assert_buckets_equal_full_scans, full_scan, per_topic

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAYS = 30
CUTOFF = T0 - timedelta(days=DAYS)  # 2026-02-12 12:00 UTC, an hour boundary
CUTOFF_DAY = CUTOFF - timedelta(hours=12)  # the UTC day that holds it
STEP = timedelta(hours=5, minutes=37, seconds=13)
CHANNELS = ["web", "email", ""]
VERSIONS = ["1.0", "2.0"]
TOPIC_SETS = [("billing",), ("refund", "billing"), (), ("shipping",), ("refund",)]
FILTERS = [
    Filters(),
    Filters(channel="web"),
    Filters(topic="billing"),
    Filters(channel="email", bot_version="2.0"),
]
WINDOWS = {
    "everything (hours=2160)": Period(start=T0 - timedelta(days=90), end=T0, include_start=False),
    "straddling the cutoff": Period(
        start=CUTOFF - timedelta(days=3, hours=5, minutes=17, seconds=3),
        end=CUTOFF + timedelta(days=2, hours=7),
    ),
    "an hour either side of the cutoff": Period(
        start=CUTOFF - timedelta(hours=1), end=CUTOFF + timedelta(hours=1)
    ),
    "from the cutoff, included": Period(start=CUTOFF, end=CUTOFF + timedelta(days=1)),
    "from the cutoff, excluded": Period(start=CUTOFF, end=T0, include_start=False),
    "purged entirely": Period(start=T0 - timedelta(days=61), end=CUTOFF),
    "last 24 hours": Period(start=T0 - timedelta(days=1), end=T0, include_start=False),
}


def conversation(index: int, timestamp) -> ConversationIn:
    return ConversationIn(
        session_id=f"purge-{index:04d}",
        timestamp=timestamp,
        turns=index % 13,
        resolved_by_ai=index % 3 != 0,
        topics=TOPIC_SETS[index % len(TOPIC_SETS)],
        avg_response_ms=None if index % 7 == 0 else 200 + (index * 379) % 9000 + 0.125,
        response_count=None if index % 7 == 0 else 1 + index % 4,
        channel=CHANNELS[index % len(CHANNELS)],
        bot_version=VERSIONS[index % len(VERSIONS)],
        ai_cost=None if index % 4 == 0 else Decimal(index % 50) / 1000,
        csat=None if index % 5 == 0 else 1 + index % 5,
        csat_given=True,
    )


@pytest.fixture
def stored():
    items = [conversation(i, T0 - timedelta(days=60) + i * STEP) for i in range(256)]
    items += [
        conversation(900, CUTOFF - timedelta(microseconds=1)),
        conversation(901, CUTOFF),
        conversation(902, CUTOFF + timedelta(microseconds=1)),
    ]
    services.conversations_ingest(items=items)
    # Late scores on both sides of the cutoff: contributions moved after the first write.
    services.conversation_set_csat(session_id="purge-0010", csat=5)
    services.conversation_set_csat(session_id="purge-0250", csat=1)
    return items


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_conversations", *args, stdout=out)
    return out.getvalue()


def recounted_summary(period: Period, filters: Filters) -> Summary:
    totals = full_scan(period, filters)
    if not totals.conversations:
        top = []
    elif filters.topic:
        top = [(filters.topic, totals.conversations)]
    else:
        raw = conversations_in(period=period, filters=filters)
        counts = [(name, row["n"]) for name, row in per_topic(raw, {"n": Count("id")}).items()]
        top = sorted(counts, key=lambda pair: (-pair[1], pair[0]))[: selectors.TOP_TOPICS_LIMIT]
    return Summary(
        period=period, filters=filters, totals=totals, cost=totals.cost(CostSettings.load()), top_topics=top
    )


def recounted_topics(period: Period, filters: Filters) -> dict[str, Totals]:
    raw = conversations_in(period=period, filters=filters)
    return {
        name: Totals.from_row(row)
        for name, row in per_topic(
            raw, full_scan_aggregates(with_histogram=False), topic=filters.topic
        ).items()
    }


def conversations_from(moment) -> list[tuple]:
    """Every stored field (the topics too) of the conversations at or after `moment`."""
    fields = [field.attname for field in Conversation._meta.concrete_fields]
    return list(Conversation.objects.filter(timestamp__gte=moment).order_by("id").values_list(*fields))


def rollup_rows(*, untouched: bool = False, with_id: bool = True) -> set[tuple]:
    """Every rollup row; `untouched`: only those that count nothing older than the cutoff:
    the quarter hours and hours from the cutoff on (an hour boundary) and the days from the
    next UTC midnight."""

    def frozen(row) -> tuple:
        return tuple(tuple(value) if isinstance(value, list) else value for value in row)

    rows = set()
    for model in (ConversationRollup, TopicRollup):
        fields = [field.attname for field in model._meta.concrete_fields if with_id or field.attname != "id"]
        queryset = model.objects.all()
        if untouched:
            queryset = queryset.filter(
                Q(span__in=[Span.QUARTER, Span.HOUR], start__gte=CUTOFF)
                | Q(span=Span.DAY, start__gte=CUTOFF_DAY + timedelta(days=1))
            )
        rows |= {(model.__name__, *frozen(row)) for row in queryset.values_list(*fields)}
    return rows


def test_purge_keeps_every_figure_equal_to_a_recount_and_touches_nothing_newer(stored):
    rollups.fold()  # the late scores, as the app folds them within a second (the purge would too)
    newer_before = conversations_from(CUTOFF)
    rollups_before = rollup_rows(untouched=True)
    older = Conversation.objects.filter(timestamp__lt=CUTOFF).count()
    assert older == 130  # 129 of the regular ones, and the one 1 µs before the cutoff

    output = purge("--older-than", str(DAYS), "--batch-size", "7")

    assert output.splitlines()[-1].startswith(
        f"Deleted {older} conversations older than 30 days (before 2026-02-12 12:00:00 UTC) in 19 batches"
    )
    assert not Conversation.objects.filter(timestamp__lt=CUTOFF).exists()
    assert conversations_from(CUTOFF) == newer_before
    assert Conversation.objects.filter(session_id="purge-0901").exists()  # exactly at the cutoff: kept
    assert rollup_rows(untouched=True) == rollups_before

    for period in WINDOWS.values():
        for filters in FILTERS:
            where = (period, filters)
            # Summary.totals is window_totals; top topics, costs and rates come with it.
            assert selectors.summary(period=period, filters=filters) == recounted_summary(*where), where
            breakdown = selectors.topic_breakdown(period=period, filters=filters)
            assert {topic.topic: topic.totals for topic in breakdown} == recounted_topics(*where), where
    assert selectors.window_totals(period=WINDOWS["purged entirely"], filters=Filters()) == Totals()

    series = [
        (WINDOWS["an hour either side of the cutoff"], list(Granularity)),
        (Period(start=CUTOFF - timedelta(hours=7, minutes=13), end=CUTOFF + timedelta(hours=4, minutes=50)),
         [Granularity.HOUR]),
        (WINDOWS["straddling the cutoff"], [Granularity.DAY, Granularity.WEEK]),
    ]  # fmt: skip
    for period, granularities in series:
        for granularity in granularities:
            for tz in (ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")):
                buckets = selectors.timeseries(
                    period=period, filters=Filters(), granularity=granularity, tz=tz
                )
                assert buckets, (period, granularity, tz)
                assert_buckets_equal_full_scans(buckets, period, Filters(), granularity, tz)

    # The rollups are exactly what a rebuild from the remaining rows gives: no row left all
    # zero for the purged hours and days, none missing, none off.
    kept = rollup_rows(with_id=False)
    call_command("rebuild_rollups", stdout=StringIO())
    assert rollup_rows(with_id=False) == kept


def test_purge_in_batches_prints_a_progress_line_per_batch(stored):
    lines = purge("--older-than", str(DAYS), "--batch-size", "50").splitlines()

    assert lines[:-1] == [
        "  deleted 50 of 130 conversations (38%)",
        "  deleted 100 of 130 conversations (77%)",
        "  deleted 130 of 130 conversations (100%)",
    ]
    assert lines[-1].startswith("Deleted 130 conversations older than 30 days")
    assert lines[-1].endswith("emptied rollup rows.")


def test_purged_hours_and_days_leave_no_rollup_rows_behind(stored):
    # The late scores' changes are unfolded deltas still: the purge folds them first.
    purge("--older-than", str(DAYS))

    for period in WINDOWS.values():
        assert selectors.summary(period=period, filters=Filters()) == recounted_summary(period, Filters())

    for model in (ConversationRollup, TopicRollup):
        assert not model.objects.filter(span__in=[Span.QUARTER, Span.HOUR], start__lt=CUTOFF).exists(), model
        assert not model.objects.filter(span=Span.DAY, start__lt=CUTOFF_DAY).exists(), model
        assert model.objects.filter(span=Span.QUARTER, start__gte=CUTOFF).exists(), model
        assert model.objects.filter(span=Span.HOUR, start__gte=CUTOFF).exists(), model
        assert model.objects.filter(span=Span.DAY, start=CUTOFF_DAY).exists(), model


def test_dry_run_counts_and_deletes_nothing(stored):
    before = (conversations_from(T0 - timedelta(days=90)), rollup_rows())

    output = purge("--older-than", str(DAYS), "--dry-run")

    assert output == (
        "Would delete 130 conversations older than 30 days (before 2026-02-12 12:00:00 UTC). "
        "Nothing was deleted.\n"
    )
    assert (conversations_from(T0 - timedelta(days=90)), rollup_rows()) == before


@pytest.mark.parametrize("days", ["0", "-3"])
def test_refuses_less_than_one_day(stored, days):
    with pytest.raises(CommandError, match=rf"--older-than must be at least 1 day, not {days}"):
        purge("--older-than", days)

    assert Conversation.objects.count() == 259


def test_nothing_to_purge_says_so(stored):
    assert (
        purge("--older-than", "365")
        == "No conversations older than 365 days (before 2025-03-14 12:00:00 UTC).\n"
    )
    assert Conversation.objects.count() == 259


def test_a_session_re_posted_with_a_new_timestamp_during_the_purge_is_kept(stored, monkeypatch):
    # The bot replaces an old session (same id, new end time) between the batch's read of the
    # oldest ids and their deletion: the delete must check the timestamps again under the
    # writers' locks and leave this one alone.
    oldest = retention._oldest
    re_posted = []

    def oldest_then_re_post(*, cutoff, limit):
        rows = oldest(cutoff=cutoff, limit=limit)
        if not re_posted:
            session_id = rows[0][0]
            index = int(session_id.removeprefix("purge-"))
            services.conversations_ingest(items=[conversation(index, T0 - timedelta(minutes=5))])
            re_posted.append(session_id)
        return rows

    monkeypatch.setattr(retention, "_oldest", oldest_then_re_post)

    purge("--older-than", str(DAYS), "--batch-size", "10")

    assert Conversation.objects.get(session_id=re_posted[0]).timestamp == T0 - timedelta(minutes=5)
    assert not Conversation.objects.filter(timestamp__lt=CUTOFF).exists()
    last_day = Period(start=T0 - timedelta(days=1), end=T0)
    assert selectors.window_totals(period=last_day, filters=Filters()) == full_scan(last_day, Filters())
    assert selectors.window_totals(period=last_day, filters=Filters()).conversations == 5
