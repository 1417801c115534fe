"""How a window is cut into rollup rows and raw rows (analytics.planner.plan): the raw rows a read
takes stay within a fixed length of time at each edge, whatever the window; that is what
keeps a read's cost independent of the number of conversations stored. (That the figures
are right is test_rollups' full-scan comparison.)"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations.analytics.planner import plan as plan_window
from conversations.analytics.query import Filters, Period
from conversations.models import Span

BASE = datetime(2026, 3, 1, tzinfo=UTC)
NOW = BASE + timedelta(days=30)  # after every window below
STEP = {Span.QUARTER: timedelta(minutes=15), Span.HOUR: timedelta(hours=1), Span.DAY: timedelta(days=1)}

periods = st.builds(
    lambda start, length, include_start: Period(
        BASE + timedelta(seconds=start), BASE + timedelta(seconds=start + length), include_start
    ),
    st.integers(0, 10 * 86_400),
    st.integers(1, 10 * 86_400),
    st.booleans(),
)


def length(parts) -> timedelta:
    return sum((part.end - part.start for part in parts), timedelta(0))


@given(period=periods, quarters=st.booleans(), use_hours=st.booleans(), use_days=st.booleans())
def test_rollup_ranges_and_raw_edges_make_up_the_window(period, quarters, use_hours, use_days):
    spans = [Span.QUARTER] * quarters + [Span.HOUR] * use_hours + [Span.DAY] * use_days
    plan = plan_window(period, now=NOW, quarters=quarters, use_hours=use_hours, use_days=use_days)

    if not spans:
        assert plan.raw == (period,) and not plan.minus and not plan.ranges
        return
    finest = STEP[spans[0]]
    if plan.raw == (period,):  # within one finest span: all raw, less than one span of it
        assert not plan.minus and not plan.ranges
        assert period.end - period.start < finest
        return
    # The ranges follow one another, each on its span's boundaries, coarser inside.
    for (_, _, end), (_, next_start, _) in zip(plan.ranges, plan.ranges[1:], strict=False):
        assert end == next_start
    ranks = [list(STEP).index(span) for span, _, _ in plan.ranges]
    if ranks:
        peak = ranks.index(max(ranks))
        assert ranks[: peak + 1] == sorted(set(ranks[: peak + 1]))
        assert ranks[peak:] == sorted(set(ranks[peak:]), reverse=True)
    for span, start, end in plan.ranges:
        assert start < end
        assert span in spans
        for moment in (start, end):
            assert (moment - BASE) % STEP[span] == timedelta(0), (span, moment)
    # Rollups + raw − minus = the window; at most half the finest span of raw rows at each edge.
    covered = length(Period(start, end) for _, start, end in plan.ranges)
    pieces = [*plan.raw, *plan.minus]
    assert length(plan.raw) <= finest
    assert all(piece.end - piece.start <= finest / 2 + timedelta(microseconds=1) for piece in pieces)
    assert covered + length(plan.raw) - length(plan.minus) - (period.end - period.start) in (
        timedelta(0),
        timedelta(microseconds=1),
        -timedelta(microseconds=1),
    )


def test_a_day_is_read_from_its_quarter_hours_hours_and_day_rows():
    period = Period(datetime(2026, 3, 1, 22, 55, tzinfo=UTC), datetime(2026, 3, 3, 0, 25, tzinfo=UTC))

    plan = plan_window(period, now=NOW)

    assert plan.raw == (
        Period(datetime(2026, 3, 1, 22, 55, tzinfo=UTC), datetime(2026, 3, 1, 23, 0, tzinfo=UTC), True),
    )
    assert plan.minus == (
        Period(datetime(2026, 3, 3, 0, 25, tzinfo=UTC), datetime(2026, 3, 3, 0, 30, tzinfo=UTC)),
    )
    assert plan.ranges == (
        (Span.HOUR, datetime(2026, 3, 1, 23, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),
        (Span.DAY, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)),
        (Span.QUARTER, datetime(2026, 3, 3, 0, 0, tzinfo=UTC), datetime(2026, 3, 3, 0, 30, tzinfo=UTC)),
    )


def test_quarter_hours_alone_cover_a_window_on_quarter_hours():
    # 2026-03-02 in Asia/Kolkata (UTC+5:30); timeseries() then reads most of it as whole hours
    # (selectors._ranges_where with local_buckets).
    period = Period(datetime(2026, 3, 1, 18, 30, tzinfo=UTC), datetime(2026, 3, 2, 18, 30, tzinfo=UTC))

    plan = plan_window(period, now=NOW, use_hours=False, use_days=False)

    assert (plan.raw, plan.minus) == ((), ())
    assert plan.ranges == ((Span.QUARTER, period.start, period.end),)


def test_without_quarter_hours_the_edges_are_partial_hours():
    period = Period(datetime(2026, 3, 1, 9, 10, tzinfo=UTC), datetime(2026, 3, 1, 12, 20, tzinfo=UTC))

    plan = plan_window(period, now=NOW, quarters=False)

    assert plan.minus == (
        Period(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), datetime(2026, 3, 1, 9, 10, tzinfo=UTC)),
    )
    assert plan.raw == (
        Period(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 20, tzinfo=UTC)),
    )
    assert plan.ranges == (
        (Span.HOUR, datetime(2026, 3, 1, 9, tzinfo=UTC), datetime(2026, 3, 1, 12, tzinfo=UTC)),
    )


@pytest.mark.parametrize(
    ("filters", "topics", "reasons", "allowed"),
    [
        (Filters(), False, False, True),
        (Filters(), True, True, True),  # topics: all rows; reasons: per reason for all channels
        (Filters(channel="web"), False, True, False),  # its reasons: per channel × reason, no quarters
        (Filters(channel="web", escalation_reason="x"), False, False, False),  # no such quarter rows
        (Filters(escalation_reason="x"), False, True, True),
        (Filters(escalation_reason="x"), True, False, False),  # per topic: all rows only
        (Filters(topic="billing"), False, False, True),
        (Filters(topic="billing"), False, True, False),  # a topic's reasons: no quarter rows
        (Filters(topic="billing", bot_version="2"), False, False, False),
        (Filters(channel="web"), True, False, False),
    ],
)
def test_quarter_hours_only_where_every_part_has_them(filters, topics, reasons, allowed):
    from conversations.analytics.planner import quarters_allowed

    assert quarters_allowed(filters, topics=topics, reasons=reasons) is allowed
