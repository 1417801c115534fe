"""Every metric the product shows, each defined once: `Totals` and the metrics derived from it.

`Totals` holds the additive figures of a set of conversations (one field per declaration in
analytics.figures, plus the response-time histogram); its sets add up (`+`). Each metric below
is one declaration: a function of a Totals with its unit, its documentation and the names it
goes by in the answers (`summary` paths, `topics`/`series` keys where they differ from its
name); it becomes a property of Totals. A number on the dashboard, in the API or in a CSV
export is one of these, so it cannot differ between them. Metrics that need more than a Totals
(a topic's share of the window, money under the cost settings) are declared here too, with the
attribute of the result row they are read from (`source`); analytics.tables lays them out.

Rounding is half-up: rates to 1 decimal, CSAT means to 2, money to 2.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass, replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from conversations import histogram
from conversations.analytics import statistics
from conversations.analytics.figures import BY_NAME, CSAT_SCORES, CUTOFFS, FIGURES, HISTOGRAM, NAMES
from conversations.analytics.statistics import Moments

ONE_DECIMAL = Decimal("0.1")
TWO_DECIMALS = Decimal("0.01")


def _round(value: Decimal | None, places: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(places, rounding=ROUND_HALF_UP)


def percent(part: int, whole: int) -> Decimal | None:
    """100 × part / whole, 1 decimal; None when whole is 0."""
    if whole == 0:
        return None
    return _round(Decimal(100 * part) / Decimal(whole), ONE_DECIMAL)


def relative_change(current: int | Decimal | None, previous: int | Decimal | None) -> Decimal | None:
    """Change against the previous period in %: 100 × (current − previous) / previous, 1 decimal.

    None when either is unknown or the previous value is 0 (no base to compare with).
    """
    if current is None or previous is None or previous == 0:
        return None
    return _round(Decimal(100) * (Decimal(current) - Decimal(previous)) / Decimal(previous), ONE_DECIMAL)


def difference(current: int | Decimal | None, previous: int | Decimal | None) -> Decimal | None:
    """current − previous (percentage points for rates); None when either is unknown."""
    if current is None or previous is None:
        return None
    return Decimal(current) - Decimal(previous)


def human_time_cost(conversations: int, per_conversation: Decimal) -> Decimal:
    """conversations × human cost per conversation, 2 decimals: what they cost in human time."""
    return _round(per_conversation * conversations, TWO_DECIMALS)


def _mean(total: int | Decimal, count: int, places: Decimal) -> Decimal | None:
    if count == 0:
        return None
    return _round(Decimal(total) / Decimal(count), places)


_csat_counts = operator.attrgetter(*(f"csat_{score}" for score in CSAT_SCORES))


# --- The metric declarations -----------------------------------------------------------------


class Unit(enum.Enum):
    """How a metric is written: its API field (decimal places, digits) and its CSV suffix."""

    COUNT = ("count", 0, 0, "")
    PERCENT = ("percent", 6, 1, "_pct")
    SCORE = ("score", 3, 2, "")  # a mean CSAT, 1 to 5
    TURNS = ("turns", 8, 1, "")
    MILLISECONDS = ("milliseconds", 14, 1, "")
    MONEY = ("money", 20, 2, "")

    def __init__(self, label: str, max_digits: int, decimal_places: int, csv_suffix: str) -> None:
        self.max_digits, self.decimal_places, self.csv_suffix = max_digits, decimal_places, csv_suffix

    @property
    def places(self) -> Decimal:
        """What its values are rounded to: Decimal("0.1") for 1 decimal place."""
        return Decimal(1).scaleb(-self.decimal_places)


class Answer(enum.Enum):
    """The answers that lay metrics out (analytics.tables)."""

    SUMMARY = "summary"
    TOPICS = "topics"
    SERIES = "series"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: Unit
    doc: str
    # Where a result row (Summary, TopicStats, Bucket) holds it: "totals.<name>" unless said.
    source: str
    # Its paths in the summary ("csat.score"); its key in the topics and series answers
    # where that differs from its name.
    summary: tuple[str, ...] = ()
    names: dict[Answer, str] = field(default_factory=dict)
    compute: Callable[[Any], Any] | None = None
    nullable: bool = True
    # A rate's or mean's 95% interval, [low, high] in its unit and rounding (None when
    # undefined), from the same Totals: written beside it as `<key>_ci95`.
    interval: Callable[[Any], list[Decimal] | None] | None = None
    # A rate's or mean's comparison of two Totals, a then b (`change_body` writes it).
    compare: Callable[[Any, Any], Any] | None = None
    # How many observations a rate or mean is computed from (its denominator, its count of
    # values); None for the others, which count conversations (sample_size).
    sample: Callable[[Any], int] | None = None

    def value_of(self, totals: Any) -> Any:
        """The metric's value in a Totals (those declared with a source elsewhere have none)."""
        return self.compute(totals) if self.compute is not None else getattr(totals, self.name)

    def sample_size(self, totals: Any) -> int:
        """The observations behind the metric's value in `totals`: a rate's denominator (CSAT
        score: the ratings), a mean's number of values, else the conversations."""
        return totals.conversations if self.sample is None else self.sample(totals)

    def name_in(self, answer: Answer) -> str:
        return self.names.get(answer, self.name)

    def csv_name(self, answer: Answer) -> str:
        # A column name of its own, without its block ("repeat_contact.repeat_contact_rate").
        return self.name_in(answer).rpartition(".")[2] + self.unit.csv_suffix


METRICS: dict[str, Metric] = {}


def declare(
    name: str,
    unit: Unit,
    doc: str,
    *,
    source: str | None = None,
    summary: tuple[str, ...] = (),
    topics: str | None = None,
    series: str | None = None,
    compute: Callable[[Any], Any] | None = None,
    interval: Callable[[Any], list[Decimal] | None] | None = None,
    compare: Callable[[Any, Any], Any] | None = None,
    sample: Callable[[Any], int] | None = None,
) -> Metric:
    names = {answer: key for answer, key in ((Answer.TOPICS, topics), (Answer.SERIES, series)) if key}
    declared = Metric(
        name=name,
        unit=unit,
        doc=doc,
        source=source or f"totals.{name}",
        summary=summary,
        names=names,
        compute=compute,
        nullable=unit not in (Unit.COUNT, Unit.MONEY),
        interval=interval,
        compare=compare,
        sample=sample,
    )
    METRICS[name] = declared
    return declared


def metric(
    unit: Unit, *, summary: tuple[str, ...] = (), topics: str | None = None, series: str | None = None
):
    """Declares the decorated function of a Totals as a metric (and a property of Totals)."""

    def register(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        declare(
            function.__name__,
            unit,
            (function.__doc__ or "").strip(),
            summary=summary,
            topics=topics,
            series=series,
            compute=function,
        )
        return function

    return register


def _in_unit(value: float, unit: Unit) -> Decimal:
    """A statistic (a proportion, a mean) in a metric's unit and rounding: points for a rate."""
    scaled = Decimal(repr(value)) * (100 if unit is Unit.PERCENT else 1)
    return _round(scaled, unit.places)


def _bounds(
    found: statistics.Interval | None, unit: Unit, *, least: int = 0, most: int | None = None
) -> list[Decimal] | None:
    """An interval as [low, high] in the metric's unit and rounding, clipped to the values the
    metric can take (a t interval of a few CSAT scores may reach past 1 and 5)."""
    if found is None:
        return None
    low, high = _in_unit(found.low, unit), _in_unit(found.high, unit)
    return [max(low, Decimal(least)), high if most is None else min(high, Decimal(most))]


def change_body(metric: Metric, found: statistics.Comparison) -> dict[str, Any]:
    """A comparison as the answers write it: the difference b − a (points for a rate) and its
    95% interval, rounded as the metric is, the two-sided p-value to 4 significant digits."""
    unit = metric.unit
    return {
        "difference": None if found.difference is None else _in_unit(found.difference, unit),
        "difference_ci95": None
        if found.low is None
        else [_in_unit(found.low, unit), _in_unit(found.high, unit)],
        "p_value": statistics.round_p_value(found.p_value),
        "significant": found.significant,
    }


def rate(*, summary: tuple[str, ...] = (), topics: str | None = None, series: str | None = None):
    """Declares a rate by the decorated function of a Totals, which returns (part, whole): the
    metric is 100 × part / whole, 1 decimal (None when whole is 0), with its 95% Wilson score
    interval (analytics.statistics.wilson_interval) in points, 1 decimal."""

    def register(function: Callable[[Any], tuple[int, int]]) -> Callable[[Any], tuple[int, int]]:
        def interval(t: Totals) -> list[Decimal] | None:
            part, whole = function(t)
            return _bounds(statistics.wilson_interval(successes=part, n=whole), Unit.PERCENT)

        def compare(a: Totals, b: Totals) -> statistics.Comparison:
            (part_a, whole_a), (part_b, whole_b) = function(a), function(b)
            return statistics.compare_proportions(
                successes_a=part_a, n_a=whole_a, successes_b=part_b, n_b=whole_b
            )

        declare(
            function.__name__,
            Unit.PERCENT,
            (function.__doc__ or "").strip(),
            summary=summary,
            topics=topics,
            series=series,
            compute=lambda t: percent(*function(t)),
            interval=interval,
            compare=compare,
            sample=lambda t: function(t)[1],
        )
        return function

    return register


def mean(
    unit: Unit,
    *,
    least: int = 0,
    most: int | None = None,
    summary: tuple[str, ...] = (),
    topics: str | None = None,
    series: str | None = None,
):
    """Declares a mean by the decorated function of a Totals, which returns its Moments (count,
    sum, sum of squares): the metric is sum / count, rounded as its unit says (None when the
    count is 0),
    with its 95% t interval (analytics.statistics.mean_interval; None under 2 values), clipped
    to [least, most], the values one conversation can have."""

    def register(function: Callable[[Any], Moments]) -> Callable[[Any], Moments]:
        def value(t: Totals) -> Decimal | None:
            moments = function(t)
            return _mean(moments.total, moments.n, unit.places)

        def interval(t: Totals) -> list[Decimal] | None:
            return _bounds(statistics.mean_interval(function(t)), unit, least=least, most=most)

        def compare(a: Totals, b: Totals) -> statistics.Comparison:
            return statistics.compare_means(a=function(a), b=function(b))

        declare(
            function.__name__,
            unit,
            (function.__doc__ or "").strip(),
            summary=summary,
            topics=topics,
            series=series,
            compute=value,
            interval=interval,
            compare=compare,
            sample=lambda t: function(t).n,
        )
        return function

    return register


def volume_change(
    a: Totals, b: Totals, *, length_a: timedelta, length_b: timedelta
) -> statistics.VolumeComparison:
    """Conversations of window b against window a: the exact conditional binomial test, whose
    expected share of b follows the windows' lengths (analytics.statistics.compare_volumes)."""
    return statistics.compare_volumes(
        count_a=a.conversations, count_b=b.conversations, length_a=length_a, length_b=length_b
    )


def volume_body(a: Totals, b: Totals, found: statistics.VolumeComparison) -> dict[str, Any]:
    """100 × (b − a) / a, 1 decimal (None when a is 0), with the test's p-value."""
    return {
        "relative_change": relative_change(b.conversations, a.conversations),
        "p_value": statistics.round_p_value(found.p_value),
        "significant": found.significant,
    }


# Additive figures shown as they are.
declare("conversations", Unit.COUNT, "Conversations in the window.", summary=("total_conversations",))
declare(
    "ai_resolved",
    Unit.COUNT,
    "Conversations the bot resolved without a human taking over.",
    summary=("ai_resolved_conversations",),
)


@metric(Unit.COUNT, summary=("escalated_conversations",), topics="escalations")
def escalated(t: Totals) -> int:
    """Conversations a human had to take over (`resolved_by_ai` false)."""
    return t.conversations - t.ai_resolved


@rate(summary=("ai_resolution_rate",))
def ai_resolution_rate(t: Totals) -> tuple[int, int]:
    """The primary metric: 100 × AI-resolved / all conversations, 1 decimal; None without data.

    "Resolved by AI" is exactly what the bot reports in `resolved_by_ai`: the customer's
    issue ended without a human taking over.
    """
    return t.ai_resolved, t.conversations


@mean(Unit.TURNS, summary=("avg_turns",))
def avg_turns(t: Totals) -> Moments:
    """Mean number of turns per conversation, 1 decimal; None without data."""
    return Moments(n=t.conversations, total=t.turns_sum, sum_of_squares=t.turns_sq_sum)


@metric(Unit.COUNT, summary=("csat.responses",))
def csat_responses(t: Totals) -> int:
    """Conversations with a CSAT score."""
    return sum(_csat_counts(t))


@rate(summary=("csat.response_rate",))
def csat_response_rate(t: Totals) -> tuple[int, int]:
    """100 × conversations with a CSAT score / all conversations, 1 decimal."""
    return t.csat_responses, t.conversations


@mean(Unit.SCORE, least=CSAT_SCORES[0], most=CSAT_SCORES[-1], summary=("avg_csat", "csat.average"))
def avg_csat(t: Totals) -> Moments:
    """Mean CSAT (1–5) of the conversations that have one, 2 decimals.

    None when no conversation has a score: the tutorial's 0 would read as "terrible".
    """
    return Moments.of_scores(t.csat_distribution)


@rate(summary=("csat.score",))
def csat_score(t: Totals) -> tuple[int, int]:
    """The industry's "CSAT score": 100 × ratings of 4 or 5 / all ratings, 1 decimal."""
    return t.csat_4 + t.csat_5, t.csat_responses


@mean(
    Unit.SCORE,
    least=CSAT_SCORES[0],
    most=CSAT_SCORES[-1],
    summary=("csat.average_ai_resolved",),
)
def avg_csat_ai_resolved(t: Totals) -> Moments:
    """Mean CSAT of the AI-resolved conversations that have one, 2 decimals."""
    return Moments(
        n=t.csat_count_ai_resolved, total=t.csat_sum_ai_resolved, sum_of_squares=t.csat_sq_sum_ai_resolved
    )


@mean(Unit.SCORE, least=CSAT_SCORES[0], most=CSAT_SCORES[-1], summary=("csat.average_escalated",))
def avg_csat_escalated(t: Totals) -> Moments:
    """Mean CSAT of the escalated conversations that have one, 2 decimals."""
    return Moments(
        n=t.csat_responses - t.csat_count_ai_resolved,
        total=t.csat_sum - t.csat_sum_ai_resolved,
        sum_of_squares=t.csat_sq_sum - t.csat_sq_sum_ai_resolved,
    )


@mean(Unit.MILLISECONDS, summary=("response_time.mean_ms",))
def avg_response_ms(t: Totals) -> Moments:
    """Mean of the conversations' average response times (ms), 1 decimal.

    Each conversation counts once, whatever its number of responses; conversations that
    reported no response time are left out.
    """
    return Moments(n=t.response_ms_count, total=t.response_ms_sum, sum_of_squares=t.response_ms_sq_sum)


@metric(Unit.MILLISECONDS, summary=("response_time.p95_ms",))
def p95_response_ms(t: Totals) -> Decimal | None:
    """95th percentile of the conversations' average response times (ms), 1 decimal.

    From the response-time histogram (conversations.histogram): within 4.9% of the exact
    percentile_cont for times between 10 ms and 125 s.
    """
    value = histogram.percentile(t.response_ms_histogram, 0.95)
    return None if value is None else _round(Decimal(str(value)), ONE_DECIMAL)


# --- Honest resolution: outcomes, escalation reasons, repeat contacts ------------------------

_OUTCOMES = (
    ("confirmed", "The bot resolved it and the customer said so (outcome `confirmed`)."),
    ("assumed", "The bot answered and the customer left without asking for a human (outcome `assumed`)."),
    ("escalated", "A human took over (outcome `escalated`)."),
    ("abandoned", "The customer left unresolved, no human involved (outcome `abandoned`)."),
)
for _outcome, _doc in _OUTCOMES:
    declare(
        f"outcome_{_outcome}",
        Unit.COUNT,
        "Conversations that ended so: " + _doc[0].lower() + _doc[1:],
        summary=(f"outcomes.{_outcome}",),
        topics=f"outcomes.{_outcome}",
        series=f"outcomes.{_outcome}",
    )


@metric(Unit.COUNT)
def outcomes_reported(t: Totals) -> int:
    """Conversations whose outcome the bot reported."""
    return t.outcome_confirmed + t.outcome_assumed + t.outcome_escalated + t.outcome_abandoned


@metric(
    Unit.COUNT, summary=("outcomes.unreported",), topics="outcomes.unreported", series="outcomes.unreported"
)
def outcome_unreported(t: Totals) -> int:
    """Conversations whose outcome the bot did not report."""
    return t.conversations - t.outcomes_reported


@rate(summary=("outcome_coverage",))
def outcome_coverage(t: Totals) -> tuple[int, int]:
    """100 × conversations with a reported outcome / all conversations, 1 decimal: how much of
    the traffic the outcome rates below speak for."""
    return t.outcomes_reported, t.conversations


@rate(summary=("confirmed_resolution_rate",))
def confirmed_resolution_rate(t: Totals) -> tuple[int, int]:
    """100 × conversations the customer confirmed resolved (outcome `confirmed`) / all
    conversations, 1 decimal; None without data. Conversations without an outcome count in the
    denominator only: read it beside `outcome_coverage`."""
    return t.outcome_confirmed, t.conversations


@rate(summary=("assumed_resolution_rate",))
def assumed_resolution_rate(t: Totals) -> tuple[int, int]:
    """100 × conversations the bot answered and the customer left without asking for a human
    (outcome `assumed`) / all conversations, 1 decimal; None without data."""
    return t.outcome_assumed, t.conversations


@rate(summary=("abandonment_rate",))
def abandonment_rate(t: Totals) -> tuple[int, int]:
    """100 × conversations the customer left unresolved with no human involved (outcome
    `abandoned`) / all conversations, 1 decimal; None without data."""
    return t.outcome_abandoned, t.conversations


@metric(Unit.COUNT, summary=("repeat_contact.window_days",), topics="repeat_contact.window_days")
def repeat_contact_window_days(t: Totals) -> int:
    """The repeat-contact window in days (REPEAT_CONTACT_DAYS): a customer who comes back
    within it followed up; a conversation older than it is settled."""
    from django.conf import settings

    return settings.REPEAT_CONTACT_DAYS


declare(
    "settled",
    Unit.COUNT,
    "Conversations with a customer id that ended at least the repeat-contact window before now "
    '(only for those is "not followed up" known).',
    summary=("repeat_contact.settled",),
    topics="repeat_contact.settled",
)
declare(
    "settled_ai_resolved",
    Unit.COUNT,
    "Settled conversations the bot resolved.",
    summary=("repeat_contact.settled_ai_resolved",),
    topics="repeat_contact.settled_ai_resolved",
)
declare(
    "followed_up",
    Unit.COUNT,
    "Settled AI-resolved conversations whose customer had another conversation (any topic, "
    "channel, version or outcome) that ended after it and within the repeat-contact window.",
    summary=("repeat_contact.followed_up",),
    topics="repeat_contact.followed_up",
)


@rate(summary=("repeat_contact.repeat_contact_rate",), topics="repeat_contact.repeat_contact_rate")
def repeat_contact_rate(t: Totals) -> tuple[int, int]:
    """100 × followed up / settled AI-resolved, 1 decimal: how often a customer the bot
    "resolved" came back within the window. None when no AI-resolved conversation is settled."""
    return t.followed_up, t.settled_ai_resolved


@rate(
    summary=("repeat_contact.durable_resolution_rate",),
    topics="repeat_contact.durable_resolution_rate",
)
def durable_resolution_rate(t: Totals) -> tuple[int, int]:
    """100 × (settled AI-resolved − followed up) / settled, 1 decimal: of the settled
    conversations, those the bot resolved and whose customer did not come back within the
    window (Chatwoot's 7-day "durable" resolution). None when none is settled."""
    return t.settled_ai_resolved - t.followed_up, t.settled


@rate(
    summary=("repeat_contact.customer_id_coverage",),
    topics="repeat_contact.customer_id_coverage",
)
def customer_id_coverage(t: Totals) -> tuple[int, int]:
    """100 × conversations with a customer id / all conversations, 1 decimal: how much of the
    traffic the repeat-contact figures speak for."""
    return t.with_customer_id, t.conversations


def _share_interval(part: int, whole: int) -> list[Decimal] | None:
    """A topic's share's Wilson interval: of the row (selectors.TopicStats.share_parts), not
    of its Totals, since the whole is the window's."""
    return _bounds(statistics.wilson_interval(successes=part, n=whole), Unit.PERCENT)


# Metrics of a result row rather than of its Totals (computed by analytics.selectors).
declare(
    "share",
    Unit.PERCENT,
    "100 × this topic's conversations / all conversations in the window.",
    source="share",
    interval=lambda row: _share_interval(*row.share_parts),
)
declare(
    "escalation_cost",
    Unit.MONEY,
    "escalations × human cost per conversation: what the escalations cost in human time.",
    source="escalation_cost",
)
declare("savings", Unit.MONEY, "Money saved against human-only support.", source="cost.savings",
        summary=("estimated_savings",))  # fmt: skip
declare(
    "knowledge_gap_cost",
    Unit.MONEY,
    "(escalations + settled AI-resolved conversations that were followed up) × human cost per "
    'conversation: what a topic\'s knowledge gap costs, counting the "resolutions" that came back.',
    source="knowledge_gap_cost",
)
declare(
    "cumulative_savings",
    Unit.MONEY,
    "Savings of this bucket and every one before it in the window.",
    source="cumulative_savings",
)


# --- Totals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostBreakdown:
    """Money saved against human-only support, with the assumptions used."""

    currency: str
    human_cost_per_conversation: Decimal
    ai_cost_per_conversation: Decimal
    human_only_cost: Decimal
    actual_cost: Decimal
    savings: Decimal


class _TotalsMethods:
    """What every Totals can do besides its metrics (see `Totals` below)."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Totals:
        """From a row of `full_scan_aggregates()` (an empty set gives None sums)."""
        values = {name: row.get(name) or 0 for name in NAMES}
        if "response_ms_buckets" in row:
            values[HISTOGRAM] = tuple(histogram.from_buckets(row["response_ms_buckets"] or ()))
        else:
            values[HISTOGRAM] = tuple(row.get(HISTOGRAM) or histogram.EMPTY)
        return cls(**values)

    @classmethod
    def from_columns(
        cls,
        values: Sequence[Any],
        *,
        histogram_counts: Sequence[int] | None = None,
        buckets: Sequence[int] | None = None,
        sign: int = 1,
    ) -> Totals:
        """From the figures' columns in `figures.NAMES` order (NULL sums of no rows are 0),
        with the histogram as counts or as the raw rows' buckets; negated when `sign` is −1
        (raw rows taken away from a rollup row)."""
        if buckets is not None:
            counts = histogram.from_buckets(buckets)
        elif histogram_counts is not None:
            counts = histogram_counts
        else:
            counts = histogram.EMPTY
        if sign == 1:
            return cls(*(value or 0 for value in values), tuple(counts))
        return cls(*(-(value or 0) for value in values), tuple(-count for count in counts))

    def __getattr__(self, name: str) -> Any:
        # A cut-off figure (figures.CutOff), read into `cut_offs`; zero where none was read
        # (an empty bucket).
        cut_offs = self.__dict__.get("cut_offs", {})
        if name in cut_offs:
            return cut_offs[name]
        if name in _CUT_OFF_ZEROS:
            return _CUT_OFF_ZEROS[name]
        declared = getattr(type(self), name, None)
        if isinstance(declared, property):
            return declared.fget(self)  # a metric that failed: raise its own error again
        raise AttributeError(f"Totals has no figure {name!r}")

    def _compared(self) -> tuple:
        # A cut-off figure not read is 0 (an empty bucket's Totals() equals one read as zeros).
        cut_offs = self.cut_offs
        return (
            *_figure_values(self),
            self.response_ms_histogram,
            *(cut_offs.get(name, zero) for name, zero in _CUT_OFF_ZEROS.items()),
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def with_cut_offs(self, values: dict[str, Any]) -> Totals:
        return replace(self, cut_offs={**self.cut_offs, **values})

    def __add__(self, other: Totals) -> Totals:
        mine, theirs = self.response_ms_histogram, other.response_ms_histogram
        # Topic figures carry no histogram, and a sum often starts empty: skip 101 additions.
        if not any(theirs):
            counts = mine
        elif not any(mine):
            counts = theirs
        else:
            counts = tuple(map(operator.add, mine, theirs))
        cut_offs = self.cut_offs
        if other.cut_offs:
            names = {*cut_offs, *other.cut_offs}
            cut_offs = {name: cut_offs.get(name, 0) + other.cut_offs.get(name, 0) for name in names}
        return type(self)(*map(operator.add, _figure_values(self), _figure_values(other)), counts, cut_offs)

    @property
    def csat_sum(self) -> int:
        return sum(map(operator.mul, CSAT_SCORES, _csat_counts(self)))

    @property
    def csat_sq_sum(self) -> int:
        return sum(
            score * score * count for score, count in zip(CSAT_SCORES, _csat_counts(self), strict=True)
        )

    @property
    def csat_distribution(self) -> dict[int, int]:
        """How many conversations got each CSAT score, 1 to 5 (all five keys, zeros included)."""
        return {score: getattr(self, f"csat_{score}") for score in CSAT_SCORES}

    def cost(self, settings) -> CostBreakdown:
        """Human-only cost minus actual cost, under `settings` (CostSettings).

        human-only cost = conversations × human cost per conversation
        actual cost     = AI cost of every conversation (its own `ai_cost`, else the default)
                          + escalated × human cost per conversation
        savings         = AI-resolved × human cost − AI cost of every conversation

        The tutorial's `resolved × (human − ai)` forgets that escalated conversations also
        cost the bot's time before the human took over.
        """
        human = settings.human_cost_per_conversation
        human_only = human * self.conversations
        ai_cost = self.ai_cost_sum + settings.ai_cost_per_conversation * self.ai_cost_missing
        actual = ai_cost + human * self.escalated
        return CostBreakdown(
            currency=settings.currency,
            human_cost_per_conversation=human,
            ai_cost_per_conversation=settings.ai_cost_per_conversation,
            human_only_cost=_round(human_only, TWO_DECIMALS),
            actual_cost=_round(actual, TWO_DECIMALS),
            savings=_round(human_only - actual, TWO_DECIMALS),
        )

    def escalation_cost(self, settings) -> Decimal:
        """What the escalations cost in human time: escalated × human cost per conversation."""
        return human_time_cost(self.escalated, settings.human_cost_per_conversation)

    def knowledge_gap_cost(self, settings) -> Decimal:
        """(escalated + followed up) × human cost per conversation: the escalations, and the
        settled AI "resolutions" whose customer came back (a human most likely took those)."""
        return human_time_cost(self.escalated + self.followed_up, settings.human_cost_per_conversation)


# One field per figure (figures.FIGURES order, which `from_columns` and `+` rely on), the
# histogram and the cut-off figures; one property per metric declared with a function above.
Totals = make_dataclass(
    "Totals",
    [
        *((figure.name, type(figure.zero), field(default=figure.zero)) for figure in FIGURES),
        (HISTOGRAM, tuple, field(default=histogram.EMPTY)),
        # The cut-off figures (figures.CUTOFFS) by name, read as attributes too.
        # Never changed in place (`with_cut_offs` makes a new one). Equality and the hash
        # (_TotalsMethods) read a missing one as 0.
        ("cut_offs", dict, field(default_factory=dict)),
    ],
    bases=(_TotalsMethods,),
    eq=False,
    namespace={
        name: property(declared.compute, doc=declared.doc)
        for name, declared in METRICS.items()
        if declared.compute is not None
    },
    frozen=True,
)
Totals.__module__ = __name__
Totals.__doc__ = "Sums and counts over a set of conversations (analytics.figures), with their metrics."
_figure_values = operator.attrgetter(*NAMES)
_CUT_OFF_ZEROS = {cut_off.name: BY_NAME[cut_off.of].zero for cut_off in CUTOFFS}


def full_scan_aggregates(*, with_histogram: bool = True) -> dict:
    """ORM aggregates over conversations, keyed by Totals field: a full scan's figures (what
    the tests compare the rollup reads with)."""
    from django.contrib.postgres.aggregates import ArrayAgg
    from django.db.models import Q

    result = {figure.name: figure.aggregate() for figure in FIGURES}
    if with_histogram:
        result["response_ms_buckets"] = ArrayAgg(
            "response_ms_bucket", filter=Q(response_ms_bucket__isnull=False)
        )
    return result
