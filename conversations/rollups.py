"""Keeping the hourly and daily rollups right, in the transaction that changes conversations.

A conversation contributes to four kinds of rows: its UTC hour and its UTC day, each once
for (channel, bot version) in ConversationRollup and once per topic in TopicRollup. A write
computes every changed conversation's old contribution (subtracted) and new one (added),
sums them per row, and upserts those deltas in one statement per table, rows sorted by key:
concurrent writers then lock shared rows (the current hour is shared by everyone) in the
same order and never deadlock, and `col = col + delta` loses no update.

`rebuild()` recomputes everything from the raw conversations (manage.py rebuild_rollups).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from conversations import histogram
from conversations.models import ConversationRollup, Span, TopicRollup

# The additive columns, in the order the SQL below uses them.
METRICS = [
    "conversations",
    "ai_resolved",
    "turns_sum",
    "csat_1",
    "csat_2",
    "csat_3",
    "csat_4",
    "csat_5",
    "csat_sum_ai_resolved",
    "csat_count_ai_resolved",
    "ai_cost_sum",
    "ai_cost_missing",
    "response_ms_sum",
    "response_ms_count",
]
HISTOGRAM = "response_ms_histogram"

# The same definitions as METRICS, for a GROUP BY over conversations `c` (rebuild).
_SQL_METRICS = [
    "count(*)",
    "count(*) FILTER (WHERE c.resolved_by_ai)",
    "coalesce(sum(c.turns), 0)",
    *(f"count(*) FILTER (WHERE c.csat = {score})" for score in range(1, 6)),
    "coalesce(sum(c.csat) FILTER (WHERE c.resolved_by_ai), 0)",
    "count(c.csat) FILTER (WHERE c.resolved_by_ai)",
    "coalesce(sum(c.ai_cost), 0)",
    "count(*) FILTER (WHERE c.ai_cost IS NULL)",
    "coalesce(sum(c.avg_response_ms::numeric), 0)",
    "count(c.avg_response_ms)",
]


def exact_ms(value: float) -> Decimal:
    """A float as PostgreSQL's float8::numeric gives it (15 significant digits), so a sum
    kept here equals the full scan's sum(avg_response_ms::numeric) to the last digit."""
    return Decimal(format(value, ".15g"))


@dataclass(frozen=True)
class Snapshot:
    """What a conversation contributes: its stored fields that the rollups sum."""

    timestamp: datetime
    channel: str
    bot_version: str
    resolved_by_ai: bool
    turns: int
    csat: int | None
    ai_cost: Decimal | None
    avg_response_ms: float | None
    response_ms_bucket: int | None
    topic_ids: tuple[int, ...]


def contribution(snapshot: Snapshot) -> dict[str, int | Decimal]:
    resolved = snapshot.resolved_by_ai
    values: dict[str, int | Decimal] = {
        "conversations": 1,
        "ai_resolved": int(resolved),
        "turns_sum": snapshot.turns,
        "csat_sum_ai_resolved": snapshot.csat if resolved and snapshot.csat else 0,
        "csat_count_ai_resolved": int(resolved and snapshot.csat is not None),
        "ai_cost_sum": snapshot.ai_cost or Decimal(0),
        "ai_cost_missing": int(snapshot.ai_cost is None),
        "response_ms_sum": Decimal(0)
        if snapshot.avg_response_ms is None
        else exact_ms(snapshot.avg_response_ms),
        "response_ms_count": int(snapshot.avg_response_ms is not None),
    }
    for score in range(1, 6):
        values[f"csat_{score}"] = int(snapshot.csat == score)
    return values


def span_starts(timestamp: datetime) -> list[tuple[str, datetime]]:
    moment = timestamp.astimezone(UTC)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return [(Span.HOUR, hour), (Span.DAY, hour.replace(hour=0))]


@dataclass
class _Delta:
    values: dict[str, int | Decimal] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))
    histogram: list[int] = field(default_factory=histogram.empty)

    def add(self, values: dict[str, int | Decimal], bucket: int | None, sign: int) -> None:
        for name, value in values.items():
            self.values[name] += sign * value
        if bucket is not None:
            self.histogram[bucket] += sign

    def is_zero(self) -> bool:
        return not any(self.values.values()) and not any(self.histogram)


@dataclass
class Deltas:
    """The changes one write makes to the rollups, summed per row."""

    conversation_rows: dict[tuple, _Delta] = field(default_factory=lambda: defaultdict(_Delta))
    topic_rows: dict[tuple, _Delta] = field(default_factory=lambda: defaultdict(_Delta))

    def add(self, snapshot: Snapshot, sign: int) -> None:
        values = contribution(snapshot)
        for span, start in span_starts(snapshot.timestamp):
            # Its channel × version row, and the row of all channels and versions (NULL, NULL).
            for channel, bot_version in ((snapshot.channel, snapshot.bot_version), (None, None)):
                key = (span, start, channel, bot_version)
                self.conversation_rows[key].add(values, snapshot.response_ms_bucket, sign)
                for topic_id in snapshot.topic_ids:
                    topic_key = (span, start, topic_id, channel, bot_version)
                    self.topic_rows[topic_key].add(values, snapshot.response_ms_bucket, sign)

    def remove_all(self, snapshots: Iterable[Snapshot]) -> None:
        for snapshot in snapshots:
            self.add(snapshot, -1)

    def add_all(self, snapshots: Iterable[Snapshot]) -> None:
        for snapshot in snapshots:
            self.add(snapshot, +1)

    def apply(self) -> None:
        """Upsert the summed deltas: rows sorted by key, one statement per table."""
        _upsert(ConversationRollup, ["span", "start", "channel", "bot_version"], self.conversation_rows)
        _upsert(TopicRollup, ["span", "start", "topic_id", "channel", "bot_version"], self.topic_rows)


def _upsert(model, key_columns: list[str], rows: dict[tuple, _Delta]) -> None:
    # Sorted, NULL ("all") first, so concurrent writers lock shared rows in one order.
    changed = sorted(
        ((key, delta) for key, delta in rows.items() if not delta.is_zero()),
        key=lambda pair: tuple((value is not None, value) for value in pair[0]),
    )
    if not changed:
        return
    table = model._meta.db_table
    columns = [*key_columns, *METRICS, HISTOGRAM]
    # The histogram delta travels sparse, (buckets, counts), and is made dense by the server:
    # a dense array is 101 parameters a row for the driver to quote.
    placeholders = "(" + ", ".join(["%s"] * (len(columns) - 1)) + ", sa_histogram_from(%s, %s))"
    updates = [f"{name} = t.{name} + EXCLUDED.{name}" for name in METRICS]
    updates.append(f"{HISTOGRAM} = sa_histogram_add(t.{HISTOGRAM}, EXCLUDED.{HISTOGRAM})")
    sql = (
        f"INSERT INTO {table} AS t ({', '.join(columns)}) VALUES "
        + ", ".join([placeholders] * len(changed))
        + f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {', '.join(updates)}"
    )
    params: list = []
    for key, delta in changed:
        buckets = [bucket for bucket, count in enumerate(delta.histogram) if count]
        params += [
            *key,
            *(delta.values[name] for name in METRICS),
            buckets,
            [delta.histogram[b] for b in buckets],
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def rebuild() -> dict[str, int]:
    """Recompute every rollup row from the raw conversations; returns the row counts.

    Runs in the caller's transaction. DELETE rather than TRUNCATE: it works inside a
    transaction that has pending foreign-key checks, and the rollup tables stay small
    (rows per hour and day, not per conversation).
    """
    counts = {}
    with connection.cursor() as cursor:
        for model in (TopicRollup, ConversationRollup):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")
        for model, per_topic in ((ConversationRollup, False), (TopicRollup, True)):
            table = model._meta.db_table
            for span, unit in ((Span.HOUR, "hour"), (Span.DAY, "day")):
                cursor.execute(_rebuild_sql(table, per_topic=per_topic), [span, unit, unit])
            # The "all channels and versions" rows: sums of the rows just built.
            keys = "span, start" + (", topic_id" if per_topic else "")
            cursor.execute(
                f"""
                INSERT INTO {table} ({keys}, channel, bot_version, {", ".join(METRICS)}, {HISTOGRAM})
                SELECT {keys}, NULL, NULL, {", ".join(f"sum({name})" for name in METRICS)},
                       sa_histogram_sum({HISTOGRAM})
                FROM {table} WHERE channel IS NOT NULL GROUP BY {keys}
                """
            )
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    return {
        "conversation_rollups": counts[ConversationRollup._meta.db_table],
        "topic_rollups": counts[TopicRollup._meta.db_table],
    }


def _rebuild_sql(table: str, *, per_topic: bool) -> str:
    """INSERT ... SELECT of one span's per-channel × version rows (params: span, unit, unit)."""
    keys = (["topic_id"] if per_topic else []) + ["channel", "bot_version"]
    source = "conversations_conversation c" + (
        " JOIN conversations_conversationtopic ct ON ct.conversation_id = c.id" if per_topic else ""
    )
    selected = ", ".join(f"{'ct' if key == 'topic_id' else 'c'}.{key}" for key in keys)
    positions = ", ".join(str(index + 2) for index in range(len(keys)))
    metrics = ", ".join(f"{sql} AS m{index}" for index, sql in enumerate(_SQL_METRICS))
    return f"""
        INSERT INTO {table} (span, start, {", ".join(keys)}, {", ".join(METRICS)}, {HISTOGRAM})
        SELECT %s, g.start, {", ".join(f"g.{key}" for key in keys)},
               {", ".join(f"g.m{index}" for index in range(len(METRICS)))},
               coalesce(h.histogram, array_fill(0, ARRAY[{histogram.SIZE}]))
        FROM (
            SELECT date_trunc(%s, c.timestamp, 'UTC') AS start, {selected}, {metrics}
            FROM {source}
            GROUP BY 1, {positions}
        ) g
        LEFT JOIN (
            SELECT start, {", ".join(keys)}, sa_histogram_from(array_agg(bucket), array_agg(n)) AS histogram
            FROM (
                SELECT date_trunc(%s, c.timestamp, 'UTC') AS start, {selected},
                       c.response_ms_bucket::integer AS bucket, count(*) AS n
                FROM {source}
                WHERE c.response_ms_bucket IS NOT NULL
                GROUP BY 1, {positions}, {len(keys) + 2}
            ) b
            GROUP BY 1, {positions}
        ) h USING (start, {", ".join(keys)})
    """
