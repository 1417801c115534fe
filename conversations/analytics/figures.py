"""The registry of additive figures: one declaration per figure (Zulip's `COUNT_STATS` is the model).

A figure is a sum over a set of conversations, so the figure of a union of sets is the sum of
theirs: the rollups keep each figure per quarter hour, hour and day, and a window is the sum of
its rows. A declaration says everything about its figure:

* `name`: the rollup column, the field of `Totals` (analytics.metrics) and the column name in
  every statement;
* how one conversation contributes: `where` (which conversations count, a `Q` over
  Conversation) and `value` (what each adds, an ORM expression; none: 1, so a count);
* `column`: the rollup column's type; `doc`: what counts, in words.

From it derive: RollupMetrics' columns (conversations.models), the SQL over a conversation row
`c` of the writes (conversations.rollups) and of the reads (analytics.reads), compiled once
from the same `Q` and expression by Django's compiler; the full-scan ORM aggregate
(`Figure.aggregate`, what the tests compare the fast reads with); `Totals`' fields. The rates,
means and money built on these are in analytics.metrics.

A figure may read a per-row flag that the writes keep up to date (`followed_up`: "another
conversation of the same customer ended within REPEAT_CONTACT_DAYS after it"): it is a column of
Conversation like any other, and every column a figure reads travels with the rollup changes
(`change_columns`). The statement that writes a conversation works out its flag, and rewrites the
flags of the customer's conversations it changes, emitting their changes as the CSAT write does
(old contribution out, new one in), so their rollups follow (services, `_FOLLOW_UPS`).
RollupDelta needs the column too; the system check `conversations.E001` says so.

A figure may also be cut off at read time (`CutOff`): counted only for the conversations that
ended at least some time before the read (say, "settled" = older than the repeat-contact
window, only then is "not followed up" known). Nothing is stored for it: it is a stored figure
read over the window clipped at now − age, per bucket and per topic alike (analytics.reads).

Adding a figure: a declaration below, then `manage.py makemigrations` (the new rollup column)
with a `RunPython(fill_figures)` after it (README, "Adding a figure").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import models
from django.db.models import Aggregate, Count, Expression, F, Func, Q, Sum
from django.db.models.functions import Cast

CSAT_SCORES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Figure:
    name: str
    doc: str
    column: Callable[[], models.Field]
    where: Q | None = None
    value: Expression | F | None = None  # None: each conversation adds 1
    # The stored sum is `scale` × the sum of `value` (an exact integer sum of a value that a
    # float would not sum exactly).
    scale: Decimal | None = None

    @property
    def zero(self) -> int | Decimal:
        return Decimal(0) if isinstance(self.column(), models.DecimalField) else 0

    def aggregate(self) -> Aggregate:
        """The figure as an ORM aggregate over Conversation: a full scan's value."""
        total = Count("id", filter=self.where) if self.value is None else Sum(self.value, filter=self.where)
        return total if self.scale is None else total * self.scale

    @functools.cached_property
    def _sql(self) -> tuple[str, str | None]:
        """(value, condition) as SQL over a conversation row `c` (compiled at first use,
        once the models are loaded)."""
        return (
            "1" if self.value is None else _row_sql(self.value),
            None if self.where is None else _row_sql(self.where),
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """The Conversation columns this figure reads."""
        return _columns(self.value, self.where)

    def sql_sum(self, *, signed: bool) -> str:
        """Its sum over rows `c`; `signed`: each row counted `c.sign` times (+1 or −1)."""
        value, condition = self._sql
        if self.value is None:
            text = "sum(c.sign)" if signed else "count(*)"
        else:
            text = f"sum({'c.sign * ' if signed else ''}{value})"
        if condition:
            text += f" FILTER (WHERE {condition})"
        return self._scaled(text)

    def sql_of_one(self, *, signed: bool) -> str:
        """The contribution of the single row `c` (0 when it does not count)."""
        value, condition = self._sql
        if signed:
            value = "c.sign" if self.value is None else f"c.sign * {value}"
        text = (
            f"coalesce(CASE WHEN {condition} THEN {value} END, 0)" if condition else f"coalesce({value}, 0)"
        )
        return self._scaled(text)

    def _scaled(self, text: str) -> str:
        return text if self.scale is None else f"{text} * {self.scale}"


# Every rollup column has a database default too: a server of the code before a figure's
# migration, still writing while it runs, names only the columns it knows.


def _integer() -> models.Field:
    return models.IntegerField(default=0, db_default=0)


def _big_integer() -> models.Field:
    return models.BigIntegerField(default=0, db_default=0)


def _money() -> models.Field:
    return models.DecimalField(max_digits=24, decimal_places=6, default=0, db_default=0)


def _milliseconds() -> models.Field:
    # Exact: avg_response_ms is kept to the microsecond (3 decimals).
    return models.DecimalField(max_digits=30, decimal_places=3, default=0, db_default=0)


def _square_milliseconds() -> models.Field:
    # Exact: squares of times kept to the microsecond (6 decimals of ms²), up to 24 hours each.
    return models.DecimalField(max_digits=40, decimal_places=6, default=0, db_default=0)


# A conversation's mean response time in whole microseconds (as response_ms_sum adds them).
_RESPONSE_MICROSECONDS = Cast(Func(F("avg_response_ms") * 1000, function="round"), models.BigIntegerField())


_AI = Q(resolved_by_ai=True)
_CUSTOMER = Q(customer_hash__isnull=False)

FIGURES: tuple[Figure, ...] = (
    Figure("conversations", "Every conversation.", _integer),
    Figure(
        "ai_resolved",
        'Conversations the bot resolved: `resolved_by_ai` true ("no human had to take over").',
        _integer,
        where=_AI,
    ),
    Figure("turns_sum", "Turns of every conversation, added up.", _big_integer, value=F("turns")),
    # Sums of squares: with the count and the sum, a mean's variance, for its interval
    # (analytics.statistics, Moments).
    Figure(
        "turns_sq_sum",
        "The squares of every conversation's turns, added up.",
        _big_integer,
        value=F("turns") * F("turns"),
    ),
    *(
        Figure(f"csat_{score}", f"Conversations rated {score} (CSAT 1 to 5).", _integer, where=Q(csat=score))
        for score in CSAT_SCORES
    ),
    Figure(
        "csat_sum_ai_resolved",
        "CSAT scores of the AI-resolved conversations, added up.",
        _big_integer,
        where=_AI,
        value=F("csat"),
    ),
    Figure(
        "csat_sq_sum_ai_resolved",
        "The squares of the AI-resolved conversations' CSAT scores, added up.",
        _big_integer,
        where=_AI,
        value=F("csat") * F("csat"),
    ),
    Figure(
        "csat_count_ai_resolved",
        "AI-resolved conversations with a CSAT score.",
        _integer,
        where=_AI & Q(csat__isnull=False),
    ),
    Figure("ai_cost_sum", "The AI costs the bot reported, added up.", _money, value=F("ai_cost")),
    Figure(
        "ai_cost_missing",
        "Conversations without a reported AI cost (they take the configured default when read).",
        _integer,
        where=Q(ai_cost__isnull=True),
    ),
    Figure(
        "response_ms_sum",
        "The conversations' mean response times (ms), added up, to the microsecond.",
        _milliseconds,
        # Whole microseconds, an exact bigint sum: cheaper per row than a float-to-numeric cast,
        # which goes through text (docs/benchmarks.md, "response_ms_sum").
        value=_RESPONSE_MICROSECONDS,
        scale=Decimal("0.001"),
    ),
    Figure(
        "response_ms_sq_sum",
        "The squares of the conversations' mean response times (ms²), added up, exactly.",
        _square_milliseconds,
        # In numeric: a day's worth of microseconds squared overflows a bigint.
        value=Cast(_RESPONSE_MICROSECONDS, models.DecimalField(max_digits=20, decimal_places=0))
        * Cast(_RESPONSE_MICROSECONDS, models.DecimalField(max_digits=20, decimal_places=0)),
        scale=Decimal("0.000001"),
    ),
    Figure(
        "response_ms_count",
        "Conversations that reported a response time.",
        _integer,
        where=Q(avg_response_ms__isnull=False),
    ),
    # How conversations ended, where the bot reports it (`outcome`; "" when it does not).
    Figure(
        "outcome_confirmed",
        "Conversations the bot resolved and the customer said so (outcome `confirmed`).",
        _integer,
        where=Q(outcome="confirmed"),
    ),
    Figure(
        "outcome_assumed",
        "Conversations the bot answered and the customer left without asking for a human "
        "(outcome `assumed`).",
        _integer,
        where=Q(outcome="assumed"),
    ),
    Figure(
        "outcome_escalated",
        "Conversations a human took over (outcome `escalated`).",
        _integer,
        where=Q(outcome="escalated"),
    ),
    Figure(
        "outcome_abandoned",
        "Conversations the customer left unresolved, no human involved (outcome `abandoned`).",
        _integer,
        where=Q(outcome="abandoned"),
    ),
    # Repeat contacts (`customer_hash`, the keyed hash of the bot's customer id; `followed_up`,
    # kept by the writes: another conversation of the customer ended after it and at most
    # REPEAT_CONTACT_DAYS after it). Read through the "settled" cut-offs below.
    Figure(
        "with_customer_id",
        "Conversations that carry a customer id.",
        _integer,
        where=_CUSTOMER,
    ),
    Figure(
        "ai_resolved_with_customer_id",
        "AI-resolved conversations that carry a customer id.",
        _integer,
        where=_AI & _CUSTOMER,
    ),
    Figure(
        "ai_resolved_followed_up",
        "AI-resolved conversations whose customer came back within REPEAT_CONTACT_DAYS.",
        _integer,
        where=_AI & _CUSTOMER & Q(followed_up=True),
    ),
)

NAMES: tuple[str, ...] = tuple(figure.name for figure in FIGURES)


@dataclass(frozen=True)
class CutOff:
    """A figure counted only for the conversations of a window that ended at least `age()`
    before the moment of the read: the stored figure `of`, read over the window clipped there.
    `age` is called at each read (a setting may change it)."""

    name: str
    doc: str
    of: str
    age: Callable[[], timedelta]


def repeat_contact_window() -> timedelta:
    """How long after a conversation another of the same customer counts as a follow-up
    (settings.REPEAT_CONTACT_DAYS)."""
    from django.conf import settings

    return timedelta(days=settings.REPEAT_CONTACT_DAYS)


# "Settled": a conversation with a customer id that ended at least the repeat-contact window
# before the read; only then is "not followed up" known (a late post can still change it).
CUTOFFS: tuple[CutOff, ...] = (
    CutOff(
        "settled",
        "Conversations with a customer id that ended at least REPEAT_CONTACT_DAYS before the read.",
        of="with_customer_id",
        age=repeat_contact_window,
    ),
    CutOff(
        "settled_ai_resolved",
        "Settled conversations the bot resolved.",
        of="ai_resolved_with_customer_id",
        age=repeat_contact_window,
    ),
    CutOff(
        "followed_up",
        "Settled AI-resolved conversations whose customer came back within REPEAT_CONTACT_DAYS.",
        of="ai_resolved_followed_up",
        age=repeat_contact_window,
    ),
)
BY_NAME: dict[str, Figure] = {figure.name: figure for figure in FIGURES}

# Not a sum but counts per response-time bucket (conversations.histogram), added element by
# element: what the p95 is read from. Stored beside the figures in every rollup row.
HISTOGRAM = "response_ms_histogram"


def histogram_column() -> models.Field:
    from django.contrib.postgres.fields import ArrayField

    return ArrayField(models.IntegerField())


# What every rollup change carries besides the columns the figures read: where it counts
# (time, channel, version, escalation reason, topics) and its response-time bucket (the
# histogram).
_KEY_COLUMNS = ("timestamp", "channel", "bot_version", "escalation_reason", "response_ms_bucket", "topic_ids")


def change_columns() -> tuple[str, ...]:
    """The Conversation columns a rollup change carries (after its `sign`)."""
    read = [column for figure in FIGURES for column in figure.columns]
    return tuple(dict.fromkeys([*_KEY_COLUMNS, *read]))


# --- Compiling the declarations to SQL ------------------------------------------------------


def _conversation_query():
    from django.apps import apps
    from django.db.models.sql import Query

    return Query(apps.get_model("conversations", "Conversation"))


def _resolved(expression: Q | Expression, query):
    if isinstance(expression, Q):
        return query.build_where(expression)
    return expression.resolve_expression(query, allow_joins=False)


def _row_sql(expression: Q | Expression) -> str:
    """The SQL of an ORM condition or expression over a conversation row `c`, with its
    parameters as literals (they are the declarations' own constants, never input)."""
    from django.db import connection
    from psycopg import sql

    query = _conversation_query()
    text, params = query.get_compiler(connection=connection).compile(_resolved(expression, query))
    table = connection.ops.quote_name(query.model._meta.db_table)
    text = text.replace(f"{table}.", "c.").replace("{", "{{").replace("}", "}}").replace("%s", "{}")
    # Every statement these go into is run with parameters, where a lone % would read as a
    # placeholder: a constant's % (a LIKE pattern) is written %%, as Django's own text already is.
    literals = [sql.SQL(sql.Literal(param).as_string().replace("%", "%%")) for param in params]
    return sql.SQL(text).format(*literals).as_string()


def _columns(*expressions: Q | Expression | None) -> tuple[str, ...]:
    from django.db.models.expressions import Col

    query = _conversation_query()
    found = []
    for expression in expressions:
        if expression is None:
            continue
        stack = [_resolved(expression, query)]
        while stack:
            node = stack.pop()
            if isinstance(node, Col):
                found.append(node.target.column)
            stack.extend(getattr(node, "children", None) or node.get_source_expressions())
    return tuple(dict.fromkeys(found))
