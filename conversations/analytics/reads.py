"""One SQL statement per read: the rollup rows and raw edge rows of a plan (analytics.planner),
for one or more windows at once, back as `Totals` per window, per topic and per bucket.

SQL rather than the ORM, for two reasons: a read is one statement of materialized CTEs over the
rollups *with their unfolded deltas* (rollups.LIVE_*, a UNION ALL subquery), which a QuerySet
cannot select from; and compiling ~20 aggregate expressions per query cost more than PostgreSQL
took to run it (docs/benchmarks.md, "SQL text for reads"). The SQL of each figure is the one
compiled from its declaration (analytics.figures); the statement is composed with psycopg.sql
from fixed fragments and names, every value a bound parameter.

Each part of a read (rollup rows, raw edge rows, per topic or not) is a materialized CTE and the
statement the UNION ALL of them, each row tagged with its window's number. The CTEs are a
planner fence on purpose: over a UNION ALL of two costly branches PostgreSQL plans a Parallel
Append, and starting its workers took longer than the whole read (docs/benchmarks.md,
"Parallel Append"). The raw rows at a window's edges are a CTE too: read once for the totals
and the topic counts.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from django.db import close_old_connections, connection
from psycopg import sql

from conversations import rollups
from conversations.analytics.figures import (
    BY_NAME,
    CUTOFFS,
    FIGURES,
    HISTOGRAM,
    NAMES,
    CutOff,
    change_columns,
)
from conversations.analytics.metrics import Totals
from conversations.analytics.planner import HOUR, MICROSECOND, Plan, ceil, floor
from conversations.analytics.query import Filters, Granularity, Period
from conversations.models import Conversation, Span, Topic

T = TypeVar("T")


class TopicFigures(enum.Enum):
    """What a read takes per topic: its conversations only, or every figure (no histogram:
    no percentile per topic)."""

    COUNTS = "counts"
    ALL = "all"


@dataclass
class WindowFigures:
    """What a read found for one window."""

    totals: Totals = field(default_factory=Totals)
    topics: dict[int, tuple[str, Totals]] = field(default_factory=dict)
    # Conversations per escalation reason (when asked for), reasons without any left out.
    reasons: dict[str, int] = field(default_factory=dict)
    # By bucket start in UTC: Python never finds two datetimes in different zones equal during
    # a repeated (DST fall-back) hour, so a display-zone key would miss its row.
    series: dict[datetime, Totals] = field(default_factory=lambda: defaultdict(Totals))


_CONVERSATIONS = sql.Identifier(Conversation._meta.db_table)
# Raw rows of up to this long are read by time alone, their topics checked row by row
# (docs/benchmarks.md, "Topic filters at the edges").
_SHORT_EDGES = timedelta(hours=6)
_TOPIC_ID_OF_NAME = sql.SQL("(SELECT id FROM {} WHERE name = %s)").format(
    sql.Identifier(Topic._meta.db_table)
)
_LIVE = {
    False: sql.SQL(rollups.LIVE_CONVERSATION_ROLLUPS),
    True: sql.SQL(rollups.LIVE_TOPIC_ROLLUPS),
}


@functools.cache
def _sums(names: tuple[str, ...] | None, *, rollup: bool) -> sql.SQL:
    """The figures' sums over rollup rows `r` or raw rows `c`: all of them, or only `names`
    (the others NULL; typed: a CTE's NULL column would be text). Topic and reason counts take
    only the conversations, cut-off windows only the figures they are read for: each sum left
    out is work saved on every row read."""
    return _fixed(
        sql.SQL(", ").join(
            (
                sql.SQL("sum(r.{})").format(sql.Identifier(name))
                if rollup
                else sql.SQL(BY_NAME[name].sql_sum(signed=False))
            )
            if names is None or name in names
            else sql.SQL("NULL::bigint")
            for name in NAMES
        )
    )


_COUNTS = ("conversations",)
# Their histograms summed element by element (the aggregate of migration 0003; docs/benchmarks.md,
# "Histograms summed by an aggregate").
_ROLLUP_HISTOGRAM = sql.SQL("sa_histogram_sum(r.{})").format(sql.Identifier(HISTOGRAM))
_RAW_BUCKETS = sql.SQL("array_agg(c.response_ms_bucket) FILTER (WHERE c.response_ms_bucket IS NOT NULL)")
# The columns of every part: which window, its topic (NULL for the window's totals), its
# bucket (NULL unless a series), its escalation reason (NULL unless counting them), the sign of
# raw rows, the figures, the histogram's counts (rollup rows) or the response-time buckets (raw
# rows).
_PART_COLUMNS = sql.SQL(", ").join(
    sql.Identifier(name)
    for name in ("part", "topic_id", "bucket", "reason", "sign", *NAMES, "histogram", "buckets")
)
# What the figures, the buckets, the topic and reason counts need of a raw conversation (its
# channel and version only when a figure reads them: the filters apply where the rows are read).
_FIGURES_READ = {column for figure in FIGURES for column in figure.columns}
_EDGE_COLUMNS = sql.SQL(", ").join(
    sql.SQL("c.{}").format(sql.Identifier(name))
    for name in change_columns()
    if name not in ("channel", "bot_version") or name in _FIGURES_READ
)


def _fixed(text: sql.Composable) -> sql.SQL:
    """A fragment without values, rendered once: composing it anew for every read cost more
    than the rest of building the statement."""
    return sql.SQL(text.as_string())


_PART_COLUMNS, _EDGE_COLUMNS, _TOPIC_ID_OF_NAME = map(
    _fixed, (_PART_COLUMNS, _EDGE_COLUMNS, _TOPIC_ID_OF_NAME)
)
# Whether a local bucket (date_trunc's granularity, time zone) starts inside the UTC hour `{hour}`.
_BUCKET_STARTS_IN = (
    "date_trunc(%s, {hour} AT TIME ZONE %s)"
    " <> date_trunc(%s, ({hour} + interval '1 hour' - interval '1 microsecond') AT TIME ZONE %s)"
)


def _where(conditions: Sequence[sql.Composable], joiner: str = " AND ") -> sql.Composable:
    return sql.SQL(joiner).join(conditions)


def _ranges_where(plan: Plan) -> tuple[sql.Composable, list] | None:
    """The rollup rows `r` of a plan's ranges (the leading columns of the rollup tables' unique
    keys, which serve these reads)."""
    if not plan.ranges:
        return None
    conditions, params = [], []
    for span, start, end in plan.ranges:
        hours = (ceil(start, HOUR), floor(end, HOUR))
        if span != Span.QUARTER or plan.local_buckets is None or hours[0] >= hours[1]:
            conditions.append(sql.SQL("(r.span = %s AND r.start >= %s AND r.start < %s)"))
            params += [span.value, start, end]
            continue
        # Quarter hours where a bucket starts in their hour (and before or after the whole
        # hours); every other whole hour in one row: 27 rows a day in India rather than 96.
        granularity, tz = plan.local_buckets
        bucket = [granularity.value, str(tz)] * 2
        in_its_hour = _BUCKET_STARTS_IN.format(hour="date_trunc('hour', r.start, 'UTC')")
        in_hour = _BUCKET_STARTS_IN.format(hour="r.start")
        conditions += [
            sql.SQL(
                "(r.span = %s AND r.start >= %s AND r.start < %s"
                f" AND (r.start < %s OR r.start >= %s OR {in_its_hour}))"
            ),
            sql.SQL(f"(r.span = %s AND r.start >= %s AND r.start < %s AND NOT {in_hour})"),
        ]
        params += [Span.QUARTER.value, start, end, *hours, *bucket, Span.HOUR.value, *hours, *bucket]
    return sql.SQL("({})").format(_where(conditions, " OR ")), params


def _rollups_where(
    plan: Plan, filters: Filters, *, per_topic: bool, per_reason: bool = False
) -> tuple[sql.Composable, sql.Composable, list] | None:
    """The rollups (unfolded deltas included) and rows `r` of a plan (rollups.SPREAD): per
    topic when asked or filtering by topic; for all channels and versions (the partial
    indexes' condition) or, with a channel or version filter, per channel × version; for all
    escalation reasons or, with a reason filter or `per_reason` (counting the reasons), per
    reason. Per topic and reason, only per channel × version rows exist (rollups.SPREAD): for
    all channels, their sum."""
    if (ranges := _ranges_where(plan)) is None:
        return None
    text, params = ranges
    conditions = [text]
    topic_rows = per_topic or bool(filters.topic)
    reason_rows = per_reason or filters.escalation_reason is not None
    all_channels = filters.channel is None and filters.bot_version is None
    if all_channels and not (topic_rows and reason_rows):
        conditions.append(sql.SQL("r.channel IS NULL AND r.bot_version IS NULL"))
    else:
        conditions.append(sql.SQL("r.channel IS NOT NULL"))
    if filters.escalation_reason is None:  # else the label filters below pick its rows
        conditions.append(sql.SQL(f"r.escalation_reason IS {'NOT ' if per_reason else ''}NULL"))
    _add_label_filters("r", filters, conditions, params)
    if filters.topic:
        conditions.append(sql.SQL("r.topic_id = {}").format(_TOPIC_ID_OF_NAME))
        params.append(filters.topic)
    return _LIVE[topic_rows], _where(conditions), params


def _add_label_filters(alias: str, filters: Filters, conditions: list, params: list) -> None:
    """The channel, bot version and escalation reason filters, on rows `alias` (rollup rows or
    conversations)."""
    for column, value in (
        ("channel", filters.channel),
        ("bot_version", filters.bot_version),
        ("escalation_reason", filters.escalation_reason),
    ):
        if value is not None:
            conditions.append(sql.SQL("{}.{} = %s").format(sql.Identifier(alias), sql.Identifier(column)))
            params.append(value)


def _periods_where(periods: tuple[Period, ...]) -> tuple[sql.Composable, list]:
    text = _where(
        [
            sql.SQL("(c.timestamp >= %s AND c.timestamp < %s)")
            if part.include_start
            else sql.SQL("(c.timestamp > %s AND c.timestamp < %s)")
            for part in periods
        ],
        " OR ",
    )
    return sql.SQL("({})").format(text), [value for part in periods for value in (part.start, part.end)]


def _edges_sql(plan: Plan, filters: Filters) -> tuple[sql.Composable, list] | None:
    """The raw conversations `c` at a plan's edges, each with its `sign`: +1 for rows added to
    the rollup rows, −1 for rows taken from them; one read serves both."""
    if not plan.raw and not plan.minus:
        return None
    if plan.minus:
        minus, params = _periods_where(plan.minus)
        sign = sql.SQL("CASE WHEN {} THEN -1 ELSE 1 END").format(minus)
    else:
        sign, params = sql.SQL("1"), []
    text, where_params = _periods_where(plan.raw + plan.minus)
    conditions, params = [text], params + where_params
    _add_label_filters("c", filters, conditions, params)
    if filters.topic:
        # Edges of a few hours: `= ANY`, which no index serves, so that PostgreSQL reads them by
        # time and checks each row's topics. With `@>` it ANDs in the topic's whole GIN bitmap
        # (every conversation of a common topic: ~55 ms at 10M, however short the edge). A
        # long raw read (a series of raw rows) keeps `@>` and the GIN index. Both are false for
        # an unknown name (NULL).
        short = sum((part.end - part.start for part in plan.raw + plan.minus), timedelta(0)) <= _SHORT_EDGES
        template = "{} = ANY(c.topic_ids)" if short else "c.topic_ids @> ARRAY[{}]"
        conditions.append(sql.SQL(template).format(_TOPIC_ID_OF_NAME))
        params.append(filters.topic)
    statement = sql.SQL("SELECT {} AS sign, {} FROM {} c WHERE {}").format(
        sign, _EDGE_COLUMNS, _CONVERSATIONS, _where(conditions)
    )
    return statement, params


class _Statement:
    """One statement being put together: its CTEs and their parameters, in text order."""

    def __init__(self) -> None:
        self.ctes: list[sql.Composable] = []
        self.params: list = []
        self.parts: list[sql.Identifier] = []
        self.with_topics = False

    def window(
        self,
        part: int,
        plan: Plan,
        filters: Filters,
        *,
        totals: bool = True,
        topics: TopicFigures | None = None,
        series: tuple[Granularity, ZoneInfo] | None = None,
        reasons: bool = False,
        only: tuple[str, ...] | None = None,
    ) -> None:
        """Adds the parts of one window: its totals (per bucket of `series`), its topics and
        its conversations per escalation reason. With a topic filter, only that topic. With
        `only`, only those figures (and no histogram)."""
        if series:
            bucket_rollup = sql.SQL("date_trunc(%s, r.start AT TIME ZONE %s)")
            bucket_raw = sql.SQL("date_trunc(%s, c.timestamp AT TIME ZONE %s)")
            bucket_params = [series[0].value, str(series[1])]
        else:
            bucket_rollup = bucket_raw = sql.SQL("NULL::timestamp")
            bucket_params = []
        edges = self._edges(part, plan, filters)
        if totals:
            if (rollup_rows := _rollups_where(plan, filters, per_topic=False)) is not None:
                table, where, where_params = rollup_rows
                # A window with no rollup rows would still give one (empty) row: HAVING drops it.
                grouped = sql.SQL("GROUP BY bucket" if series else "HAVING count(*) > 0")
                self._part(
                    sql.SQL(
                        "SELECT %s, NULL::bigint, {bucket} AS bucket, NULL::varchar, 1, {sums},"
                        " {histogram}, NULL::smallint[] FROM {table} r WHERE {where} {grouped}"
                    ).format(
                        bucket=bucket_rollup,
                        sums=_sums(only, rollup=True),
                        histogram=_ROLLUP_HISTOGRAM if only is None else sql.SQL("NULL::integer[]"),
                        table=table,
                        where=where,
                        grouped=grouped,
                    ),
                    [part, *bucket_params, *where_params],
                )
            if edges is not None:
                source, source_params = edges
                self._part(
                    sql.SQL(
                        "SELECT %s, NULL::bigint, {bucket} AS bucket, NULL::varchar, c.sign, {sums},"
                        " NULL::integer[], {buckets} FROM {source} c GROUP BY bucket, c.sign"
                    ).format(
                        bucket=bucket_raw,
                        sums=_sums(only, rollup=False),
                        buckets=_RAW_BUCKETS if only is None else sql.SQL("NULL::smallint[]"),
                        source=source,
                    ),
                    [part, *bucket_params, *source_params],
                )
        if topics:
            self._topics(part, plan, filters, topics, edges, only)
        if reasons:
            self._reasons(part, plan, filters, edges)

    def _reasons(self, part, plan, filters, edges) -> None:
        """The conversations of each escalation reason: from the per-label rollup rows (per
        topic with a topic filter), and the raw edge rows."""
        if (rollup_rows := _rollups_where(plan, filters, per_topic=False, per_reason=True)) is not None:
            table, where, where_params = rollup_rows
            self._part(
                sql.SQL(
                    "SELECT %s, NULL::bigint, NULL::timestamp, r.escalation_reason, 1, {sums},"
                    " NULL::integer[], NULL::smallint[] FROM {table} r"
                    " WHERE {where} AND r.escalation_reason <> '' GROUP BY r.escalation_reason"
                ).format(sums=_sums(_COUNTS, rollup=True), table=table, where=where),
                [part, *where_params],
            )
        if edges is not None:
            source, source_params = edges
            self._part(
                sql.SQL(
                    "SELECT %s, NULL::bigint, NULL::timestamp, c.escalation_reason, c.sign, {sums},"
                    " NULL::integer[], NULL::smallint[] FROM {source} c"
                    " WHERE c.escalation_reason <> '' GROUP BY c.escalation_reason, c.sign"
                ).format(sums=_sums(_COUNTS, rollup=False), source=source),
                [part, *source_params],
            )

    def _topics(self, part, plan, filters, topics: TopicFigures, edges, only) -> None:
        self.with_topics = True
        names = only if topics is TopicFigures.ALL else _COUNTS
        if (rollup_rows := _rollups_where(plan, filters, per_topic=True)) is not None:
            table, where, where_params = rollup_rows
            self._part(
                sql.SQL(
                    "SELECT %s, r.topic_id, NULL::timestamp, NULL::varchar, 1, {sums}, NULL::integer[],"
                    " NULL::smallint[] FROM {table} r WHERE {where} GROUP BY r.topic_id"
                ).format(sums=_sums(names, rollup=True), table=table, where=where),
                [part, *where_params],
            )
        if edges is not None:
            source, source_params = edges
            # Each raw row once per topic it has (the ids are in the row: no join). An unnest
            # in the select list, not a LATERAL function scan, which builds a tuplestore per row
            # (docs/benchmarks.md, "Topic counts of raw rows: unnest in the select list").
            topic_rows = sql.SQL("(SELECT unnest(c.topic_ids) AS topic_id, c.* FROM {} c) c").format(source)
            topic_params = []
            if filters.topic:
                topic_rows = sql.SQL("{} WHERE c.topic_id = {}").format(topic_rows, _TOPIC_ID_OF_NAME)
                topic_params.append(filters.topic)
            self._part(
                sql.SQL(
                    "SELECT %s, c.topic_id, NULL::timestamp, NULL::varchar, c.sign, {sums},"
                    " NULL::integer[], NULL::smallint[] FROM {rows} GROUP BY c.topic_id, c.sign"
                ).format(sums=_sums(names, rollup=False), rows=topic_rows),
                [part, *source_params, *topic_params],
            )

    def _edges(self, part: int, plan: Plan, filters: Filters) -> tuple[sql.Composable, list] | None:
        """Where the parts read a window's raw edge rows `c` (with their sign) from: a CTE,
        or, when the window has no rollup rows, the rows themselves (then they are the whole
        window, perhaps long: a series that no rollup rows serve, better not kept in memory)."""
        if (edges := _edges_sql(plan, filters)) is None:
            return None
        statement, params = edges
        if not plan.ranges:
            return sql.SQL("({})").format(statement), params
        name = sql.Identifier(f"edges_{part}")
        self._cte(name, statement, params)
        return name, []

    def _cte(self, name: sql.Composable, statement: sql.Composable, params: list) -> None:
        self.ctes.append(sql.SQL("{} AS MATERIALIZED ({})").format(name, statement))
        self.params += params

    def _part(self, statement: sql.Composable, params: list) -> None:
        name = sql.Identifier(f"part_{len(self.parts)}")
        self._cte(sql.SQL("{} ({})").format(name, _PART_COLUMNS), statement, params)
        self.parts.append(name)

    def rows(self) -> list[tuple]:
        """(part, topic_id, bucket, reason, sign, *figures, histogram, buckets[, topic name]) rows."""
        if not self.parts:
            return []
        union = sql.SQL(" UNION ALL ").join(sql.SQL("SELECT * FROM {}").format(name) for name in self.parts)
        if self.with_topics:
            union = sql.SQL("SELECT x.*, t.name FROM ({}) AS x LEFT JOIN {} t ON t.id = x.topic_id").format(
                union, sql.Identifier(Topic._meta.db_table)
            )
        statement = sql.SQL("WITH {} {}").format(sql.SQL(", ").join(self.ctes), union)
        with connection.cursor() as cursor:
            cursor.execute(statement.as_string(), self.params)
            return cursor.fetchall()


def read(
    periods: Sequence[Period],
    filters: Filters,
    *,
    plan: Callable[[Period], Plan],
    now: datetime,
    totals: bool = True,
    topics: TopicFigures | None = None,
    series: tuple[Granularity, ZoneInfo] | None = None,
    cut_offs: Sequence[CutOff] | None = None,
    reasons: bool = False,
) -> list[WindowFigures]:
    """The figures of each window, each read as `plan` says, in one statement.

    The cut-off figures (figures.CUTOFFS unless given) are the figures of each window clipped
    at now − their age, read in the same statement as windows of their own.
    """
    cut_offs = CUTOFFS if cut_offs is None else cut_offs
    with_topics = topics is TopicFigures.ALL  # topic counts alone carry no cut-off figures
    if not totals and not with_topics:
        cut_offs = ()
    by_age: dict[timedelta, list[CutOff]] = defaultdict(list)
    for cut_off in cut_offs:
        by_age[cut_off.age()].append(cut_off)
    # (window index, the cut-offs it is read for or None, its period), one part each.
    windows = [(index, None, period) for index, period in enumerate(periods)]
    windows += [
        (index, group, period.clipped(now - age + MICROSECOND))
        for index, period in enumerate(periods)
        for age, group in by_age.items()
    ]
    statement = _Statement()
    for part, (_, group, period) in enumerate(windows):
        part_topics = topics if group is None or with_topics else None
        statement.window(
            part,
            plan(period),
            filters,
            totals=totals,
            topics=part_topics,
            series=series,
            reasons=reasons and group is None,
            only=None if group is None else tuple(dict.fromkeys(cut_off.of for cut_off in group)),
        )
    read_figures = _figures(statement.rows(), len(windows), series)
    figures = read_figures[: len(periods)]
    for (index, group, _), clipped in zip(windows[len(periods) :], read_figures[len(periods) :], strict=True):
        _add_cut_offs(figures[index], clipped, group, with_topics=with_topics)
    return figures


def _figures(rows: list[tuple], parts: int, series) -> list[WindowFigures]:
    """The rows of a statement as each part's figures."""
    figures = [WindowFigures() for _ in range(parts)]
    # A topic's signed sums first (it has a rollup row and up to two raw ones), then one Totals.
    topic_sums: list[dict[int, tuple[str, list]]] = [{} for _ in range(parts)]
    count = len(NAMES)
    for row in rows:
        part, topic_id, bucket, reason, sign = row[:5]
        values, (counts, buckets) = row[5 : 5 + count], row[5 + count : 7 + count]
        if reason is not None:
            reasons = figures[part].reasons
            reasons[reason] = reasons.get(reason, 0) + sign * values[0]
            continue
        if topic_id is not None:
            name = row[7 + count]
            _, sums = topic_sums[part].setdefault(topic_id, (name, [0] * count))
            for position, value in enumerate(values):
                sums[position] += sign * (value or 0)
            continue
        part_totals = Totals.from_columns(values, histogram_counts=counts, buckets=buckets, sign=sign)
        if bucket is None:
            figures[part].totals += part_totals
        else:
            figures[part].series[bucket.replace(tzinfo=series[1]).astimezone(UTC)] += part_totals
    for window in figures:
        window.reasons = {reason: count for reason, count in window.reasons.items() if count}
    for part, by_topic in enumerate(topic_sums):
        figures[part].topics = {
            topic_id: (name, Totals.from_columns(sums)) for topic_id, (name, sums) in by_topic.items()
        }
    return figures


def _add_cut_offs(
    figures: WindowFigures, clipped: WindowFigures, group: list[CutOff], *, with_topics: bool
) -> None:
    """Puts the figures of the clipped window into the window's, as its cut-off figures: every
    topic and bucket of the window gets them, zero where the clipped window has none (it lies
    inside the window, so it has nothing the window lacks)."""

    def values(totals: Totals | None) -> dict:
        totals = totals or Totals()
        return {cut_off.name: getattr(totals, cut_off.of) for cut_off in group}

    figures.totals = figures.totals.with_cut_offs(values(clipped.totals))
    for start, totals in figures.series.items():
        figures.series[start] = totals.with_cut_offs(values(clipped.series.get(start)))
    if with_topics:
        for topic_id, (name, totals) in figures.topics.items():
            found = clipped.topics.get(topic_id)
            figures.topics[topic_id] = (name, totals.with_cut_offs(values(found[1] if found else None)))


def filter_menus(plan: Plan) -> tuple[set[str], set[str], set[str]]:
    """The channels, bot versions and escalation reasons of a plan's rollup rows (cheap: no
    raw rows)."""
    if (ranges := _ranges_where(plan)) is None:
        return set(), set(), set()
    where, params = ranges
    statement = sql.SQL(
        "SELECT DISTINCT r.channel, r.bot_version, r.escalation_reason FROM {} r"
        " WHERE {} AND r.channel IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.format(_LIVE[False], where).as_string(), params)
        rows = cursor.fetchall()
    return {row[0] for row in rows}, {row[1] for row in rows}, {row[2] for row in rows if row[2]}


# --- Two reads at once ------------------------------------------------------------------------

# The thread that runs the first of two reads on a connection of its own (`both`). Made on first
# use, not at import: a server that forks its workers after loading the app (gunicorn's
# --preload) would otherwise fork a process whose executor thread does not exist.
_other_reader: ThreadPoolExecutor | None = None
_other_reader_lock = threading.Lock()


def _reader() -> ThreadPoolExecutor:
    global _other_reader
    with _other_reader_lock:
        if _other_reader is None:
            _other_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="second-read")
        return _other_reader


def _on_own_connection(read_one: Callable[[], T]) -> T:
    # What Django does around a request: a connection that broke or outlived CONN_MAX_AGE is
    # closed first (and opened again by the read).
    close_old_connections()
    return read_one()


def close_reader_connection() -> None:
    """Close the reader thread's connection, if it has one (a test's database must have no
    connection left when it is dropped)."""
    with _other_reader_lock:
        reader = _other_reader
    if reader is not None:
        # Looked up on the reader thread: `connection` is each thread's own.
        reader.submit(lambda: connection.close()).result()


def both(first: Callable[[], T], second: Callable[[], T]) -> tuple[T, T]:
    """Two independent reads (the two arms of a comparison), the first on a reader thread's
    own connection while this thread runs the second: on two cores, the time of the slower one
    instead of their sum (docs/benchmarks.md, "Two arms at once").

    One after the other inside a transaction (a test's, an atomic request's): another
    connection would not see what it has written. The reader thread is one per process: two
    requests comparing at the same moment take turns on it, each still running its second read
    on its own connection.
    """
    if connection.in_atomic_block:
        return first(), second()
    pending = _reader().submit(_on_own_connection, first)
    try:
        second_result = second()
    finally:
        first_result = pending.result()  # waits even when the second failed: no stray read
    return first_result, second_result
