"""Keeping the rollups (per quarter hour, hour and day) right, in the statement that changes
conversations.

A conversation contributes to the rows of its UTC quarter hour, hour and day (`SPREAD`), in
ConversationRollup and, once per topic, in TopicRollup: the "all" row (labels NULL) and its
channel × bot version's row; with an escalation reason, also that reason's rows (for all
channels and versions, and for its channel × version; per topic, for its channel × version
only). Per topic, quarter hours only in the "all" rows; per channel × version × reason, no
quarter hours.

Every write (ingest, late CSAT, delete) is one SQL statement whose `changes` CTE lists
the conversations it takes out (sign −1, their stored values) and puts in (sign +1, the new
values). `CHANGES_TO_ROLLUPS` turns those into summed deltas per rollup row and upserts
them, `col = col + delta`, rows sorted by key: concurrent writers then lock the shared rows
(the current hour is shared by everyone) in one order and never deadlock, and no update is
lost. Doing this in SQL keeps a batch of 1,000 conversations from costing 4,000 Python
dictionary updates per metric, and a write from costing one round trip per table.

Writes of a few conversations (a single POST, a late CSAT) use `CHANGES_TO_DELTAS` instead:
the `changes` rows are appended to RollupDelta, and `fold` moves them into the rollups later,
many at a time (each server process after a response, at most every FOLD_SECONDS; a purge
before each batch). Concurrent single POSTs all updated the current hour's rows, each
waiting for the one before to commit; appending, none waits. Reads use LIVE_*_ROLLUPS: the
rollup rows plus each unfolded delta spread into the rows it counts in, so no figure depends
on whether a fold has run.

`rebuild()` recomputes everything from the raw conversations (manage.py rebuild_rollups),
with the same metric definitions (sign = +1).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from django.db import DatabaseError, connection

from conversations import histogram
from conversations.analytics import figures
from conversations.models import ConversationRollup, RollupDelta, Span, TopicRollup

logger = logging.getLogger(__name__)

# The figures' sums over changed conversations `c`, each carrying a `sign` (+1 for a
# contribution put in, −1 for one taken out), from the one declaration of each figure
# (analytics.figures): for the writes, `rebuild()` and the reads of unfolded deltas.
METRICS = figures.NAMES
HISTOGRAM = figures.HISTOGRAM


def _metric_sums(names: tuple[str, ...] | list[str] = METRICS) -> str:
    return ", ".join(f"coalesce({figures.BY_NAME[name].sql_sum(signed=True)}, 0) AS {name}" for name in names)


# The start of a conversation's rollup row of each span, from its timestamp `{x}`.
START_SQL = {
    Span.QUARTER: "date_bin('15 minutes', {x}, TIMESTAMPTZ '2000-01-01 00:00+00')",
    Span.HOUR: "date_trunc('hour', {x}, 'UTC')",
    Span.DAY: "date_trunc('day', {x}, 'UTC')",
}
# The rows a conversation counts in, as (span, per channel × bot version rather than for all
# channels and versions, per escalation reason rather than for all), in ConversationRollup and,
# per topic, in TopicRollup; a row per reason only for a conversation with one.
#
# Quarter hours bound the raw rows a read takes at a window's edges to 7.5 minutes' worth, and
# serve the days of time zones half or a quarter of an hour off UTC (analytics.planner). Per
# topic they are kept for all channels, versions and reasons only, and per channel × version ×
# reason not at all: rows of 15 minutes that fine would outnumber the conversations. The rows
# per reason are extra rows, beside those for all reasons: a read that does not ask for reasons
# (most) reads as many rows as before reasons existed. Per topic, a reason's rows are kept per
# channel × version only, and a read for all channels sums them (analytics.reads): at about one
# conversation per topic × reason × hour, the rows for all channels were nearly as many, a
# quarter of the rows an import wrote (docs/benchmarks.md, "Topic rows per reason per
# channel × version only").
_ALL_KINDS = [(False, False), (True, False), (False, True), (True, True)]
SPREAD = {  # by per_topic: (span, per_channel, per_reason)
    False: [
        (span, *kind)
        for span in (Span.QUARTER, Span.HOUR, Span.DAY)
        for kind in _ALL_KINDS
        if (span, *kind) != (Span.QUARTER, True, True)
    ],
    True: [
        (span, *kind)
        for span in (Span.QUARTER, Span.HOUR, Span.DAY)
        for kind in _ALL_KINDS
        if (span != Span.QUARTER or kind == (False, False)) and kind != (False, True)
    ],
}


# The labels of a rollup row: a conversation's own in its per-label rows, NULL for "all".
LABELS = ("channel", "bot_version", "escalation_reason")
_LABEL_LIST = ", ".join(LABELS)


def _spread(row: str, *, per_topic: bool) -> str:
    """`CROSS JOIN LATERAL` of the rows (span, *LABELS) that `row` counts in."""

    def labels(per_channel: bool, per_reason: bool) -> str:
        channel = f"{row}.channel, {row}.bot_version" if per_channel else "NULL, NULL"
        return f"{channel}, {f'{row}.escalation_reason' if per_reason else 'NULL'}"

    kinds = SPREAD[per_topic]
    values = ", ".join(f"('{span}', {labels(c, r)})" for span, c, r in kinds if not r)
    # A reason's rows only for a conversation with one.
    reasons = "".join(
        f" UNION ALL SELECT '{span}', {labels(c, r)} WHERE {row}.escalation_reason <> ''"
        for span, c, r in kinds
        if r
    )
    return f"CROSS JOIN LATERAL (VALUES {values}{reasons}) AS s(span, {_LABEL_LIST})"


def _start_of_span(finest: str) -> str:
    """The row's start for span `s.span`, from `finest` (its quarter hour's start)."""
    whens = " ".join(
        f"WHEN '{span}' THEN {START_SQL[span].format(x=finest)}" for span in (Span.HOUR, Span.DAY)
    )
    return f"CASE s.span {whens} ELSE {finest} END"


# The columns of a `changes` CTE, as `conversations_conversation` names them: the sign, where
# a change counts and what the figures read.
CHANGE_COLUMNS = ["sign", *figures.change_columns()]


def _delta_ctes(prefix: str, keys: list[str], source: str) -> str:
    """CTEs that sum the deltas of `source` (the changed conversations, with a sign, and for
    topics one row per topic) per rollup row: `{prefix}_deltas`, the rollup rows to add
    (`histogram` NULL when none of them has a response time).

    The metrics are computed once per conversation, at the finest grain (UTC quarter hour ×
    keys); the hour and day rows and the "all channels and versions" rows (NULL, NULL) are
    sums of those few grain rows. The histogram takes the same path apart, from counts per
    grain and response-time bucket: summing every figure per bucket too (as before)
    made ten times the groups, most of a batch's rollup work. Rows whose delta is all zero (a re-post
    of the same values) are not written.
    """
    grain_keys = [key for key in keys if key not in ("span", "start")]  # topic_id?, *LABELS
    grain_columns = ", ".join(f"c.{key}" for key in grain_keys)
    grain_positions = ", ".join(str(index + 1) for index in range(len(grain_keys) + 1))
    partials = _metric_sums()
    dimensions = [key for key in grain_keys if key not in LABELS]
    expanded = ", ".join(f"g.{key}" for key in dimensions) + (", " if dimensions else "")
    key_list = ", ".join(keys)
    key_positions = ", ".join(str(index + 1) for index in range(len(keys)))
    metric_sums = ", ".join(f"sum({name}) AS {name}" for name in METRICS)
    spread = _spread("g", per_topic="topic_id" in keys)
    labels = ", ".join(f"s.{label}" for label in LABELS)
    spread_keys = f"s.span, {_start_of_span('g.start')} AS start, {expanded}{labels}"
    grain_start = START_SQL[Span.QUARTER].format(x="c.timestamp")
    # The same row of the two paths: NULL (all channels and versions) matches NULL.
    same_row = " AND ".join(
        f"h.{key} IS NOT DISTINCT FROM m.{key}" if key in LABELS else f"h.{key} = m.{key}" for key in keys
    )
    return f"""
    {prefix}_grain AS (
        SELECT {grain_start} AS start, {grain_columns}, {partials}
        FROM {source} c
        GROUP BY {grain_positions}
    ),
    {prefix}_grain_buckets AS (
        SELECT {grain_start} AS start, {grain_columns},
               c.response_ms_bucket::integer AS bucket, sum(c.sign) AS n
        FROM {source} c
        WHERE c.response_ms_bucket IS NOT NULL
        GROUP BY {grain_positions}, {len(grain_keys) + 2}
    ),
    {prefix}_metrics AS (
        SELECT {spread_keys}, {metric_sums}
        FROM {prefix}_grain g
        {spread}
        GROUP BY {key_positions}
    ),
    {prefix}_histograms AS (
        SELECT {key_list},
               sa_histogram_from(array_agg(bucket) FILTER (WHERE n <> 0), array_agg(n) FILTER (WHERE n <> 0))
                   AS histogram
        FROM (
            SELECT {spread_keys}, g.bucket, sum(g.n)::bigint AS n
            FROM {prefix}_grain_buckets g
            {spread}
            GROUP BY {key_positions}, {len(keys) + 1}
        ) b
        GROUP BY {key_positions}
    ),
    {prefix}_deltas AS (
        -- Every histogram row has its metrics row (the same conversations, those with a
        -- response time).
        SELECT m.*, h.histogram FROM {prefix}_metrics m LEFT JOIN {prefix}_histograms h ON {same_row}
    )"""


def _upsert_cte(prefix: str, table: str, keys: list[str]) -> str:
    """A CTE that adds the rows of `{prefix}_deltas` to `table`, in key order, the day rows
    last. Rows whose delta is all zero (a re-post of the same values) are not written.

    Day rows last: a day's rows are the ones that writers of nearby times all update (an
    import's batches of consecutive hours), and a row stays locked from its update until the
    commit; taken last, they are held for the end of the statement only, not while the rest of
    the rollups are written."""
    key_list = ", ".join(keys)
    nonzero = " OR ".join(f"{name} <> 0" for name in METRICS)
    order = ", ".join([f"span = '{Span.DAY}'", *(f"{key} NULLS FIRST" for key in keys)])
    updates = ", ".join(f"{name} = t.{name} + EXCLUDED.{name}" for name in METRICS)
    return f"""
    {prefix}_upserted AS (
        INSERT INTO {table} AS t ({key_list}, {", ".join(METRICS)}, {HISTOGRAM})
        SELECT {key_list}, {", ".join(METRICS)}, coalesce(histogram, array_fill(0, ARRAY[{histogram.SIZE}]))
        FROM {prefix}_deltas
        WHERE histogram IS NOT NULL OR {nonzero}
        ORDER BY {order}
        ON CONFLICT ({key_list}) DO UPDATE SET {updates},
            {HISTOGRAM} = sa_histogram_add(t.{HISTOGRAM}, EXCLUDED.{HISTOGRAM})
    )"""


_CONVERSATION_KEYS = ["span", "start", *LABELS]
_TOPIC_KEYS = ["span", "start", "topic_id", *LABELS]
_CONVERSATION_TABLE = ConversationRollup._meta.db_table
_TOPIC_TABLE = TopicRollup._meta.db_table
_DELTA_TABLE = RollupDelta._meta.db_table


def _topic_changes(name: str, source: str) -> str:
    # unnest in the select list: no function scan (and its tuplestore) per row
    return f"{name} AS (SELECT c.*, unnest(c.topic_ids) AS topic_id FROM {source} c)"


# Appended to a statement's WITH list after its `changes` CTE (columns: CHANGE_COLUMNS).
# Every writer uses this same text, so all lock the rollup rows in one order: PostgreSQL runs
# the data-modifying CTEs that the main query does not read once it has finished, the last
# written first (nodeModifyTable.c, es_auxmodifytables), so the topic rollup rows, then the
# conversation rollup rows, each in `_upsert_cte`'s order.
CHANGES_TO_ROLLUPS = f"""
    {_topic_changes("topic_changes", "changes")},
    {_delta_ctes("conversation", _CONVERSATION_KEYS, "changes")},
    {_upsert_cte("conversation", _CONVERSATION_TABLE, _CONVERSATION_KEYS)},
    {_delta_ctes("topic", _TOPIC_KEYS, "topic_changes")},
    {_upsert_cte("topic", _TOPIC_TABLE, _TOPIC_KEYS)}
"""

# The same, put off: the changes are appended to RollupDelta, for `fold` to add to the rollups
# later (see RollupDelta). What a single conversation's write uses.
CHANGES_TO_DELTAS = f"""
    deltas_appended AS (
        INSERT INTO {_DELTA_TABLE} ({", ".join(CHANGE_COLUMNS)})
        SELECT {", ".join(CHANGE_COLUMNS)} FROM changes
    )
"""


def _live(table: str, keys: list[str]) -> str:
    """The rollup rows of `table` as if every unfolded delta were folded in: its rows, and
    each delta spread into the rows it counts in (`SPREAD`; per topic for topic rollups),
    one row per delta, not summed: a read sums the rows of its window (and their
    histograms), so it adds up either way.

    Plain joins, no aggregation: summing the deltas the way a write does made a read several
    times slower to plan. Every column is cast to the table's type: with both halves of the
    UNION ALL typed alike, PostgreSQL pushes a read's conditions (span, start range...) into
    the table half, which then uses its indexes (mismatched, it read every row and filtered
    after; docs/benchmarks.md, "Live rollups: plain joins, typed columns")."""
    columns = ", ".join([*keys, *METRICS, HISTOGRAM])
    types = {field.column: field.db_type(connection) for field in TopicRollup._meta.concrete_fields}
    key_sql = {
        "span": "s.span",
        "start": _start_of_span(START_SQL[Span.QUARTER].format(x="c.timestamp")),
        "topic_id": "c.topic_id",
        **{label: f"s.{label}" for label in LABELS},
    }
    values = [f"({key_sql[key]})::{types[key]} AS {key}" for key in keys]
    values += [
        f"({figures.BY_NAME[name].sql_of_one(signed=True)})::{types[name]} AS {name}" for name in METRICS
    ]
    # Its sign at its bucket's place (array_fill of length 0 gives an empty array).
    zeros = f"array_fill(0, ARRAY[{histogram.SIZE}])"
    before = "ARRAY[c.response_ms_bucket::integer]"
    after = f"ARRAY[{histogram.SIZE - 1} - c.response_ms_bucket]"
    values.append(
        f"CASE WHEN c.response_ms_bucket IS NULL THEN {zeros}"
        f" ELSE array_fill(0, {before}) || c.sign::integer || array_fill(0, {after}) END AS {HISTOGRAM}"
    )
    source = (
        f"(SELECT x.*, unnest(x.topic_ids) AS topic_id FROM {_DELTA_TABLE} x)"
        if "topic_id" in keys
        else _DELTA_TABLE
    )
    return f"""(
        SELECT {columns} FROM {table}
        UNION ALL
        SELECT {", ".join(values)}
        FROM {source} c
        {_spread("c", per_topic="topic_id" in keys)}
    )"""


# What reads use in place of the rollup tables, `FROM {LIVE_CONVERSATION_ROLLUPS} r`: the
# rollups with the unfolded deltas in (few: `fold` runs every FOLD_SECONDS while writes come in).
LIVE_CONVERSATION_ROLLUPS = _live(_CONVERSATION_TABLE, _CONVERSATION_KEYS)
LIVE_TOPIC_ROLLUPS = _live(_TOPIC_TABLE, _TOPIC_KEYS)

# Advisory-lock class of the fold ("SF"): one fold at a time (services takes "SA" ones).
_FOLD_LOCK_CLASS = 0x5346
FOLD_BATCH = 10_000

_FOLD_SQL = f"""
WITH
    folding AS (SELECT pg_try_advisory_xact_lock({_FOLD_LOCK_CLASS}, 0) AS ours),
    changes AS (
        DELETE FROM {_DELTA_TABLE}
        WHERE id IN (
            SELECT id FROM {_DELTA_TABLE} WHERE (SELECT ours FROM folding) ORDER BY id LIMIT %s
        )
        RETURNING {", ".join(CHANGE_COLUMNS)}
    ),
    {CHANGES_TO_ROLLUPS}
SELECT count(*) FROM changes
"""


# A process folds at most this often, after a request that left deltas (`fold_if_due`); and
# at least this often while it serves requests, for deltas others left (a command's writes).
FOLD_SECONDS = 0.25
FOLD_ANYWAY_SECONDS = 60.0
_fold_lock = threading.Lock()
_last_fold = 0.0  # time.monotonic() of this process's last fold
_pending = False  # deltas written by this process since then


def deltas_written() -> None:
    """Note that this process appended deltas (services, after a small write commits)."""
    global _pending
    _pending = True


def fold_if_due(**kwargs) -> None:
    """Fold, when this process wrote deltas and has not folded for FOLD_SECONDS, or has not
    folded for FOLD_ANYWAY_SECONDS.

    Connected to `request_finished`: it runs once the response has gone out (gunicorn
    sends it before closing it), so no client waits for a fold; in autocommit, its own
    transaction; on the request's connection only (one that Django has just closed, for its
    age or an error, is not opened again for this). A failed fold only logs: the deltas
    stay, and reads count them, until the next one.
    """
    global _pending, _last_fold
    since = time.monotonic() - _last_fold
    if not (_pending and since >= FOLD_SECONDS) and since < FOLD_ANYWAY_SECONDS:
        return
    if connection.connection is None or connection.in_atomic_block:
        return  # no open connection; or a transaction (a test's): not ours to extend
    if not _fold_lock.acquire(blocking=False):
        return  # another thread of this process is folding
    try:
        _pending, _last_fold = False, time.monotonic()
        fold()
    except DatabaseError:
        _pending = True
        logger.warning("Folding the rollup deltas failed; the next fold takes them.", exc_info=True)
    finally:
        _fold_lock.release()


def fold() -> int:
    """Move the unfolded deltas into the rollups; returns how many were moved.

    Each batch is one statement: the deltas deleted and the rollups updated together, so a
    read (one statement, one snapshot) sees every change exactly once, either way. Deltas
    of writes not committed yet stay for the next fold. When another fold is running this
    one moves nothing (they would only wait on each other's rows).

    Prepared (bound server-side, planned once per connection): planning the statement took
    longer than folding a quarter of a second's deltas.
    """
    folded = 0
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        while True:
            cursor.execute(_FOLD_SQL, [FOLD_BATCH], prepare=True)
            (count,) = cursor.fetchone()
            folded += count
            if count < FOLD_BATCH:
                return folded


def rebuild() -> dict[str, int]:
    """Recompute every rollup row from the raw conversations; returns the row counts.

    Runs in the caller's transaction. DELETE rather than TRUNCATE: it works inside a
    transaction that has pending foreign-key checks, and the rollup tables stay small
    (rows per quarter hour, hour and day, not per conversation).
    """
    counts = {}
    with connection.cursor() as cursor:
        names, labels = _figures_stored(cursor)
        # Writers append their deltas after waiting for this lock (until the rebuild
        # commits); those already appended are in the raw rows read below, so they go.
        cursor.execute(f"LOCK TABLE {_DELTA_TABLE} IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {_DELTA_TABLE}")
        if "ai_resolved_followed_up" in names:
            refollow(cursor)
        for model in (TopicRollup, ConversationRollup):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
        for model, per_topic in ((ConversationRollup, False), (TopicRollup, True)):
            table = model._meta.db_table
            by_reason = "escalation_reason" in labels  # not in the schemas before 0013
            kinds = [(s, c, r) for s, c, r in SPREAD[per_topic] if by_reason or not r]
            for span, per_channel, per_reason in kinds:
                # From the raw rows; rows for all channels and versions are the per-channel
                # rows' sums (below) where those exist.
                if per_channel or (span, True, per_reason) not in kinds:
                    cursor.execute(
                        _rebuild_sql(
                            table,
                            span,
                            names,
                            per_topic=per_topic,
                            per_channel=per_channel,
                            per_reason=per_reason,
                        ),
                        [span],
                    )
            keys = "span, start" + (", topic_id" if per_topic else "")
            for per_reason in (False, True) if by_reason else (False,):
                if not any((span, False, per_reason) in kinds for span in Span):
                    continue  # no rows for all channels (per topic and reason)
                reason = "escalation_reason" if per_reason else "NULL"
                of_reason = (
                    f"escalation_reason IS {'NOT ' if per_reason else ''}NULL" if by_reason else "TRUE"
                )
                cursor.execute(
                    f"""
                    INSERT INTO {table} ({keys}, {", ".join(labels)}, {", ".join(names)}, {HISTOGRAM})
                    SELECT {keys}, NULL, NULL{f", {reason}" if by_reason else ""},
                           {", ".join(f"sum({name})" for name in names)}, sa_histogram_sum({HISTOGRAM})
                    FROM {table} WHERE channel IS NOT NULL AND {of_reason}
                    GROUP BY {keys}{", escalation_reason" if per_reason else ""}
                    """
                )
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return {
        "conversation_rollups": counts[ConversationRollup._meta.db_table],
        "topic_rollups": counts[TopicRollup._meta.db_table],
    }


def fill_figures(apps, schema_editor) -> None:
    """`migrations.RunPython(rollups.fill_figures)` in the migration that adds a figure's
    column: every rollup row rebuilt from the conversations, the new figure included (about 3
    minutes for 10 million conversations on 2 cores; see README, "Adding a figure")."""
    rebuild()


# Every conversation's `followed_up` (models.Conversation) from its customer's conversations:
# another one ended after it, and at most the repeat-contact window after it (param).
_REFOLLOW_SQL = """
UPDATE conversations_conversation c SET followed_up = f.followed_up
FROM (
    SELECT id, count(*) OVER (
        PARTITION BY customer_hash ORDER BY timestamp
        RANGE BETWEEN interval '1 microsecond' FOLLOWING AND %s FOLLOWING
    ) > 0 AS followed_up
    FROM conversations_conversation WHERE customer_hash IS NOT NULL
) f
WHERE c.id = f.id AND c.followed_up <> f.followed_up
"""


def refollow(cursor) -> None:
    """Sets every conversation's `followed_up` anew (after REPEAT_CONTACT_DAYS changed; the
    writes keep it otherwise). Part of `rebuild`, before the rollups are summed."""
    cursor.execute(_REFOLLOW_SQL, [figures.repeat_contact_window()])


def _figures_stored(cursor) -> tuple[list[str], list[str]]:
    """The figures whose rollup column and source columns exist, and the labels (LABELS)
    the rollups have: all of them, but in a migration that runs before a later one adds them
    (0010 and 0011 rebuild with today's code)."""

    def columns(table: str) -> set[str]:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}

    rollup_columns = columns(ConversationRollup._meta.db_table)
    conversation_columns = columns("conversations_conversation")
    names = [
        name
        for name in METRICS
        if name in rollup_columns and set(figures.BY_NAME[name].columns) <= conversation_columns
    ]
    return names, [label for label in LABELS if label in rollup_columns]


def _rebuild_sql(
    table: str, span: Span, names: list[str], *, per_topic: bool, per_channel: bool, per_reason: bool
) -> str:
    """INSERT ... SELECT of one span's rows (param: the span), per channel × version or for all
    (NULL), per escalation reason (of the conversations with one) or for all, of the figures
    `names`."""
    keys = (
        (["topic_id"] if per_topic else [])
        + (["channel", "bot_version"] if per_channel else [])
        + (["escalation_reason"] if per_reason else [])
    )
    source = "(SELECT c.*, 1 AS sign FROM conversations_conversation c)"  # each counted once
    if per_reason:
        source = f"(SELECT * FROM {source} c WHERE c.escalation_reason <> '')"
    if per_topic:
        # Every conversation counts once per topic in the topic rollups.
        source = f"(SELECT c.*, unnest(c.topic_ids) AS topic_id FROM {source} c)"
    start = START_SQL[span].format(x="c.timestamp")
    selected = "".join(f", c.{key}" for key in keys)
    grouped = "".join(f", c.{key}" for key in keys)
    key_list = "".join(f", {key}" for key in keys)
    return f"""
        INSERT INTO {table} (span, start{key_list}, {", ".join(names)}, {HISTOGRAM})
        SELECT %s, g.start{"".join(f", g.{key}" for key in keys)},
               {", ".join(f"g.{name}" for name in names)},
               coalesce(h.histogram, array_fill(0, ARRAY[{histogram.SIZE}]))
        FROM (
            SELECT {start} AS start{selected}, {_metric_sums(names)}
            FROM {source} c
            GROUP BY {start}{grouped}
        ) g
        LEFT JOIN (
            SELECT start{key_list}, sa_histogram_from(array_agg(bucket), array_agg(n)) AS histogram
            FROM (
                SELECT {start} AS start{selected}, c.response_ms_bucket::integer AS bucket, count(*) AS n
                FROM {source} c
                WHERE c.response_ms_bucket IS NOT NULL
                GROUP BY {start}{grouped}, bucket
            ) b
            GROUP BY start{key_list}
        ) h USING (start{key_list})
    """
