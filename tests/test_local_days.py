"""Fixed cases beside test_rollups' random ones: the local days of zones half an hour off UTC,
whose daily series are read from hourly rows and, for the hour a day starts in, quarter-hour
rows; offsets that change with the season; topics filtered by channel, which have no
quarter-hour rows. Every figure must equal a full scan of the raw rows."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversations import services
from conversations.analytics import selectors
from conversations.analytics.metrics import Totals, full_scan_aggregates
from conversations.analytics.query import Filters, Granularity, Period, conversations_in
from conversations.services import ConversationIn
from tests.scans import assert_buckets_equal_full_scans, full_scan, per_topic

pytestmark = pytest.mark.django_db


def store(timestamps: list[datetime]) -> None:
    items = [
        ConversationIn(
            session_id=f"s{number}", timestamp=moment, turns=1 + number % 5, resolved_by_ai=number % 3 != 0,
            topics=("billing",) if number % 2 else ("refund", "billing"),
            channel=("web", "email")[number % 2], avg_response_ms=100.0 + number,
            csat=1 + number % 5, csat_given=True,
        )
        for number, moment in enumerate(timestamps)
    ]  # fmt: skip
    for first in range(0, len(items), 1_000):
        services.conversations_ingest(items=items[first : first + 1_000])


def assert_series_equals_a_full_scan(period: Period, filters: Filters, granularity: str, tz: str) -> int:
    buckets = selectors.timeseries(period=period, filters=filters, granularity=granularity, tz=ZoneInfo(tz))
    assert_buckets_equal_full_scans(buckets, period, filters, granularity, tz)
    return sum(bucket.totals.conversations for bucket in buckets)


@pytest.mark.parametrize("tz", ["Asia/Kolkata", "Asia/Kathmandu"])
@pytest.mark.parametrize("filters", [Filters(), Filters(channel="web"), Filters(topic="refund")])
def test_the_hour_a_local_day_starts_in_is_split_between_the_days(tz, filters):
    # Days start at 18:30 UTC in India, 18:15 in Nepal: conversations on both sides of that,
    # inside one UTC hour, and in the whole hours around it.
    day = datetime(2026, 3, 1, tzinfo=UTC)
    store([day + timedelta(hours=17, minutes=minutes) for minutes in range(0, 180, 5)])

    counted = assert_series_equals_a_full_scan(
        Period(day + timedelta(hours=17), day + timedelta(hours=20)), filters, Granularity.DAY, tz
    )

    assert counted == full_scan(Period(day, day + timedelta(days=1)), filters).conversations > 0


@pytest.mark.parametrize(
    ("tz", "change"),
    [
        ("Australia/Adelaide", datetime(2026, 4, 4, 16, tzinfo=UTC)),  # +10:30 -> +9:30
        ("America/St_Johns", datetime(2026, 3, 8, 5, 30, tzinfo=UTC)),  # -3:30 -> -2:30
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),  # +11 -> +10:30
    ],
)
@pytest.mark.parametrize("granularity", [Granularity.DAY, Granularity.WEEK])
def test_daily_and_weekly_series_across_an_offset_change(tz, change, granularity):
    store([change + timedelta(minutes=minutes) for minutes in range(-3 * 24 * 60, 3 * 24 * 60, 25)])

    for filters in (Filters(), Filters(channel="email"), Filters(topic="refund", channel="web")):
        assert_series_equals_a_full_scan(
            Period(change - timedelta(days=3), change + timedelta(days=3)), filters, granularity, tz
        )


def test_a_window_from_one_summer_to_the_next_in_a_zone_whose_winter_is_half_an_hour_off():
    # Lord Howe Island: +11 at both ends of the window, +10:30 between April and October; the
    # offset at the ends alone made hourly rows count half an hour in the wrong day all winter.
    start = datetime(2026, 1, 10, tzinfo=UTC)
    store([start + timedelta(hours=hours, minutes=40) for hours in range(1, 360 * 24, 6)])  # 13:40 UTC too

    assert_series_equals_a_full_scan(
        Period(start, start + timedelta(days=360)), Filters(), Granularity.DAY, "Australia/Lord_Howe"
    )


@pytest.mark.parametrize("filters", [Filters(channel="web"), Filters(bot_version=""), Filters()])
def test_topics_of_a_window_with_edges_inside_quarter_hours(filters):
    day = datetime(2026, 3, 1, tzinfo=UTC)
    store([day + timedelta(hours=9, minutes=minutes) for minutes in range(0, 240, 4)])
    period = Period(day + timedelta(hours=9, minutes=20), day + timedelta(hours=12, minutes=40))

    raw = conversations_in(period=period, filters=filters)
    expected = {
        name: Totals.from_row(row)
        for name, row in per_topic(raw, full_scan_aggregates(with_histogram=False)).items()
    }
    topics = selectors.topic_breakdown(period=period, filters=filters)

    assert {topic.topic: topic.totals for topic in topics} == expected
    assert expected["billing"].conversations > 0
    assert selectors.window_totals(period=period, filters=filters) == full_scan(period, filters)
