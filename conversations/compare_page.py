"""The Compare page and an annotation's impact page: two arms (selectors.Comparison) laid out as
rows of figures and of topics, each change coloured only when significant (conversations.changes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from conversations import formatting
from conversations.analytics import selectors
from conversations.analytics.metrics import METRICS, Metric, Unit
from conversations.analytics.tables import VOLUME_PATH
from conversations.changes import NO_TEST, Delta, judged

# The metric of each path in the summary ("csat.score" -> csat_score).
_BY_PATH: dict[str, Metric] = {path: metric for metric in METRICS.values() for path in metric.summary}


def _shown(unit: Unit) -> Callable[[Decimal | None], str]:
    if unit is Unit.PERCENT:
        return formatting.rate
    if unit is Unit.MILLISECONDS:
        return formatting.milliseconds
    return lambda value: formatting.number(value, unit.decimal_places)


def _difference_unit(unit: Unit) -> str:
    return {Unit.PERCENT: " pp", Unit.MILLISECONDS: " ms"}.get(unit, "")


@dataclass(frozen=True)
class FigureRow:
    path: str  # its path in the summary (the API's `changes` key), "" for a figure without one
    label: str
    a: str
    a_ci95: str
    b: str
    b_ci95: str
    delta: Delta
    difference_ci95: str
    p_value: str


# (path in the summary, label, higher is): the figures side by side, in this order.
FIGURES = (
    (VOLUME_PATH, "Conversations", "neutral"),
    ("ai_resolution_rate", "AI resolution rate", "good"),
    ("confirmed_resolution_rate", "Confirmed resolution", "good"),
    ("assumed_resolution_rate", "Assumed resolution", "neutral"),
    ("abandonment_rate", "Abandonment", "bad"),
    ("repeat_contact.durable_resolution_rate", "Durable resolution", "good"),
    ("csat.score", "CSAT (4–5 ratings)", "good"),
    ("avg_csat", "Mean CSAT", "good"),
    ("avg_turns", "Average turns", "bad"),
    ("response_time.mean_ms", "Mean response time", "bad"),
    ("response_time.p95_ms", "p95 response time", "bad"),
)


def _interval_text(interval: list[Decimal] | None, shown: Callable[[Decimal | None], str]) -> str:
    return "" if interval is None else f"{shown(interval[0])} – {shown(interval[1])}"


def _change(test: dict | None, unit: Unit, value_a, value_b, *, higher_is: str, new: str) -> Delta:
    """The change b − a as the comparison's test gives it (the API's `difference`, or the
    volume's `relative_change`, `new` when a had none), judged by the test; a figure without a
    test (p95) shows the difference of its two values, not judged."""
    if test is not None and "relative_change" in test:
        change, unit_text = test["relative_change"], ""
        text = new if change is None else formatting.signed(change, "%")
    else:
        unit_text = _difference_unit(unit)
        if test is not None:
            change = test["difference"]
        else:
            change = None if value_a is None or value_b is None else value_b - value_a
        text = (
            formatting.DASH if change is None else formatting.signed(change, unit_text, unit.decimal_places)
        )
    if test is None:
        return Delta(text, "untested", verdict="not tested", hover=NO_TEST)
    if change is None:
        return Delta(text, "none")
    return judged(text, test, higher_is=higher_is, unit=unit_text)


def _figure_row(path: str, label: str, higher_is: str, comparison: selectors.Comparison) -> FigureRow:
    metric = _BY_PATH[path]
    a, b = comparison.a.totals, comparison.b.totals
    shown = _shown(metric.unit)
    value_a, value_b = getattr(a, metric.name), getattr(b, metric.name)
    test = comparison.changes.get(path)
    bounds = (test or {}).get("difference_ci95")
    unit, places = _difference_unit(metric.unit), metric.unit.decimal_places
    interval = metric.interval or (lambda totals: None)
    return FigureRow(
        path=path,
        label=label,
        a=shown(value_a),
        a_ci95=_interval_text(interval(a), shown),
        b=shown(value_b),
        b_ci95=_interval_text(interval(b), shown),
        delta=_change(test, metric.unit, value_a, value_b, higher_is=higher_is, new=formatting.DASH),
        difference_ci95="" if not bounds else " to ".join(formatting.signed(x, unit, places) for x in bounds),
        p_value="" if test is None else formatting.p_value(test["p_value"]),
    )


@dataclass(frozen=True)
class TopicCell:
    a: str
    b: str
    delta: Delta


@dataclass(frozen=True)
class TopicRow:
    topic: str
    conversations: TopicCell
    ai_resolution_rate: TopicCell
    avg_csat: TopicCell
    significant: bool  # any of its changes, after the adjustment across the topics
    q_value: float | None  # its smallest

    @property
    def cells(self) -> tuple[TopicCell, TopicCell, TopicCell]:
        return (self.conversations, self.ai_resolution_rate, self.avg_csat)


def _topic_cell(name: str, key: str, higher_is: str, found: selectors.TopicComparison) -> TopicCell:
    metric = METRICS[name]
    shown = _shown(metric.unit)
    sides = [
        getattr(side.totals, name) if side else (0 if name == "conversations" else None)
        for side in (found.a, found.b)
    ]
    delta = _change(found.changes[key], metric.unit, *sides, higher_is=higher_is, new="new")
    return TopicCell(a=shown(sides[0]), b=shown(sides[1]), delta=delta)


def topic_rows(comparison: selectors.Comparison) -> list[TopicRow]:
    """Every topic of either arm: those with a significant change first (smallest q-value
    first), then the others by conversations, as `compare` orders them."""
    rows = []
    for found in comparison.topics:
        q_values = [change["q_value"] for change in found.changes.values() if change["q_value"] is not None]
        rows.append(
            TopicRow(
                topic=found.topic,
                conversations=_topic_cell("conversations", "conversations", "neutral", found),
                ai_resolution_rate=_topic_cell("ai_resolution_rate", "ai_resolution_rate", "good", found),
                avg_csat=_topic_cell("avg_csat", "avg_csat", "good", found),
                significant=any(change["significant"] for change in found.changes.values()),
                q_value=min(q_values, default=None),
            )
        )
    significant = sorted((row for row in rows if row.significant), key=lambda row: row.q_value)
    return significant + [row for row in rows if not row.significant]


@dataclass(frozen=True)
class ComparePage:
    a_label: str
    b_label: str
    a_conversations: int
    b_conversations: int
    figures: list[FigureRow]
    topics: list[TopicRow]
    sample_size_per_arm: dict[str, int | None]
    # Savings as a figure without a test (money): shown for both arms, no p-value.
    a_savings: str
    b_savings: str

    @property
    def significant_topics(self) -> int:
        return sum(row.significant for row in self.topics)


def compare_page(comparison: selectors.Comparison, *, a_label: str, b_label: str) -> ComparePage:
    currency = comparison.b.cost.currency
    return ComparePage(
        a_label=a_label,
        b_label=b_label,
        a_conversations=comparison.a.totals.conversations,
        b_conversations=comparison.b.totals.conversations,
        figures=[_figure_row(path, label, higher_is, comparison) for path, label, higher_is in FIGURES],
        topics=topic_rows(comparison),
        sample_size_per_arm=comparison.sample_size_per_arm,
        a_savings=formatting.money(comparison.a.cost.savings, currency),
        b_savings=formatting.money(comparison.b.cost.savings, currency),
    )
