"""The fast answers (rollups + raw partial hours) equal a full scan of the raw rows.

Hypothesis writes random conversations (with re-posts of the same sessions, late CSAT
updates, deletes and purges, so contributions are taken out and put back; small writes leave
theirs as deltas, folded in at random moments), then compares random windows and filters
against the same figures computed from the conversations table alone.

Three customers come back to the bot within a repeat-contact window of one day (the module
sets REPEAT_CONTACT_DAYS=1, so that its edges cut through the data and through the windows):
re-posts move a conversation to another time or customer, late ones land between two stored
ones, and after every operation each stored conversation's follow-up flag equals one worked
out from scratch.
"""

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversations import histogram, retention, rollups, services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Granularity, Period, conversations_in
from conversations.customers import customer_hash
from conversations.models import Conversation, ConversationRollup, RollupDelta, Topic, TopicRollup
from conversations.services import ConversationIn
from tests.scans import (
    assert_buckets_equal_full_scans,
    assert_follow_ups_exact,
    full_scan,
    full_scan_aggregates_with_cut_offs,
    per_topic,
    totals_of,
)

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 3, 10, tzinfo=UTC)
SPAN_MINUTES = 3 * 24 * 60
# Two busy hours on the first day, from 17:30 UTC: windows that cut through them cut quarter
# hours and hours that hold conversations, and days in India (from 18:30 UTC) and Nepal (18:15).
BUSY_MINUTE = 17 * 60 + 30
SESSIONS = [f"s{i}" for i in range(10)]
CHANNELS = ["web", "email", ""]
VERSIONS = ["1.0", "2.0"]
TOPICS = ["billing", "refund", "shipping"]
REASONS = ["no docs", "angry"]
CUSTOMERS = [customer_hash(name) for name in ("ann", "bob", "cy")]


@pytest.fixture(autouse=True)
def one_day_repeat_window():
    with override_settings(REPEAT_CONTACT_DAYS=1):
        yield


def _honest(conversation: ConversationIn, draw_outcome: int, draw_reason: int) -> ConversationIn:
    """An outcome that agrees with `resolved_by_ai` (or none), a reason only when not resolved."""
    outcomes = ("confirmed", "assumed") if conversation.resolved_by_ai else ("escalated", "abandoned")
    outcome = ("", *outcomes)[draw_outcome % 3]
    reason = "" if conversation.resolved_by_ai else ("", *REASONS)[draw_reason % 3]
    conversation.__dict__.update(outcome=outcome, escalation_reason=reason)
    return conversation


conversation_values = st.builds(
    ConversationIn,
    session_id=st.sampled_from(SESSIONS),
    # Half of them in the busy hours.
    timestamp=st.one_of(
        st.integers(0, SPAN_MINUTES * 60 - 1),
        st.integers(0, 2 * 3600 - 1).map(lambda s: BUSY_MINUTE * 60 + s),
    ).map(lambda s: BASE + timedelta(seconds=s, microseconds=s % 7)),
    turns=st.integers(0, 30),
    resolved_by_ai=st.booleans(),
    topics=st.lists(st.sampled_from(TOPICS), max_size=3, unique=True).map(tuple),
    # Milliseconds to the microsecond, as the API stores them; from below 10 ms to over 125 s.
    avg_response_ms=st.none() | st.integers(0, 200_000_000).map(lambda n: n / 1000),
    response_count=st.none() | st.integers(0, 20),
    channel=st.sampled_from(CHANNELS),
    bot_version=st.sampled_from(VERSIONS),
    ai_cost=st.none() | st.integers(0, 500_000).map(lambda n: Decimal(n) / Decimal(1_000_000)),
    csat=st.none() | st.integers(1, 5),
    csat_given=st.booleans(),
    customer_hash=st.none() | st.sampled_from(CUSTOMERS),
    customer_given=st.booleans(),
)
conversations = st.builds(_honest, conversation_values, st.integers(0, 2), st.integers(0, 2))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("post"), st.lists(conversations, min_size=1, max_size=6)),
        # More sessions than a small write: the rollups updated directly, not through deltas.
        st.tuples(st.just("batch"), st.lists(conversations, min_size=1, max_size=6)),
        st.tuples(st.just("csat"), st.tuples(st.sampled_from(SESSIONS), st.none() | st.integers(1, 5))),
        st.tuples(st.just("delete"), st.lists(st.sampled_from(SESSIONS), min_size=1, max_size=3)),
        # Small writes leave their rollup changes as deltas; reads count them folded or not.
        st.tuples(st.just("fold"), st.none()),
        # Data retention: the oldest conversations go, a batch at a time.
        st.tuples(st.just("purge"), st.integers(0, SPAN_MINUTES).map(lambda m: BASE + timedelta(minutes=m))),
    ),
    min_size=1,
    max_size=8,
)
# Posted with a "batch" (each time the same, so replaced by itself after the first).
PADDING = [
    ConversationIn(session_id=f"pad{i}", timestamp=BASE + timedelta(hours=i), turns=1, resolved_by_ai=True)
    for i in range(services._SMALL_BATCH_MAX)
]
windows = st.tuples(
    # start, minutes from BASE
    st.one_of(st.integers(-120, SPAN_MINUTES + 120), st.integers(BUSY_MINUTE - 30, BUSY_MINUTE + 120)),
    st.integers(0, 59),  # and seconds
    st.one_of(st.integers(0, SPAN_MINUTES + 240), st.integers(0, 150)),  # length in minutes
    st.booleans(),  # start included?
).map(
    lambda w: Period(
        start=BASE + timedelta(minutes=w[0], seconds=w[1]),
        end=BASE + timedelta(minutes=w[0] + w[2], seconds=w[1]),
        include_start=w[3],
    )
)
filters = st.builds(
    Filters,
    channel=st.none() | st.sampled_from(CHANNELS),
    topic=st.none() | st.sampled_from(TOPICS),
    bot_version=st.none() | st.sampled_from(VERSIONS),
    escalation_reason=st.none() | st.sampled_from(REASONS),
)


def apply(ops) -> None:
    for kind, payload in ops:
        if kind == "post":
            services.conversations_ingest(items=payload)
        elif kind == "batch":
            services.conversations_ingest(items=payload + PADDING)
        elif kind == "delete":
            services.conversations_delete(session_ids=payload)
        elif kind == "fold":
            rollups.fold()
        elif kind == "purge":
            while retention.purge_batch(cutoff=payload, limit=2):
                pass
        else:
            session_id, csat = payload
            with contextlib.suppress(Conversation.DoesNotExist):
                services.conversation_set_csat(session_id=session_id, csat=csat)
        assert_follow_ups_exact()


def reset() -> None:
    for model in (RollupDelta, TopicRollup, ConversationRollup, Conversation, Topic):
        model.objects.all().delete()


def rollup_rows() -> set[tuple]:
    """Every rollup row that counts something, as comparable tuples."""
    keys = ["span", "start", "channel", "bot_version", "escalation_reason"]
    metrics = [f.name for f in ConversationRollup._meta.fields if f.name not in ("id", *keys)]

    def frozen(row) -> tuple:
        return tuple(tuple(value) if isinstance(value, list) else value for value in row)

    rows = {("c", *frozen(row)) for row in ConversationRollup.objects.values_list(*keys, *metrics)}
    rows |= {("t", *frozen(row)) for row in TopicRollup.objects.values_list("topic_id", *keys, *metrics)}
    # Rows that every re-post emptied stay behind in place, as zeros; a rebuild has none.
    return {
        row for row in rows if any(value for value in row[-len(metrics) :] if not isinstance(value, tuple))
    }


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, checks=st.lists(st.tuples(windows, filters), min_size=1, max_size=4))
def test_windows_from_rollups_equal_a_full_scan(ops, checks):
    reset()
    apply(ops)
    # Read once with "now" after all the data and once in its middle: a window that reaches
    # past now is read as whole hours minus the rows after its end.
    # The second also puts the repeat-contact cut-off (a day before now) inside the data.
    for now in (BASE + timedelta(days=30), BASE + timedelta(days=2, minutes=17)):
        with time_machine.travel(now, tick=False):
            for period, window_filters in checks:
                fast = selectors.window_totals(period=period, filters=window_filters)
                assert fast == full_scan(period, window_filters), (period, window_filters, now)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, period=windows, window_filters=filters)
def test_topics_and_top_topics_equal_a_full_scan(ops, period, window_filters):
    reset()
    apply(ops)
    raw = conversations_in(period=period, filters=window_filters)
    # Topic statistics carry no response-time histogram (no percentile per topic).
    now = BASE + timedelta(days=2, hours=5)
    with time_machine.travel(now, tick=False):
        fast = selectors.topic_breakdown(period=period, filters=window_filters)
    aggregates = full_scan_aggregates_with_cut_offs(now, with_histogram=False)
    scanned = per_topic(raw, aggregates, topic=window_filters.topic)
    expected = {name: totals_of(row) for name, row in scanned.items()}
    assert {topic.topic: topic.totals for topic in fast} == expected

    if not window_filters.topic:
        counts = {name: row["n"] for name, row in per_topic(raw, {"n": Count("id")}).items()}
        ranked = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        assert selectors.top_topics(period=period, filters=window_filters) == ranked[:10]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ops=operations,
    period=windows,
    granularity=st.sampled_from(list(Granularity)),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]),
    series_filters=filters,
)
def test_time_series_buckets_equal_a_full_scan(ops, period, granularity, tz, series_filters):
    reset()
    apply(ops)
    zone = ZoneInfo(tz)
    with time_machine.travel(BASE + timedelta(days=2, hours=5), tick=False):
        buckets = selectors.timeseries(
            period=period, filters=series_filters, granularity=granularity, tz=zone
        )
        assert_buckets_equal_full_scans(buckets, period, series_filters, granularity, tz)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, period=windows, window_filters=filters)
def test_dashboard_reads_both_periods_as_the_api_reads_each(ops, period, window_filters):
    # The dashboard reads the period and the one before it in one statement each: the same
    # figures as the API's selectors read one window at a time.
    reset()
    apply(ops)
    dash = selectors.dashboard(period=period, filters=window_filters, granularity=Granularity.DAY, tz=UTC)
    before = period.previous()
    assert dash.current == selectors.summary(period=period, filters=window_filters)
    assert dash.previous == selectors.summary(period=before, filters=window_filters, with_top_topics=False)
    assert dash.topics == selectors.topic_breakdown(period=period, filters=window_filters)
    previous_topics = selectors.topic_breakdown(period=before, filters=window_filters)
    assert list(dash.previous_topics.values()) == previous_topics
    # The topics export reads only its table: the same trends as the page.
    assert selectors.topic_trends(period=period, filters=window_filters) == dash.topic_trends


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_rebuild_gives_the_rows_the_writes_kept(ops):
    reset()
    apply(ops)
    rollups.fold()
    assert not RollupDelta.objects.exists()
    kept = rollup_rows()
    call_command("rebuild_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert rollup_rows() == kept


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(10_000, 125_000_000).map(lambda n: n / 1000), min_size=1, max_size=300))
def test_histogram_p95_is_within_its_bound_of_the_exact_percentile(values):
    estimate = histogram.percentile(histogram.from_buckets(map(histogram.bucket_of, values)), 0.95)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY v) FROM unnest(%s::float8[]) AS v", [values]
        )
        exact = cursor.fetchone()[0]
    assert abs(estimate - exact) <= 0.049 * exact


def test_response_times_below_10_ms_and_above_125_s_have_edge_buckets():
    assert [histogram.bucket_of(v) for v in (None, 0, 9.999, 10, 11, 125_278, 125_279, 86_400_000)] == [
        None, 0, 0, 1, 2, 99, 100, 100,
    ]  # fmt: skip
