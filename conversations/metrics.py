"""Every metric the product shows, defined once.

Two halves, used together by the selectors:

* `aggregates()` — the SQL sums and counts over a set of conversations. The same
  expressions serve a whole window, one time bucket or one topic.
* `Totals` — those raw numbers as plain data, with each derived metric (rates, means,
  money) as a documented property. A number on the dashboard or in the API is one of
  these properties, so it cannot differ between the two.

Rounding is half-up: rates to 1 decimal, CSAT means to 2, money to 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import (
    Aggregate,
    Avg,
    Count,
    DecimalField,
    FloatField,
    Q,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from conversations.models import CSAT_SCORES, CostSettings

ONE_DECIMAL = Decimal("0.1")
TWO_DECIMALS = Decimal("0.01")
PROMOTER_SCORES = (4, 5)


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate `percentile_cont(f) WITHIN GROUP (ORDER BY x)`."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must be within [0, 1]")
        super().__init__(expression, fraction=float(fraction), **extra)


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


def aggregates(*, default_ai_cost: Decimal, prefix: str = "") -> dict[str, Aggregate]:
    """The SQL aggregates behind `Totals`, keyed by `Totals` field name.

    `prefix` reaches the conversation through a relation (e.g. "conversation__" from
    ConversationTopic) so topic statistics use the very same definitions.
    """

    def f(name: str) -> str:
        return f"{prefix}{name}"

    resolved = Q(**{f("resolved_by_ai"): True})
    escalated = Q(**{f("resolved_by_ai"): False})
    has_csat = Q(**{f("csat__isnull"): False})
    money = DecimalField(max_digits=20, decimal_places=6)
    result: dict[str, Aggregate] = {
        "conversations": Count(f("id")),
        "ai_resolved": Count(f("id"), filter=resolved),
        "turns_sum": Coalesce(Sum(f("turns")), 0),
        "csat_sum": Coalesce(Sum(f("csat")), 0),
        "csat_sum_ai_resolved": Coalesce(Sum(f("csat"), filter=resolved), 0),
        "csat_count_ai_resolved": Count(f("id"), filter=resolved & has_csat),
        "csat_sum_escalated": Coalesce(Sum(f("csat"), filter=escalated), 0),
        "csat_count_escalated": Count(f("id"), filter=escalated & has_csat),
        # A conversation without its own ai_cost costs the configured default.
        "ai_cost_sum": Coalesce(
            Sum(
                Coalesce(
                    f("ai_cost"),
                    Value(default_ai_cost, output_field=money),
                    output_field=money,
                )
            ),
            Value(Decimal(0), output_field=money),
            output_field=money,
        ),
        "response_ms_mean": Avg(f("avg_response_ms")),
        "response_ms_p95": PercentileCont(f("avg_response_ms"), 0.95),
    }
    for score in CSAT_SCORES:
        result[f"csat_{score}"] = Count(f("id"), filter=Q(**{f("csat"): score}))
    return result


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
    csat_sum: int = 0
    csat_sum_ai_resolved: int = 0
    csat_count_ai_resolved: int = 0
    csat_sum_escalated: int = 0
    csat_count_escalated: int = 0
    ai_cost_sum: Decimal = Decimal(0)
    response_ms_mean: float | None = None
    response_ms_p95: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Totals:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

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
        return sum(self.csat_distribution.values())

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
        promoters = sum(getattr(self, f"csat_{score}") for score in PROMOTER_SCORES)
        return percent(promoters, self.csat_responses)

    @property
    def avg_csat_ai_resolved(self) -> Decimal | None:
        """Mean CSAT of the AI-resolved conversations that have one, 2 decimals."""
        return _mean(self.csat_sum_ai_resolved, self.csat_count_ai_resolved, TWO_DECIMALS)

    @property
    def avg_csat_escalated(self) -> Decimal | None:
        """Mean CSAT of the escalated conversations that have one, 2 decimals."""
        return _mean(self.csat_sum_escalated, self.csat_count_escalated, TWO_DECIMALS)

    @property
    def avg_response_ms(self) -> Decimal | None:
        """Mean of the conversations' average response times (ms), 1 decimal.

        Each conversation counts once, whatever its number of responses; conversations
        that reported no response time are left out.
        """
        return _round_float(self.response_ms_mean)

    @property
    def p95_response_ms(self) -> Decimal | None:
        """95th percentile (linear interpolation) of the conversations' average response times (ms)."""
        return _round_float(self.response_ms_p95)

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
        actual = self.ai_cost_sum + human * self.escalated
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


def _round_float(value: float | None) -> Decimal | None:
    return None if value is None else _round(Decimal(str(value)), ONE_DECIMAL)
