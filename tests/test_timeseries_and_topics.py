from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from conversations.analytics.selectors import bucket_starts
from conversations.models import CostSettings
from tests.conftest import T0
from tests.factories import ConversationFactory
from tests.payloads import no_repeat_contacts, unreported, without_intervals

SERIES_URL = "/api/analytics/timeseries/"
TOPICS_URL = "/api/analytics/topics/"
BERLIN = ZoneInfo("Europe/Berlin")


def zero_bucket(start: str) -> dict:
    return {
        "start": start,
        "conversations": 0,
        "ai_resolved": 0,
        "escalated": 0,
        "ai_resolution_rate": None,
        "csat_responses": 0,
        "avg_csat": None,
        "csat_score": None,
        "avg_turns": None,
        "p95_response_ms": None,
        "savings": 0.0,
        "cumulative_savings": 0.0,
        "outcomes": unreported(0),
    }


@pytest.mark.django_db
def test_daily_series_includes_empty_days(read_client, frozen_now):
    ConversationFactory(timestamp=datetime(2026, 3, 11, 9, tzinfo=UTC), resolved_by_ai=True, csat=5, turns=2)
    ConversationFactory(timestamp=datetime(2026, 3, 11, 23, 59, tzinfo=UTC), resolved_by_ai=False, turns=6)
    ConversationFactory(timestamp=datetime(2026, 3, 13, 0, 0, tzinfo=UTC), resolved_by_ai=True, turns=3)

    response = read_client.get(
        SERIES_URL, {"start": "2026-03-11T00:00:00Z", "end": "2026-03-14T00:00:00Z", "granularity": "day"}
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["granularity"], body["time_zone"]) == ("day", "UTC")
    assert without_intervals(body["buckets"]) == [
        {
            "start": "2026-03-11T00:00:00+00:00",
            "conversations": 2,
            "ai_resolved": 1,
            "escalated": 1,
            "ai_resolution_rate": 50.0,
            "csat_responses": 1,
            "avg_csat": 5.0,
            "csat_score": 100.0,
            "avg_turns": 4.0,
            "p95_response_ms": 764.5,  # 800 ms, as its histogram bucket reads it (−4.4%)
            "savings": 4.9,  # 1 resolved × $5 − 2 × $0.05 AI cost
            "cumulative_savings": 4.9,
            "outcomes": unreported(2),
        },
        {**zero_bucket("2026-03-12T00:00:00+00:00"), "cumulative_savings": 4.9},
        {
            **zero_bucket("2026-03-13T00:00:00+00:00"),
            "conversations": 1,
            "ai_resolved": 1,
            "ai_resolution_rate": 100.0,
            "avg_turns": 3.0,
            "p95_response_ms": 764.5,  # 800 ms, as its histogram bucket reads it (−4.4%)
            "savings": 4.95,
            "cumulative_savings": 9.85,
            "outcomes": unreported(1),
        },
    ]


@pytest.mark.django_db
def test_hourly_series_of_an_empty_window_is_all_zero_buckets(read_client, frozen_now):
    body = read_client.get(SERIES_URL, {"hours": 3, "granularity": "hour"}).json()
    # (09:00, 12:00] reaches into the 09:00 hour; 12:00 itself is excluded.
    assert without_intervals(body["buckets"]) == [
        zero_bucket("2026-03-14T09:00:00+00:00"),
        zero_bucket("2026-03-14T10:00:00+00:00"),
        zero_bucket("2026-03-14T11:00:00+00:00"),
    ]


@pytest.mark.django_db
def test_days_follow_the_requested_time_zone_across_a_dst_change(read_client):
    # Europe/Berlin springs forward on 2026-03-29: that day has 23 hours.
    ConversationFactory(timestamp=datetime(2026, 3, 29, 21, 30, tzinfo=UTC))  # 23:30 CEST on the 29th
    ConversationFactory(timestamp=datetime(2026, 3, 29, 22, 30, tzinfo=UTC))  # 00:30 CEST on the 30th
    ConversationFactory(timestamp=datetime(2026, 3, 27, 23, 30, tzinfo=UTC))  # 00:30 CET on the 28th

    window = {"start": "2026-03-28T00:00:00+01:00", "end": "2026-03-31T00:00:00+02:00"}
    body = read_client.get(SERIES_URL, {**window, "granularity": "day", "tz": "Europe/Berlin"}).json()

    assert body["time_zone"] == "Europe/Berlin"
    assert [(b["start"], b["conversations"]) for b in body["buckets"]] == [
        ("2026-03-28T00:00:00+01:00", 1),
        ("2026-03-29T00:00:00+01:00", 1),
        ("2026-03-30T00:00:00+02:00", 1),
    ]


@pytest.mark.django_db
def test_hourly_series_keeps_the_repeated_hour_of_a_dst_change(read_client):
    # 2026-10-25 in Berlin: 02:00-03:00 happens twice (00:00Z-01:00Z and 01:00Z-02:00Z).
    for minute in range(0, 180, 20):  # 00:00Z to 02:40Z
        ConversationFactory(timestamp=datetime(2026, 10, 25, tzinfo=UTC) + timedelta(minutes=minute))
    params = {"start": "2026-10-25T00:00:00Z", "end": "2026-10-25T03:00:00Z", "tz": "Europe/Berlin"}

    body = read_client.get(SERIES_URL, {**params, "granularity": "hour"}).json()

    assert [(b["start"], b["conversations"]) for b in body["buckets"]] == [
        ("2026-10-25T02:00:00+02:00", 3),
        ("2026-10-25T02:00:00+01:00", 3),
        ("2026-10-25T03:00:00+01:00", 3),
    ]
    assert read_client.get("/api/analytics", params).json()["total_conversations"] == 9


def test_bucket_starts_for_weeks_begin_on_monday():
    starts = bucket_starts(
        start=datetime(2026, 3, 4, 15, tzinfo=UTC),  # a Wednesday
        end=datetime(2026, 3, 17, tzinfo=UTC),
        granularity="week",
        tz=ZoneInfo("UTC"),
    )
    assert starts == [
        datetime(2026, 3, 2, tzinfo=UTC),
        datetime(2026, 3, 9, tzinfo=UTC),
        datetime(2026, 3, 16, tzinfo=UTC),
    ]


def test_bucket_starts_for_hours_stay_exact_across_dst():
    # 2026-10-25 03:00 CEST falls back to 02:00 CET: 25 UTC hours from midnight to midnight.
    starts = bucket_starts(
        start=datetime(2026, 10, 25, 0, tzinfo=BERLIN),
        end=datetime(2026, 10, 26, 0, tzinfo=BERLIN),
        granularity="hour",
        tz=BERLIN,
    )
    assert len(starts) == 25
    assert len({start.astimezone(UTC) for start in starts}) == 25


def test_bucket_starts_for_an_empty_window():
    assert bucket_starts(start=T0, end=T0, granularity="day", tz=ZoneInfo("UTC")) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"granularity": "minute"}, "granularity"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"tz": "../etc/passwd"}, "tz"),
        ({"hours": 87_600, "granularity": "hour"}, "granularity"),
        ({"start": "0001-01-01T00:00:00Z", "tz": "America/New_York"}, "start"),
        ({"start": "9999-12-31T23:30:00Z", "end": "9999-12-31T23:59:59Z", "granularity": "hour"}, "start"),
    ],
)
def test_bad_series_parameters_are_400(read_client, frozen_now, params, field):
    response = read_client.get(SERIES_URL, params)
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.django_db
def test_series_query_count_does_not_grow_with_buckets(read_client, frozen_now, django_assert_num_queries):
    ConversationFactory(timestamp=T0 - timedelta(days=3))
    read_client.get(SERIES_URL)
    # Cost settings, grouped rollup and raw rows. (Not the API key lookup and its rate-limit
    # count: one statement on a raw cursor, conversations.db.)
    with django_assert_num_queries(2):
        body = read_client.get(SERIES_URL, {"hours": 24 * 90, "granularity": "day"}).json()
    assert len(body["buckets"]) == 91


@pytest.mark.django_db
def test_topic_breakdown(read_client, frozen_now):
    h = timedelta(hours=1)
    ConversationFactory(timestamp=T0 - h, topics=["billing"], resolved_by_ai=True, csat=4)
    ConversationFactory(timestamp=T0 - 2 * h, topics=["billing", "refund"], resolved_by_ai=False, csat=2)
    ConversationFactory(timestamp=T0 - 3 * h, topics=["billing"], resolved_by_ai=False)
    ConversationFactory(timestamp=T0 - 4 * h, topics=[], resolved_by_ai=True)
    ConversationFactory(timestamp=T0 - 48 * h, topics=["old"], resolved_by_ai=False)

    body = without_intervals(read_client.get(TOPICS_URL, {"hours": 24}).json())

    assert body["topics"] == [
        {
            "topic": "billing",
            "conversations": 3,
            "share": 75.0,
            "ai_resolved": 1,
            "escalations": 2,
            "ai_resolution_rate": 33.3,
            "avg_csat": 3.0,
            "csat_responses": 2,
            "escalation_cost": 10.0,
            "knowledge_gap_cost": 10.0,
            "outcomes": unreported(3),
            "repeat_contact": no_repeat_contacts(3),
        },
        {
            "topic": "refund",
            "conversations": 1,
            "share": 25.0,
            "ai_resolved": 0,
            "escalations": 1,
            "ai_resolution_rate": 0.0,
            "avg_csat": 2.0,
            "csat_responses": 1,
            "escalation_cost": 5.0,
            "knowledge_gap_cost": 5.0,
            "outcomes": unreported(1),
            "repeat_contact": no_repeat_contacts(1),
        },
    ]


@pytest.mark.django_db
def test_topic_breakdown_of_an_empty_window(read_client, frozen_now):
    body = read_client.get(TOPICS_URL, {"hours": 1}).json()
    assert body["topics"] == []
    assert body["window"]["start"] == "2026-03-14T11:00:00Z"


@pytest.mark.django_db
def test_topic_breakdown_uses_the_configured_human_cost(read_client, frozen_now):
    CostSettings.objects.create(id=1, human_cost_per_conversation=Decimal("7.50"))
    ConversationFactory(timestamp=T0 - timedelta(hours=1), topics=["billing"], resolved_by_ai=False)
    assert read_client.get(TOPICS_URL).json()["topics"][0]["escalation_cost"] == 7.5
