"""Which rows make up a window: rollup rows plus the raw conversations at its edges. Pure
Python (no database), so every case is unit-tested on its own (tests/test_read_plan.py).

A window [start, end) is cut into: the raw conversations of its partial first and last quarter
hours; quarter-hour rollup rows up to its first and from its last whole hour, hourly rows up to
the first and from the last UTC midnight, daily rows in between. So a read takes at most
2 × 7.5 minutes of raw rows, 2 × 3 quarter-hour rows, 2 × 23 hourly rows and one daily row per
day (per topic where it counts topics), whatever the number of conversations stored: its cost
follows the window's length, and the raw rows at its edges the conversations of a quarter
hour, never the table. Per topic, quarter hours are kept for all channels and versions only
(rollups.SPREAD): a read of topics filtered by channel or bot version reads raw rows at the
edges of its partial hours instead (at most 2 × 30 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from conversations.analytics.query import Filters, Granularity, Period
from conversations.models import FUTURE_TOLERANCE, Span

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
STEPS = {Span.QUARTER: QUARTER, Span.HOUR: HOUR, Span.DAY: DAY}
MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamp resolution
# Time zones whose offset is always a whole number of hours (days in them are UTC days).
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}


@dataclass(frozen=True)
class Plan:
    """How a window is read: rollup rows (span, from, to), plus raw rows, minus raw rows."""

    raw: tuple[Period, ...] = ()
    minus: tuple[Period, ...] = ()
    ranges: tuple[tuple[Span, datetime, datetime], ...] = ()
    # (granularity, time zone) of a series whose buckets do not start on UTC hours: its
    # quarter-hour ranges are read as hourly rows, but for the hours that a bucket starts in.
    local_buckets: tuple[Granularity, ZoneInfo] | None = None


def floor(moment: datetime, step: timedelta) -> datetime:
    """The start of the UTC quarter hour, hour or day (`step`) of `moment`."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + (moment - midnight) // step * step


def ceil(moment: datetime, step: timedelta) -> datetime:
    start = floor(moment, step)
    return start if start == moment else start + step


def plan(
    period: Period,
    *,
    now: datetime,
    quarters: bool = True,
    use_hours: bool = True,
    use_days: bool = True,
    all_raw: bool = False,
) -> Plan:
    """Which rollup rows to read: quarter hours (not for topics by channel or version, see
    `quarters_allowed`), hours (not for a local day half an hour off UTC), days (only for UTC
    days).

    A partial quarter hour (hour) is read from raw rows when it is at most half of one; a
    longer one as its whole rollup row minus the raw rows of the rest of it. A window that
    ends `now` always takes the second way: the rest of its last quarter hour is in the
    future, where only the few conversations posted with a timestamp up to 5 minutes ahead
    can be, so the busiest one, the current one, is never read row by row.
    """
    spans = [Span.QUARTER] * quarters + [Span.HOUR] * use_hours + [Span.DAY] * use_days
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    if start >= end:
        return Plan()
    if all_raw or not spans:
        return Plan(raw=(period,))
    step = STEPS[spans[0]]
    first, last = floor(start, step), floor(end, step)
    if first == last and end != last:
        return Plan(raw=(period,))
    raw, minus = [], []
    if start == first and period.include_start:
        region_start = start
    elif first + step - start <= step / 2:
        raw.append(Period(start, first + step, period.include_start))
        region_start = first + step
    else:
        # Rows of that span before the window; with an excluded start, the start too.
        minus.append(Period(first, start if period.include_start else start + MICROSECOND))
        region_start = first
    if end == last:
        region_end = end
    elif end - last <= step / 2 and end < now - FUTURE_TOLERANCE:
        raw.append(Period(last, end))
        region_end = last
    else:
        minus.append(Period(end, last + step))
        region_end = last + step
    return Plan(raw=tuple(raw), minus=tuple(minus), ranges=tuple(cover(region_start, region_end, spans)))


def cover(start: datetime, end: datetime, spans: list[Span]) -> list[tuple[Span, datetime, datetime]]:
    """The rollup ranges that make up [start, end), whose bounds are on the first span's
    boundaries: the coarsest span that fits in the middle, finer ones on each side."""
    if start >= end:
        return []
    span, *coarser = spans
    if coarser:
        step = STEPS[coarser[0]]
        inner_start, inner_end = ceil(start, step), floor(end, step)
        if inner_start < inner_end:
            return [
                *cover(start, inner_start, [span]),
                *cover(inner_start, inner_end, coarser),
                *cover(inner_end, end, [span]),
            ]
    return [(span, start, end)]


def quarters_allowed(filters: Filters, *, topics: bool, reasons: bool = False) -> bool:
    """Whether a read of a window's totals (and `topics`, and escalation `reasons`) with these
    filters can use quarter-hour rows, which every part it reads must have (rollups.SPREAD):
    per topic, they are kept for all channels, versions and reasons only; not per topic, for
    all but a channel × version × reason."""
    from conversations.rollups import SPREAD

    per_channel = filters.channel is not None or filters.bot_version is not None
    per_reason = filters.escalation_reason is not None
    parts = [(bool(filters.topic), per_channel, per_reason)]  # the totals
    if topics:
        parts.append((True, per_channel, per_reason))
    if reasons:
        parts.append((bool(filters.topic), per_channel, True))
    return all((Span.QUARTER, channel, reason) in SPREAD[topic] for topic, channel, reason in parts)


def window_plan(
    period: Period, filters: Filters, *, topics: bool, now: datetime, reasons: bool = False
) -> Plan:
    """The plan of a window's totals (and topics, and escalation reasons)."""
    return plan(period, now=now, quarters=quarters_allowed(filters, topics=topics, reasons=reasons))


def offsets(tz: ZoneInfo, period: Period) -> set[timedelta]:
    """The zone's offsets from UTC over the period (a local day starts on a UTC hour, or
    quarter hour, when they are whole ones). Read at both ends and every day between: an
    offset lasts far longer than a day, but a window may span a season whose offset differs
    (Lord Howe Island: +11 in summer, +10:30 in winter)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    moments = [start + DAY * days for days in range(int((end - start) / DAY) + 1)] + [end]
    return {moment.astimezone(tz).utcoffset() for moment in moments}


def series_plan(
    period: Period, filters: Filters, *, granularity: Granularity, tz: ZoneInfo, now: datetime
) -> Plan:
    """The plan of a time series whose buckets start at local times of `tz` (hours: UTC hours).

    Hour buckets read hourly rollups. Day and week buckets in UTC read daily rollups; in
    another time zone they are made of hourly ones, or, where the offset is not a whole number
    of hours (India, Nepal, Newfoundland, ...), of hourly ones and the quarter-hour ones of the
    hours that a bucket starts in. Such a series of one topic filtered by channel or version
    (no quarter-hour rows per topic and channel), or in a zone whose offset is not a whole
    number of quarter hours (none in use today), reads the raw rows.
    """
    zone_offsets = offsets(tz, period)
    whole_hours = all(offset % HOUR == timedelta(0) for offset in zone_offsets)
    found = plan(
        period,
        now=now,
        quarters=quarters_allowed(filters, topics=False),
        use_hours=whole_hours,
        use_days=granularity != Granularity.HOUR and str(tz) in _UTC_NAMES,
        all_raw=any(offset % QUARTER != timedelta(0) for offset in zone_offsets),
    )
    if whole_hours:
        return found
    return Plan(raw=found.raw, minus=found.minus, ranges=found.ranges, local_buckets=(granularity, tz))
