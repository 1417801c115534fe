"""Figures cut off at read time (figures.CutOff): a stored figure counted only for the
conversations that ended at least `age` before the read. None is declared yet (the
honest-resolution issue declares "settled" conversations), so these tests declare their own and
read them through `reads.read` as a selector would: totals, topics and series, each compared
with a full scan of the window clipped at now − age."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.db.models import Count

from conversations.analytics import planner, reads
from conversations.analytics.figures import CutOff
from conversations.analytics.metrics import Totals
from conversations.analytics.query import Filters, Granularity, Period, conversations_in
from conversations.analytics.reads import TopicFigures
from conversations.analytics.selectors import bucket_starts
from tests.conftest import T0
from tests.factories import ConversationFactory
from tests.scans import full_scan, per_topic

pytestmark = pytest.mark.django_db

WEEK = timedelta(days=7)
SETTLED = (
    CutOff(
        "settled", "Conversations that ended a week or more before the read.", "conversations", lambda: WEEK
    ),
    CutOff("settled_ai_resolved", "AI-resolved ones of those.", "ai_resolved", lambda: WEEK),
    CutOff(
        "old_turns",
        "Turns of conversations ended 10 days or more ago.",
        "turns_sum",
        lambda: timedelta(days=10),
    ),
)


@pytest.fixture
def stored(frozen_now):
    hour = timedelta(hours=1)
    ages = [
        WEEK - timedelta(microseconds=1),  # not settled: a microsecond short
        WEEK,  # settled, exactly at the cut-off
        WEEK + 13 * timedelta(minutes=1),
        WEEK + 30 * hour,
        10 * 24 * hour,  # exactly 10 days: counted in old_turns
        12 * 24 * hour + 5 * hour,
        2 * hour,
        20 * 24 * hour,
    ]
    for number, age in enumerate(ages):
        ConversationFactory(
            session_id=f"c{number}",
            timestamp=T0 - age,
            resolved_by_ai=number % 3 != 0,
            turns=number + 1,
            topics=["billing", "refund"][: 1 + number % 2],
        )


def read(period: Period, *, topics=None, series=None):
    def plan(window):
        if series:
            return planner.series_plan(window, Filters(), granularity=series[0], tz=series[1], now=T0)
        return planner.window_plan(window, Filters(), topics=topics is not None, now=T0)

    [figures] = reads.read(
        [period], Filters(), plan=plan, now=T0, topics=topics, series=series, cut_offs=SETTLED
    )
    return figures


def expected(totals_of_clipped: dict[int, Totals]) -> dict[str, object]:
    week, ten_days = totals_of_clipped[7], totals_of_clipped[10]
    return {
        "settled": week.conversations,
        "settled_ai_resolved": week.ai_resolved,
        "old_turns": ten_days.turns_sum,
    }


def clipped(period: Period, days: int) -> Period:
    return period.clipped(T0 - timedelta(days=days) + timedelta(microseconds=1))


WINDOWS = {
    "30 days": Period(T0 - timedelta(days=30), T0),
    "edges inside quarter hours": Period(
        T0 - timedelta(days=13, minutes=7), T0 - timedelta(days=6, minutes=52)
    ),
    "all after the cut-off": Period(T0 - timedelta(days=3), T0),
    "hours=240, start excluded": Period.last_hours(240, now=T0),
}


@pytest.mark.parametrize("name", WINDOWS)
def test_window_totals_count_only_what_ended_before_the_cut_off(stored, name):
    period = WINDOWS[name]
    figures = read(period)

    assert figures.totals.cut_offs == expected(
        {days: full_scan(clipped(period, days), Filters()) for days in (7, 10)}
    )
    # The window's own figures are not cut off.
    assert figures.totals == full_scan(period, Filters()).with_cut_offs(figures.totals.cut_offs)


def test_the_cut_off_is_inclusive_of_exactly_age(stored):
    figures = read(WINDOWS["30 days"])

    # c1 ended exactly a week ago (settled), c0 a microsecond later (not yet).
    assert figures.totals.settled == 6
    assert figures.totals.old_turns == sum(number + 1 for number in (4, 5, 7))


def test_topics_carry_their_cut_off_figures(stored):
    period = WINDOWS["edges inside quarter hours"]
    figures = read(period, topics=TopicFigures.ALL)

    scans = {
        days: per_topic(conversations_in(period=clipped(period, days), filters=Filters()), {"n": Count("id")})
        for days in (7,)
    }
    by_name = dict(figures.topics.values())
    assert set(scans[7]) <= set(by_name)
    for name, totals in by_name.items():
        assert totals.cut_offs.get("settled", 0) == scans[7].get(name, {"n": 0})["n"], name
    assert any(totals.cut_offs.get("settled") for totals in by_name.values())


@pytest.mark.parametrize("tz", [UTC, "Asia/Kolkata"])
def test_series_buckets_carry_their_cut_off_figures(stored, tz):
    from zoneinfo import ZoneInfo

    zone = tz if tz is UTC else ZoneInfo(tz)
    period = WINDOWS["30 days"]
    figures = read(period, series=(Granularity.DAY, zone))

    starts = bucket_starts(start=period.start, end=period.end, granularity=Granularity.DAY, tz=zone)
    ends = [*starts[1:], period.end]
    for start, end in zip(starts, ends, strict=True):
        bucket = Period(max(start, period.start), end).clipped(T0 - WEEK + timedelta(microseconds=1))
        totals = figures.series.get(start.astimezone(UTC), Totals())
        assert totals.cut_offs.get("settled", 0) == full_scan(bucket, Filters()).conversations, start
    assert sum(totals.cut_offs.get("settled", 0) for totals in figures.series.values()) == 6


def test_an_empty_bucket_reads_zero_for_a_declared_cut_off(monkeypatch):
    from conversations.analytics import metrics

    monkeypatch.setitem(metrics._CUT_OFF_ZEROS, "settled", 0)
    assert Totals().settled == 0
    assert hash(Totals()) == hash(Totals().with_cut_offs({"settled": 0}))  # cut-offs not hashed
    with pytest.raises(AttributeError):
        Totals().not_a_figure  # noqa: B018


def test_a_declared_constant_with_a_percent_sign_reads_as_itself(frozen_now):
    """A figure's constants are literals in statements that also take parameters, where a lone
    % would read as a placeholder (a LIKE pattern from `startswith`)."""
    from django.db import connection
    from django.db.models import Q

    from conversations.analytics.figures import _row_sql

    ConversationFactory(session_id="a", bot_version="v2%beta")
    ConversationFactory(session_id="b", bot_version="v2-beta")
    condition = _row_sql(Q(bot_version__startswith="v2%"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM conversations_conversation c WHERE {condition} AND %s", [True])
        assert cursor.fetchone() == (1,)
