"""Reads. Every number in the analytics API (and the dashboard) comes from one of these."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from conversations import rollups
from conversations.metrics import (
    RAW_BUCKETS_SQL,
    RAW_SQL,
    ROLLUP_HISTOGRAM_SQL,
    ROLLUP_SQL,
    CostBreakdown,
    Totals,
    difference,
    percent,
    relative_change,
)
from conversations.models import (
    FUTURE_TOLERANCE,
    Conversation,
    CostSettings,
    Span,
    Topic,
)
from conversations.rollups import METRICS as ROLLUP_METRICS

TOP_TOPICS_LIMIT = 10


@dataclass(frozen=True)
class Period:
    """A window of conversation end times: [start, end), or (start, end) when not include_start."""

    start: datetime
    end: datetime
    include_start: bool = True


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    topic: str | None = None  # normalized
    bot_version: str | None = None


class Granularity:
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    CHOICES = (HOUR, DAY, WEEK)


@dataclass(frozen=True)
class Summary:
    period: Period
    filters: Filters
    totals: Totals
    cost: CostBreakdown
    top_topics: list[tuple[str, int]]


@dataclass(frozen=True)
class TopicStats:
    topic_id: int
    topic: str
    totals: Totals
    share: Decimal | None  # 100 × this topic's conversations / all conversations in the window
    escalation_cost: Decimal


@dataclass(frozen=True)
class Bucket:
    start: datetime
    totals: Totals
    cost: CostBreakdown
    cumulative_savings: Decimal  # savings of this bucket and every one before it in the window


def conversations_in(*, period: Period, filters: Filters) -> QuerySet[Conversation]:
    """The raw conversations of a window, as a QuerySet (a full scan: what the tests compare
    the rollup reads with)."""
    return (
        Conversation.objects.in_window(period.start, period.end, include_start=period.include_start)
        .for_channel(filters.channel)
        .for_bot_version(filters.bot_version)
        .with_topic(filters.topic)
    )


# --- Reading a window from the rollups --------------------------------------------------------
#
# A window [start, end) is cut into: the raw conversations of its partial first and last
# quarter hours; quarter-hour rollup rows up to its first and from its last whole hour, hourly
# rows up to the first and from the last UTC midnight, daily rows in between. So a query reads
# at most 2 × 7.5 minutes of raw rows, 2 × 3 quarter-hour rows, 2 × 23 hourly rows and one
# daily row per day (each per topic where it counts topics), whatever the number of
# conversations stored: its cost follows the window's length, and the raw rows at its edges
# the number of conversations in a quarter of an hour, never the table. Per topic, quarter
# hours are kept for all channels and versions only (rollups.SPREAD): a read of topics, or of
# one topic, filtered by channel or bot version reads raw rows at the edges of its partial
# hours instead (at most 2 × 30 minutes).

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_STEPS = {Span.QUARTER: QUARTER, Span.HOUR: HOUR, Span.DAY: DAY}
# Time zones whose offset is always a whole number of hours (the buckets of a time series
# can then be built from UTC hours).
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}


@dataclass(frozen=True)
class _Plan:
    """How a window is read: rollup rows (span, from, to), plus raw rows, minus raw rows."""

    raw: tuple[Period, ...] = ()
    minus: tuple[Period, ...] = ()
    ranges: tuple[tuple[Span, datetime, datetime], ...] = ()
    # (granularity, time zone) of a series whose buckets do not start on UTC hours: its
    # quarter-hour ranges are read as hourly rows, but for the hours that a bucket starts in.
    local_buckets: tuple[str, str] | None = None


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def _floor(moment: datetime, step: timedelta) -> datetime:
    """The start of the UTC quarter hour, hour or day (`step`) of `moment`."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + (moment - midnight) // step * step


# A partial quarter hour (hour) is read from raw rows when it is at most half of one; a longer
# one as its whole rollup row minus the raw rows of the rest of it. A window that ends now
# always takes the second way: the rest of its last quarter hour is in the future, where only
# the few conversations posted with a timestamp up to 5 minutes ahead can be, so the busiest
# one, the current one, is never read row by row.
MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamp resolution


def _plan(
    period: Period,
    *,
    quarters: bool = True,
    use_hours: bool = True,
    use_days: bool = True,
    all_raw: bool = False,
) -> _Plan:
    """Which rollup rows to read: quarter hours (not for topics by channel or version, see
    `_quarters`), hours (not for a local day half an hour off UTC), days (only for UTC days)."""
    spans = [Span.QUARTER] * quarters + [Span.HOUR] * use_hours + [Span.DAY] * use_days
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    if start >= end:
        return _Plan()
    if all_raw or not spans:
        return _Plan(raw=(period,))
    step = _STEPS[spans[0]]
    first, last = _floor(start, step), _floor(end, step)
    if first == last and end != last:
        return _Plan(raw=(period,))
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
    elif end - last <= step / 2 and end < timezone.now() - FUTURE_TOLERANCE:
        raw.append(Period(last, end))
        region_end = last
    else:
        minus.append(Period(end, last + step))
        region_end = last + step
    return _Plan(raw=tuple(raw), minus=tuple(minus), ranges=tuple(_cover(region_start, region_end, spans)))


def _cover(start: datetime, end: datetime, spans: list[Span]) -> list[tuple[Span, datetime, datetime]]:
    """The rollup ranges that make up [start, end), whose bounds are on the first span's
    boundaries: the coarsest span that fits in the middle, finer ones on each side."""
    if start >= end:
        return []
    span, *coarser = spans
    if coarser:
        step = _STEPS[coarser[0]]
        inner_start, inner_end = _ceil(start, step), _floor(end, step)
        if inner_start < inner_end:
            return [
                *_cover(start, inner_start, [span]),
                *_cover(inner_start, inner_end, coarser),
                *_cover(inner_end, end, [span]),
            ]
    return [(span, start, end)]


def _quarters(filters: Filters, *, topics: bool) -> bool:
    """Whether a read of a window's totals (and `topics`) with these filters can use quarter-hour
    rows: per topic, they are kept for all channels and versions only."""
    per_topic = topics or bool(filters.topic)
    return not per_topic or (filters.channel is None and filters.bot_version is None)


# --- The statements -----------------------------------------------------------------------
#
# SQL text rather than the ORM: profiling showed an analytics request spending most of its
# time in Django compiling its aggregate queries (~20 expressions each, 1–4 ms per query,
# more than PostgreSQL took to run them). The statements below are put together from fixed
# fragments only (table and column names, the metric definitions of conversations.metrics);
# every value (times, spans, channel, bot version, topic name, time zone, part numbers) is a
# bound parameter, never formatted into the text.
#
# One statement (`_Read`) reads every part of one or more windows (a period and the one
# before it): rollup rows and the raw rows at the edges, for the totals, the topics or a time
# series. Each part is a materialized CTE and the statement the UNION ALL of them, each row
# tagged with its window's number. The CTEs are a planner fence on purpose: over a UNION ALL
# of two costly branches (a topic rollup scan beside the topic counts of the raw rows at a
# window's edges) PostgreSQL plans a Parallel Append, and starting its workers took longer
# (10–25 ms measured on 2 busy cores) than the whole read. A CTE scan is parallel restricted,
# so a UNION ALL of CTEs never is. The raw rows at a window's edges are a CTE too: read once
# for the totals and the topic counts.

_CONVERSATIONS = Conversation._meta.db_table
_TOPICS = Topic._meta.db_table
_ROLLUP_COLUMNS = ", ".join(ROLLUP_SQL)
_RAW_COLUMNS = ", ".join(RAW_SQL)
# After the conversation count, for topic counts. Typed: a CTE's NULL column would be text.
_NO_METRICS = ", ".join(["NULL::bigint"] * (len(ROLLUP_METRICS) - 1))
# The columns of every part: which window, its topic (NULL for the window's totals), its
# time series bucket (NULL unless a series), the sign of raw rows, the metrics (ROLLUP_METRICS
# order), the histogram's counts (rollup rows) or response-time buckets (raw rows).
_PART_COLUMNS = f"part, topic_id, bucket, sign, {', '.join(ROLLUP_METRICS)}, histogram, buckets"
# What the metrics and the topic counts need of a raw conversation.
_EDGE_COLUMNS = (
    "c.timestamp, c.resolved_by_ai, c.turns, c.csat, c.ai_cost, c.avg_response_ms, c.response_ms_bucket,"
    " c.topic_ids"
)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# Whether a local bucket (date_trunc's granularity, time zone) starts inside the UTC hour `{hour}`.
_BUCKET_STARTS_IN = (
    "date_trunc(%s, {hour} AT TIME ZONE %s)"
    " <> date_trunc(%s, ({hour} + interval '1 hour' - interval '1 microsecond') AT TIME ZONE %s)"
)


def _ranges_where(plan: _Plan) -> tuple[str, list] | None:
    """The rollup rows `r` of a plan's ranges (the leading columns of the rollup tables' unique
    keys, which serve these reads)."""
    if not plan.ranges:
        return None
    conditions, params = [], []
    for span, start, end in plan.ranges:
        hours = (_ceil(start, HOUR), _floor(end, HOUR))
        if span != Span.QUARTER or plan.local_buckets is None or hours[0] >= hours[1]:
            conditions.append("(r.span = %s AND r.start >= %s AND r.start < %s)")
            params += [span.value, start, end]
            continue
        # Quarter hours where a bucket starts in their hour (and before or after the whole
        # hours); every other whole hour in one row: 27 rows a day in India rather than 96.
        bucket = [*plan.local_buckets] * 2
        in_its_hour = _BUCKET_STARTS_IN.format(hour="date_trunc('hour', r.start, 'UTC')")
        in_hour = _BUCKET_STARTS_IN.format(hour="r.start")
        conditions += [
            "(r.span = %s AND r.start >= %s AND r.start < %s"
            f" AND (r.start < %s OR r.start >= %s OR {in_its_hour}))",
            f"(r.span = %s AND r.start >= %s AND r.start < %s AND NOT {in_hour})",
        ]
        params += [Span.QUARTER.value, start, end, *hours, *bucket, Span.HOUR.value, *hours, *bucket]
    return f"({' OR '.join(conditions)})", params


def _rollups_where(plan: _Plan, filters: Filters, *, per_topic: bool) -> tuple[str, str, list] | None:
    """The rollups (unfolded deltas included: rollups.LIVE_*) and rows `r` of a plan: per
    topic when asked or filtering by topic, else per channel × bot version. Without a
    channel or version filter, the "all" rows (NULL, NULL): one row per quarter hour, hour or
    day (per topic)."""
    if (ranges := _ranges_where(plan)) is None:
        return None
    text, params = ranges
    conditions = [text]
    if filters.channel is None and filters.bot_version is None:
        conditions.append("r.channel IS NULL AND r.bot_version IS NULL")
    else:
        conditions.append("r.channel IS NOT NULL")
        if filters.channel is not None:
            conditions.append("r.channel = %s")
            params.append(filters.channel)
        if filters.bot_version is not None:
            conditions.append("r.bot_version = %s")
            params.append(filters.bot_version)
    if per_topic or filters.topic:
        table = rollups.LIVE_TOPIC_ROLLUPS
        if filters.topic:
            conditions.append(f"r.topic_id = (SELECT id FROM {_TOPICS} WHERE name = %s)")
            params.append(filters.topic)
    else:
        table = rollups.LIVE_CONVERSATION_ROLLUPS
    return table, " AND ".join(conditions), params


def _periods_where(periods: tuple[Period, ...]) -> tuple[str, list]:
    text = " OR ".join(
        f"(c.timestamp {'>=' if part.include_start else '>'} %s AND c.timestamp < %s)" for part in periods
    )
    return f"({text})", [value for part in periods for value in (part.start, part.end)]


def _edges_where(plan: _Plan, filters: Filters) -> tuple[str, list, str, list] | None:
    """The raw conversations `c` at a plan's edges: (their `sign` and its parameters, the
    condition and its parameters). The sign is +1 for rows added to the rollup rows, −1 for
    rows taken from them; one read serves both."""
    if not plan.raw and not plan.minus:
        return None
    if plan.minus:
        minus, sign_params = _periods_where(plan.minus)
        sign = f"CASE WHEN {minus} THEN -1 ELSE 1 END"
    else:
        sign, sign_params = "1", []
    text, params = _periods_where(plan.raw + plan.minus)
    conditions = [text]
    if filters.channel is not None:
        conditions.append("c.channel = %s")
        params.append(filters.channel)
    if filters.bot_version is not None:
        conditions.append("c.bot_version = %s")
        params.append(filters.bot_version)
    if filters.topic:
        # {NULL} for an unknown name: contained in no array.
        conditions.append(f"c.topic_ids @> ARRAY[(SELECT id FROM {_TOPICS} WHERE name = %s)]")
        params.append(filters.topic)
    return sign, sign_params, " AND ".join(conditions), params


class _Read:
    """One statement being put together: its CTEs and their parameters, in text order."""

    def __init__(self) -> None:
        self.ctes: list[str] = []
        self.params: list = []
        self.parts: list[str] = []
        self.with_topics = False

    def window(
        self,
        part: int,
        plan: _Plan,
        filters: Filters,
        *,
        totals: bool = True,
        topics: str | None = None,
        series: tuple[str, str] | None = None,
    ) -> None:
        """Adds the parts of one window: its totals (per bucket when `series` is given as
        (granularity, time zone): date_trunc's names for the granularities are the same
        words), and its topics, "counts" (conversations only) or "all" figures (no histogram:
        no percentile per topic). With a topic filter, only that topic."""
        if series:
            bucket_rollup = "date_trunc(%s, r.start AT TIME ZONE %s)"
            bucket_raw = "date_trunc(%s, c.timestamp AT TIME ZONE %s)"
            bucket_params = list(series)
        else:
            bucket_rollup = bucket_raw = "NULL::timestamp"
            bucket_params = []
        edges = self._edges(part, plan, filters)
        if totals:
            if (rollup_rows := _rollups_where(plan, filters, per_topic=False)) is not None:
                table, where, where_params = rollup_rows
                self._part(
                    f"SELECT %s, NULL::bigint, {bucket_rollup}, 1, {_ROLLUP_COLUMNS}, {ROLLUP_HISTOGRAM_SQL},"
                    f" NULL::smallint[] FROM {table} r WHERE {where}"
                    + (" GROUP BY 3" if series else " HAVING count(*) > 0"),
                    [part, *bucket_params, *where_params],
                )
            if edges is not None:
                source, source_params = edges
                self._part(
                    f"SELECT %s, NULL::bigint, {bucket_raw}, c.sign, {_RAW_COLUMNS}, NULL::integer[],"
                    f" {RAW_BUCKETS_SQL} FROM {source} c GROUP BY 3, 4",
                    [part, *bucket_params, *source_params],
                )
        if topics:
            self.with_topics = True
            if topics == "all":
                rollup_columns, raw_columns = _ROLLUP_COLUMNS, _RAW_COLUMNS
            else:
                rollup_columns, raw_columns = (
                    f"{ROLLUP_SQL[0]}, {_NO_METRICS}",
                    f"{RAW_SQL[0]}, {_NO_METRICS}",
                )
            if (rollup_rows := _rollups_where(plan, filters, per_topic=True)) is not None:
                table, where, where_params = rollup_rows
                self._part(
                    f"SELECT %s, r.topic_id, NULL::timestamp, 1, {rollup_columns}, NULL::integer[],"
                    f" NULL::smallint[] FROM {table} r WHERE {where} GROUP BY r.topic_id",
                    [part, *where_params],
                )
            if edges is not None:
                source, source_params = edges
                # Each raw row once per topic it has (the ids are in the row: no join). An
                # unnest in the select list, not a LATERAL function scan, which builds a
                # tuplestore per row (measured on 4,635 rows: 4.6 vs 8.8 ms).
                topic_rows = f"(SELECT unnest(c.topic_ids) AS topic_id, c.* FROM {source} c) c"
                topic_params = []
                if filters.topic:
                    topic_rows += f" WHERE c.topic_id = (SELECT id FROM {_TOPICS} WHERE name = %s)"
                    topic_params.append(filters.topic)
                self._part(
                    f"SELECT %s, c.topic_id, NULL::timestamp, c.sign, {raw_columns}, NULL::integer[],"
                    f" NULL::smallint[] FROM {topic_rows} GROUP BY 2, 4",
                    [part, *source_params, *topic_params],
                )

    def _edges(self, part: int, plan: _Plan, filters: Filters) -> tuple[str, list] | None:
        """Where the parts read a window's raw edge rows `c` (with their sign) from: a CTE,
        or, when the window has no rollup rows, the rows themselves (then they are the whole
        window, perhaps long: a series that no rollup rows serve, better not kept in memory)."""
        if (edges := _edges_where(plan, filters)) is None:
            return None
        sign, sign_params, where, where_params = edges
        sql = f"SELECT {sign} AS sign, {_EDGE_COLUMNS} FROM {_CONVERSATIONS} c WHERE {where}"
        if not plan.ranges:
            return f"({sql})", [*sign_params, *where_params]
        self._cte(f"edges_{part}", sql, [*sign_params, *where_params])
        return f"edges_{part}", []

    def _cte(self, name: str, sql: str, params: list) -> None:
        self.ctes.append(f"{name} AS MATERIALIZED ({sql})")
        self.params += params

    def _part(self, sql: str, params: list) -> None:
        name = f"part_{len(self.parts)}"
        self._cte(f"{name} ({_PART_COLUMNS})", sql, params)
        self.parts.append(name)

    def rows(self) -> list[tuple]:
        """(part, topic_id, bucket, sign, *metrics, histogram, buckets[, topic name]) rows."""
        if not self.parts:
            return []
        union = " UNION ALL ".join(f"SELECT * FROM {name}" for name in self.parts)
        if self.with_topics:
            union = f"SELECT x.*, t.name FROM ({union}) AS x LEFT JOIN {_TOPICS} t ON t.id = x.topic_id"
        return _fetch(f"WITH {', '.join(self.ctes)} {union}", self.params)


@dataclass
class _Figures:
    """What a read found for one window."""

    totals: Totals = field(default_factory=Totals)
    topics: dict[int, tuple[str, Totals]] = field(default_factory=dict)
    series: dict[datetime, Totals] = field(default_factory=lambda: defaultdict(Totals))


def _read(
    periods: list[Period],
    filters: Filters,
    *,
    totals: bool = True,
    topics: str | None = None,
    series: tuple[str, ZoneInfo] | None = None,
    plan: _Plan | None = None,
) -> list[_Figures]:
    """The figures of each window, in one statement (see `_Read.window`). `plan` says how to
    read a single window when not the usual way (time series). A series's buckets are keyed
    by their start in UTC: Python never finds two datetimes in different zones equal during
    a repeated (DST fall-back) hour, so a display-zone key would miss its row."""
    read = _Read()
    for part, period in enumerate(periods):
        read.window(
            part,
            plan or _plan(period, quarters=_quarters(filters, topics=topics is not None)),
            filters,
            totals=totals,
            topics=topics,
            series=(series[0], str(series[1])) if series else None,
        )
    figures = [_Figures() for _ in periods]
    # A topic's signed sums first (it has a rollup row and up to two raw ones), then one Totals.
    topic_sums: list[dict[int, tuple[str, list]]] = [{} for _ in periods]
    metrics = len(ROLLUP_METRICS)
    for row in read.rows():
        part, topic_id, bucket, sign = row[:4]
        values, (counts, buckets) = row[4 : 4 + metrics], row[4 + metrics : 6 + metrics]
        if topic_id is not None:
            name = row[6 + metrics]
            _, sums = topic_sums[part].setdefault(topic_id, (name, [0] * metrics))
            for position, value in enumerate(values):
                sums[position] += sign * (value or 0)
            continue
        part_totals = Totals.from_columns(values, histogram_counts=counts, buckets=buckets, sign=sign)
        if bucket is None:
            figures[part].totals += part_totals
        else:
            key = bucket.replace(tzinfo=series[1]).astimezone(UTC)
            figures[part].series[key] += part_totals
    for part, by_topic in enumerate(topic_sums):
        figures[part].topics = {
            topic_id: (name, Totals.from_columns(sums)) for topic_id, (name, sums) in by_topic.items()
        }
    return figures


def window_totals(*, period: Period, filters: Filters) -> Totals:
    """The additive figures of a window (rollup rows ± raw rows at its edges)."""
    return _read([period], filters)[0].totals


def _ranked(by_topic: dict[int, tuple[str, Totals]], limit: int) -> list[tuple[str, int]]:
    counts = ((name, totals.conversations) for name, totals in by_topic.values())
    return sorted(((name, n) for name, n in counts if n > 0), key=lambda pair: (-pair[1], pair[0]))[:limit]


def top_topics(
    *, period: Period, filters: Filters, limit: int = TOP_TOPICS_LIMIT, totals: Totals | None = None
) -> list[tuple[str, int]]:
    """Up to `limit` (topic, conversations) pairs, most conversations first, ties by name.

    With a topic filter, only that topic: the rollups count topics one by one, not which
    topics occur together.
    """
    if filters.topic:
        totals = totals or window_totals(period=period, filters=filters)
        return [(filters.topic, totals.conversations)] if totals.conversations else []
    return _ranked(_read([period], filters, totals=False, topics="counts")[0].topics, limit)


def _summary(
    *,
    period: Period,
    filters: Filters,
    totals: Totals,
    cost_settings: CostSettings,
    top: list[tuple[str, int]],
) -> Summary:
    return Summary(
        period=period, filters=filters, totals=totals, cost=totals.cost(cost_settings), top_topics=top
    )


def summary(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    with_top_topics: bool = True,
) -> Summary:
    """The whole window at once: the tutorial's summary keys and everything added to them.

    One read: the totals and the top topics together (with a topic filter, the top topics
    are that topic's count: the totals).
    """
    cost_settings = cost_settings or CostSettings.load()
    read_topics = with_top_topics and not filters.topic
    [figures] = _read([period], filters, topics="counts" if read_topics else None)
    totals = figures.totals
    if read_topics:
        top = _ranked(figures.topics, TOP_TOPICS_LIMIT)
    elif with_top_topics:
        top = top_topics(period=period, filters=filters, totals=totals)
    else:
        top = []
    return _summary(period=period, filters=filters, totals=totals, cost_settings=cost_settings, top=top)


def _topic_stats(
    by_topic: dict[int, tuple[str, Totals]], *, total: int, cost_settings: CostSettings
) -> list[TopicStats]:
    result = [
        TopicStats(
            topic_id=topic_id,
            topic=name,
            totals=totals,
            share=percent(totals.conversations, total),
            escalation_cost=totals.escalation_cost(cost_settings),
        )
        for topic_id, (name, totals) in by_topic.items()
        if totals.conversations > 0
    ]
    return sorted(result, key=lambda topic: (-topic.totals.conversations, topic.topic))


def topic_breakdown(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    total: int | None = None,
) -> list[TopicStats]:
    """Every topic with conversations in the window, most conversations first, ties by name.

    `total` (the window's conversation count, for each topic's share) saves queries when
    the caller already knows it. With a topic filter, only that topic.
    """
    cost_settings = cost_settings or CostSettings.load()
    if total == 0:
        return []
    [figures] = _read([period], filters, totals=total is None, topics="all")
    if total is None:
        total = figures.totals.conversations
    return _topic_stats(figures.topics, total=total, cost_settings=cost_settings)


def bucket_starts(*, start: datetime, end: datetime, granularity: str, tz: ZoneInfo) -> list[datetime]:
    """The start of every bucket that overlaps [start, end), in `tz`, empty ones included.

    Days and weeks are calendar days in `tz` (23 or 25 hours long on DST changes), so
    buckets step in local wall-clock time and are normalized after each step.
    (Zulip's analytics/lib/time_utils.py::time_range does the same.)
    """
    if start >= end:
        return []
    if granularity == Granularity.HOUR:
        # Hours are UTC hours (shown in `tz`): exact across DST changes, where a local
        # hour repeats or goes missing. Same as the SQL side (date_trunc in UTC).
        current = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        buckets = []
        while current < end:
            buckets.append(current.astimezone(tz))
            current += timedelta(hours=1)
        return buckets
    local = start.astimezone(tz)
    first = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == Granularity.WEEK:
        first -= timedelta(days=first.weekday())  # Monday, as PostgreSQL's date_trunc('week')
    step = timedelta(days=7 if granularity == Granularity.WEEK else 1)
    buckets, day = [], first.replace(tzinfo=None)
    while True:
        bucket = day.replace(tzinfo=tz)
        if bucket >= end:
            return buckets
        buckets.append(bucket)
        day += step


def _offsets(tz: ZoneInfo, period: Period) -> set[timedelta]:
    """The zone's offsets from UTC over the period (a local day starts on a UTC hour, or
    quarter hour, when they are whole ones). Read at both ends and every day between: an
    offset lasts far longer than a day, but a window may span a season whose offset differs
    (Lord Howe Island: +11 in summer, +10:30 in winter)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    moments = [start + DAY * days for days in range(int((end - start) / DAY) + 1)] + [end]
    return {moment.astimezone(tz).utcoffset() for moment in moments}


def timeseries(
    *,
    period: Period,
    filters: Filters,
    granularity: str,
    tz: ZoneInfo,
    cost_settings: CostSettings | None = None,
) -> list[Bucket]:
    """Per-bucket totals over the window, one entry for every bucket, empty ones as zeros.

    Hour buckets (UTC hours) read hourly rollups. Day and week buckets in UTC read daily
    rollups; in another time zone they are made of hourly ones, or, where the offset is not a
    whole number of hours (India, Nepal, Newfoundland, ...), of hourly ones and the
    quarter-hour ones of the hours that a bucket starts in. Such a series of one topic filtered
    by channel or version (no quarter-hour rows per topic and channel), or in a zone whose
    offset is not a whole number of quarter hours (none in use today), reads the raw rows.
    """
    cost_settings = cost_settings or CostSettings.load()
    bucket_tz = UTC if granularity == Granularity.HOUR else tz
    offsets = _offsets(bucket_tz, period)
    whole_hours = all(offset % HOUR == timedelta(0) for offset in offsets)
    plan = _plan(
        period,
        quarters=_quarters(filters, topics=False),
        use_hours=whole_hours,
        use_days=granularity != Granularity.HOUR and str(tz) in _UTC_NAMES,
        all_raw=any(offset % QUARTER != timedelta(0) for offset in offsets),
    )
    if not whole_hours:
        plan = replace(plan, local_buckets=(granularity, str(bucket_tz)))
    [figures] = _read([period], filters, series=(granularity, bucket_tz), plan=plan)
    by_start = figures.series
    buckets, running = [], Decimal(0)
    for bucket_start in bucket_starts(start=period.start, end=period.end, granularity=granularity, tz=tz):
        totals = by_start.get(bucket_start.astimezone(UTC), Totals())
        cost = totals.cost(cost_settings)
        running += cost.savings
        buckets.append(Bucket(start=bucket_start, totals=totals, cost=cost, cumulative_savings=running))
    return buckets


KNOWLEDGE_GAPS_LIMIT = 5


@dataclass(frozen=True)
class TopicTrend:
    stats: TopicStats
    previous_conversations: int
    change: Decimal | None  # % change in conversations; None when the topic is new
    rate_change: Decimal | None  # change of its AI resolution rate, percentage points


@dataclass(frozen=True)
class Dashboard:
    """Everything the staff dashboard shows, for one period and the one before it."""

    period: Period
    previous_period: Period
    filters: Filters
    granularity: str
    tz: ZoneInfo
    current: Summary
    previous: Summary
    buckets: list[Bucket]
    topics: list[TopicStats]
    previous_topics: dict[int, TopicStats]
    has_any_data: bool
    channels: list[str]
    bot_versions: list[str]

    @property
    def topic_trends(self) -> list[TopicTrend]:
        """Every topic of the period beside its figures in the previous period."""
        trends = []
        for topic in self.topics:
            before = self.previous_topics.get(topic.topic_id)
            previous_count = before.totals.conversations if before else 0
            trends.append(
                TopicTrend(
                    stats=topic,
                    previous_conversations=previous_count,
                    change=relative_change(topic.totals.conversations, previous_count),
                    rate_change=difference(
                        topic.totals.ai_resolution_rate, before.totals.ai_resolution_rate if before else None
                    ),
                )
            )
        return trends

    @property
    def knowledge_gaps(self) -> list[TopicStats]:
        """The topics whose escalations cost most: what to document next."""
        escalated = [topic for topic in self.topics if topic.totals.escalated]
        return sorted(escalated, key=lambda topic: (-topic.escalation_cost, topic.topic))[
            :KNOWLEDGE_GAPS_LIMIT
        ]


def previous_period(period: Period) -> Period:
    """The period of the same length that ends where `period` starts."""
    return Period(
        start=period.start - (period.end - period.start), end=period.start, include_start=period.include_start
    )


def _filter_menus(period: Period) -> tuple[set[str], set[str]]:
    """The channels and bot versions that occur in a period (from its rollup rows: cheap)."""
    if (ranges := _ranges_where(_plan(period))) is None:
        return set(), set()
    where, params = ranges
    rows = _fetch(
        f"SELECT DISTINCT r.channel, r.bot_version FROM {rollups.LIVE_CONVERSATION_ROLLUPS} r"
        f" WHERE {where} AND r.channel IS NOT NULL",
        params,
    )
    return {channel for channel, _ in rows}, {version for _, version in rows}


def dashboard(*, period: Period, filters: Filters, granularity: str, tz: ZoneInfo) -> Dashboard:
    """The dashboard's numbers: the same reads as the API's selectors, each made once for
    the period and the one before it together, in a fixed number of queries."""
    cost_settings = CostSettings.load()
    before = previous_period(period)
    # Both periods' totals and topics in one read.
    now, then = _read([period, before], filters, topics="all")
    totals, previous_totals = now.totals, then.totals
    topics = _topic_stats(now.topics, total=totals.conversations, cost_settings=cost_settings)
    previous_topics = _topic_stats(
        then.topics, total=previous_totals.conversations, cost_settings=cost_settings
    )
    # The top topics are the first rows of the topics table (with a topic filter, that topic).
    top = [(topic.topic, topic.totals.conversations) for topic in topics[:TOP_TOPICS_LIMIT]]
    channels, versions = _filter_menus(period)
    return Dashboard(
        period=period,
        previous_period=before,
        filters=filters,
        granularity=granularity,
        tz=tz,
        current=_summary(period=period, filters=filters, totals=totals, cost_settings=cost_settings, top=top),
        previous=_summary(
            period=before, filters=filters, totals=previous_totals, cost_settings=cost_settings, top=[]
        ),
        buckets=timeseries(
            period=period, filters=filters, granularity=granularity, tz=tz, cost_settings=cost_settings
        ),
        topics=topics,
        previous_topics={topic.topic_id: topic for topic in previous_topics},
        has_any_data=bool(totals.conversations) or Conversation.objects.exists(),
        channels=sorted((channels | {filters.channel or ""}) - {""}),
        bot_versions=sorted((versions | {filters.bot_version or ""}) - {""}),
    )
