"""Every metric the product shows, defined once.

Two halves, used together by the selectors:

* `RAW_SQL` / `ROLLUP_SQL` — the SQL sums and counts over a set of conversations, read from
  the conversations themselves or from their rollups per quarter hour, hour and day
  (conversations.rollups). Both give the same additive figures, so a window is the sum of its
  rollup rows and of the raw conversations at its edges (conversations.selectors).
  `raw_aggregates()` is the same as ORM aggregates (a full scan, what the tests compare the
  fast reads with).
* `Totals` — those figures as plain data that add up (`+`), with each derived metric
  (rates, means, money, p95) as a documented property. A number on the dashboard or in the
  API is one of these properties, so it cannot differ between the two.

Rounding is half-up: rates to 1 decimal, CSAT means to 2, money to 2.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Aggregate, Count, DecimalField, Q, Sum
from django.db.models.functions import Cast

from conversations import histogram
from conversations.models import CSAT_SCORES, CostSettings
from conversations.rollups import METRICS as ROLLUP_METRICS

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


def _mean(total: int | Decimal, count: int, places: Decimal) -> Decimal | None:
    if count == 0:
        return None
    return _round(Decimal(total) / Decimal(count), places)


def raw_aggregates(*, with_histogram: bool = True) -> dict[str, Aggregate]:
    """ORM aggregates over conversations, keyed by `Totals` field: a full scan's figures.

    These match, column for column, the rollups' definitions in conversations.rollups and
    RAW_SQL below.
    """

    resolved = Q(resolved_by_ai=True)
    result: dict[str, Aggregate] = {
        "conversations": Count("id"),
        "ai_resolved": Count("id", filter=resolved),
        "turns_sum": Sum("turns"),
        "csat_sum_ai_resolved": Sum("csat", filter=resolved),
        "csat_count_ai_resolved": Count("csat", filter=resolved),
        "ai_cost_sum": Sum("ai_cost"),
        "ai_cost_missing": Count("id", filter=Q(ai_cost__isnull=True)),
        "response_ms_sum": Sum(Cast("avg_response_ms", DecimalField(max_digits=30, decimal_places=3))),
        "response_ms_count": Count("avg_response_ms"),
    }
    for score in CSAT_SCORES:
        result[f"csat_{score}"] = Count("id", filter=Q(csat=score))
    if with_histogram:
        result["response_ms_buckets"] = ArrayAgg(
            "response_ms_bucket", filter=Q(response_ms_bucket__isnull=False)
        )
    return result


# The same figures as SQL select expressions, in ROLLUP_METRICS order, for the selectors'
# window reads (see conversations.selectors for why those are SQL text). Fixed text only:
# no value is ever formatted into it. Over conversations `c`, column for column the same as
# raw_aggregates() (tests/test_rollups.py compares the two on random data):
RAW_SQL: tuple[str, ...] = (
    "count(*)",  # conversations
    "count(*) FILTER (WHERE c.resolved_by_ai)",  # ai_resolved
    "sum(c.turns)",  # turns_sum
    *(f"count(*) FILTER (WHERE c.csat = {score})" for score in CSAT_SCORES),  # csat_1 .. csat_5
    "sum(c.csat) FILTER (WHERE c.resolved_by_ai)",  # csat_sum_ai_resolved
    "count(c.csat) FILTER (WHERE c.resolved_by_ai)",  # csat_count_ai_resolved
    "sum(c.ai_cost)",  # ai_cost_sum
    "count(*) FILTER (WHERE c.ai_cost IS NULL)",  # ai_cost_missing
    # response_ms_sum: in whole microseconds, the same exact sum as of numeric(30, 3) values
    # (avg_response_ms is kept to the microsecond) at a third of the cost per row: a
    # float-to-numeric cast goes through text (measured on 4,635 rows: 9.5 vs 4.1 ms).
    "sum(round(c.avg_response_ms * 1000)::bigint) * 0.001",
    "count(c.avg_response_ms)",  # response_ms_count
)
# The response-time buckets of those conversations (Totals.from_columns counts them).
RAW_BUCKETS_SQL = "array_agg(c.response_ms_bucket) FILTER (WHERE c.response_ms_bucket IS NOT NULL)"
# Over rollup rows `r`: each column's sum.
ROLLUP_SQL: tuple[str, ...] = tuple(f"sum(r.{name})" for name in ROLLUP_METRICS)
# Their histograms summed element by element (the aggregate from migration 0003). Tried
# instead: 101 sums of single elements, which run faster but take ~1 ms more to plan; the
# whole read came out slower for windows up to 30 days and even at 90.
ROLLUP_HISTOGRAM_SQL = "sa_histogram_sum(r.response_ms_histogram)"
assert len(RAW_SQL) == len(ROLLUP_SQL) == len(ROLLUP_METRICS)


@dataclass(frozen=True)
class CostBreakdown:
    """Money saved against human-only support, with the assumptions used."""

    currency: str
    human_cost_per_conversation: Decimal
    ai_cost_per_conversation: Decimal
    human_only_cost: Decimal
    actual_cost: Decimal
    savings: Decimal


@dataclass(frozen=True)
class Totals:
    """Raw sums and counts over a set of conversations, with the metrics derived from them."""

    conversations: int = 0
    ai_resolved: int = 0
    turns_sum: int = 0
    csat_1: int = 0
    csat_2: int = 0
    csat_3: int = 0
    csat_4: int = 0
    csat_5: int = 0
    csat_sum_ai_resolved: int = 0
    csat_count_ai_resolved: int = 0
    ai_cost_sum: Decimal = Decimal(0)  # the costs the bot reported
    ai_cost_missing: int = 0  # conversations that take the default AI cost
    response_ms_sum: Decimal = Decimal(0)
    response_ms_count: int = 0
    response_ms_histogram: tuple[int, ...] = histogram.EMPTY

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Totals:
        """From a row of raw_aggregates() (an empty set gives None sums)."""
        values = {name: row.get(name) or 0 for name in ROLLUP_METRICS}
        if "response_ms_buckets" in row:
            values["response_ms_histogram"] = tuple(histogram.from_buckets(row["response_ms_buckets"] or ()))
        else:
            values["response_ms_histogram"] = tuple(row.get("response_ms_histogram") or histogram.EMPTY)
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
        """From the columns of RAW_SQL or ROLLUP_SQL (in ROLLUP_METRICS order; NULL sums of no
        rows are 0), with the histogram as ROLLUP_HISTOGRAM_SQL's counts or RAW_BUCKETS_SQL's
        buckets; negated when `sign` is −1 (raw rows taken away from a rollup hour)."""
        if buckets is not None:
            counts = histogram.from_buckets(buckets)
        elif histogram_counts is not None:
            counts = histogram_counts
        else:
            counts = histogram.EMPTY
        if sign == 1:
            return cls(*(value or 0 for value in values), tuple(counts))
        return cls(*(-(value or 0) for value in values), tuple(-count for count in counts))

    def __add__(self, other: Totals) -> Totals:
        mine, theirs = self.response_ms_histogram, other.response_ms_histogram
        # Topic figures carry no histogram, and a sum often starts empty: skip 101 additions.
        if not any(theirs):
            counts = mine
        elif not any(mine):
            counts = theirs
        else:
            counts = tuple(map(operator.add, mine, theirs))
        return Totals(*map(operator.add, _metric_values(self), _metric_values(other)), counts)

    @property
    def csat_sum(self) -> int:
        return self.csat_1 + 2 * self.csat_2 + 3 * self.csat_3 + 4 * self.csat_4 + 5 * self.csat_5

    @property
    def escalated(self) -> int:
        """Conversations a human had to take over (`resolved_by_ai` false)."""
        return self.conversations - self.ai_resolved

    @property
    def ai_resolution_rate(self) -> Decimal | None:
        """The primary metric: 100 × AI-resolved / all conversations, 1 decimal; None without data.

        "Resolved by AI" is exactly what the bot reports in `resolved_by_ai`: the customer's
        issue ended without a human taking over.
        """
        return percent(self.ai_resolved, self.conversations)

    @property
    def avg_turns(self) -> Decimal | None:
        """Mean number of turns per conversation, 1 decimal; None without data."""
        return _mean(self.turns_sum, self.conversations, ONE_DECIMAL)

    @property
    def csat_distribution(self) -> dict[int, int]:
        """How many conversations got each CSAT score, 1 to 5 (all five keys, zeros included)."""
        return {score: getattr(self, f"csat_{score}") for score in CSAT_SCORES}

    @property
    def csat_responses(self) -> int:
        """Conversations with a CSAT score."""
        return self.csat_1 + self.csat_2 + self.csat_3 + self.csat_4 + self.csat_5

    @property
    def csat_response_rate(self) -> Decimal | None:
        """100 × conversations with a CSAT score / all conversations, 1 decimal."""
        return percent(self.csat_responses, self.conversations)

    @property
    def avg_csat(self) -> Decimal | None:
        """Mean CSAT (1–5) of the conversations that have one, 2 decimals.

        None when no conversation has a score: the tutorial's 0 would read as "terrible".
        """
        return _mean(self.csat_sum, self.csat_responses, TWO_DECIMALS)

    @property
    def csat_score(self) -> Decimal | None:
        """The industry's "CSAT score": 100 × ratings of 4 or 5 / all ratings, 1 decimal."""
        return percent(self.csat_4 + self.csat_5, self.csat_responses)

    @property
    def avg_csat_ai_resolved(self) -> Decimal | None:
        """Mean CSAT of the AI-resolved conversations that have one, 2 decimals."""
        return _mean(self.csat_sum_ai_resolved, self.csat_count_ai_resolved, TWO_DECIMALS)

    @property
    def avg_csat_escalated(self) -> Decimal | None:
        """Mean CSAT of the escalated conversations that have one, 2 decimals."""
        return _mean(
            self.csat_sum - self.csat_sum_ai_resolved,
            self.csat_responses - self.csat_count_ai_resolved,
            TWO_DECIMALS,
        )

    @property
    def avg_response_ms(self) -> Decimal | None:
        """Mean of the conversations' average response times (ms), 1 decimal.

        Each conversation counts once, whatever its number of responses; conversations
        that reported no response time are left out.
        """
        return _mean(self.response_ms_sum, self.response_ms_count, ONE_DECIMAL)

    @property
    def p95_response_ms(self) -> Decimal | None:
        """95th percentile of the conversations' average response times (ms), 1 decimal.

        From the response-time histogram (conversations.histogram): within 4.9% of the exact
        percentile_cont for times between 10 ms and 125 s.
        """
        value = histogram.percentile(self.response_ms_histogram, 0.95)
        return None if value is None else _round(Decimal(str(value)), ONE_DECIMAL)

    def cost(self, settings: CostSettings) -> CostBreakdown:
        """Human-only cost minus actual cost.

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

    def escalation_cost(self, settings: CostSettings) -> Decimal:
        """What the escalations cost in human time: escalated × human cost per conversation."""
        return _round(settings.human_cost_per_conversation * self.escalated, TWO_DECIMALS)


# Totals.from_columns and + build Totals positionally, in ROLLUP_METRICS order.
assert [field.name for field in fields(Totals)] == [*ROLLUP_METRICS, "response_ms_histogram"]
_metric_values = operator.attrgetter(*ROLLUP_METRICS)
