"""Which metrics each answer shows, in which order, and how they are written.

The names come from the metrics' declarations (analytics.metrics: a summary path such as
"csat.score", `escalations` in the topics answer); here is only the order of each answer and
export, and the JSON field each unit is written with. The API views and the CSV exports build
their bodies, headers and OpenAPI schema from these, so a metric added to a layout appears in
the answer, its schema and the export at once.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from typing import Any

from drf_spectacular.utils import extend_schema_serializer, inline_serializer
from rest_framework import serializers

from conversations.analytics.figures import CSAT_SCORES
from conversations.analytics.metrics import (
    METRICS,
    Answer,
    Metric,
    Unit,
)

__all__ = ["SERIES_METRICS", "SUMMARY_LAYOUT", "TOPIC_METRICS", "Answer"]  # and the functions below

OUTCOMES = (
    "outcome_confirmed",
    "outcome_assumed",
    "outcome_escalated",
    "outcome_abandoned",
    "outcome_unreported",
)
REPEAT_CONTACT = (
    "repeat_contact_window_days",
    "settled",
    "settled_ai_resolved",
    "followed_up",
    "repeat_contact_rate",
    "durable_resolution_rate",
    "customer_id_coverage",
)

# The summary, after `window` and `filters` and before `cost`: the tutorial's keys first (same
# names and meaning; avg_csat is null, not 0, without scores), then those added. Each path is
# a metric's (its `summary` paths) or one of the two lists below.
SUMMARY_LAYOUT = (
    "total_conversations",
    "ai_resolution_rate",
    "avg_csat",
    "top_topics",
    "avg_turns",
    "estimated_savings",
    "ai_resolved_conversations",
    "escalated_conversations",
    "csat.responses",
    "csat.response_rate",
    "csat.average",
    "csat.score",
    "csat.distribution",
    "csat.average_ai_resolved",
    "csat.average_escalated",
    "response_time.mean_ms",
    "response_time.p95_ms",
    # Honest resolution: how conversations ended, why they escalated, who came back.
    *(METRICS[name].summary[0] for name in OUTCOMES),
    "outcome_coverage",
    "confirmed_resolution_rate",
    "assumed_resolution_rate",
    "abandonment_rate",
    "escalation_reasons",
    *(METRICS[name].summary[0] for name in REPEAT_CONTACT),
)
# The blocks of the summary and of rows, by their OpenAPI component names.
SUMMARY_BLOCKS = {
    "csat": "Csat",
    "response_time": "ResponseTime",
    "outcomes": "Outcomes",
    "repeat_contact": "RepeatContact",
}

TOPIC_METRICS = (
    "conversations",
    "share",
    "ai_resolved",
    "escalated",
    "ai_resolution_rate",
    "avg_csat",
    "csat_responses",
    "escalation_cost",
    "knowledge_gap_cost",
    *OUTCOMES,
    *REPEAT_CONTACT,
)
SERIES_METRICS = (
    "conversations",
    "ai_resolved",
    "escalated",
    "ai_resolution_rate",
    "csat_responses",
    "avg_csat",
    "csat_score",
    "avg_turns",
    "p95_response_ms",
    "savings",
    "cumulative_savings",
    *OUTCOMES,
)
# The dashboard's topics table as exported (its own order, as on the page), then the
# comparison with the previous period.
TOPICS_EXPORT_METRICS = (
    "conversations",
    "share",
    "ai_resolution_rate",
    "escalated",
    "avg_csat",
    "csat_responses",
    "escalation_cost",
)
# Added to the topics export after the comparison columns (those before keep their places).
TOPICS_EXPORT_ADDED = ("repeat_contact_rate", "knowledge_gap_cost")
SERIES_EXPORT_METRICS = SERIES_METRICS[: SERIES_METRICS.index("cumulative_savings") + 1]

VOLUME_PATH = "total_conversations"  # the summary path whose change is a volume's
_BY_SUMMARY_PATH: dict[str, Metric] = {path: metric for metric in METRICS.values() for path in metric.summary}
_GETTERS: dict[str, Callable[[Any], Any]] = {
    name: operator.attrgetter(metric.source) for name, metric in METRICS.items()
}
# A rate's or mean's 95% interval, written beside it as `<key>_ci95` (metrics.rate, metrics.mean):
# from the Totals its row holds it in.
INTERVAL_SUFFIX = "_ci95"


def _interval_getter(metric: Metric) -> Callable[[Any], Any]:
    """A metric's interval from a result row: from the Totals it reads ("totals.<name>"), or
    from the row itself for a metric of the row ("share")."""
    holder = metric.source.rpartition(".")[0]
    if not holder:
        return metric.interval
    totals = operator.attrgetter(holder)
    return lambda row: metric.interval(totals(row))


_INTERVALS: dict[str, Callable[[Any], Any]] = {
    name: _interval_getter(metric) for name, metric in METRICS.items() if metric.interval is not None
}
# Not metrics: the summary's two lists.
_SUMMARY_EXTRAS: dict[str, tuple[Callable[[Any], Any], Callable[[], serializers.Field]]] = {
    "top_topics": (
        lambda summary: [[name, count] for name, count in summary.top_topics],
        lambda: serializers.ListField(
            child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
            help_text="Up to 10 [topic, conversations] pairs, most first, ties by name.",
        ),
    ),
    "escalation_reasons": (
        lambda summary: [[reason, count] for reason, count in summary.escalation_reasons],
        lambda: serializers.ListField(
            child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
            help_text="Up to 10 [escalation reason, conversations] pairs, most first, ties by name.",
        ),
    ),
    "csat.distribution": (
        lambda summary: {str(score): count for score, count in summary.totals.csat_distribution.items()},
        lambda: inline_serializer(
            "CsatDistribution", {str(score): serializers.IntegerField() for score in CSAT_SCORES}
        ),
    ),
}


def metric_field(metric: Metric) -> serializers.Field:
    """The JSON field a metric is written with: an integer, or a decimal number of its unit's
    places (half-up rounded already: the field only writes it)."""
    help_text = metric.doc.split("\n", 1)[0]
    if metric.unit is Unit.COUNT:
        return serializers.IntegerField(help_text=help_text)
    return serializers.DecimalField(
        max_digits=metric.unit.max_digits,
        decimal_places=metric.unit.decimal_places,
        allow_null=metric.nullable,
        help_text=help_text + (" Null without data." if metric.nullable else ""),
    )


def interval_field(metric: Metric) -> serializers.Field:
    """The field of a metric's 95% interval: [low, high] in its unit, or null."""
    return serializers.ListField(
        child=serializers.DecimalField(
            max_digits=metric.unit.max_digits, decimal_places=metric.unit.decimal_places
        ),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text=f"The 95% confidence interval of `{metric.name}`, [low, high], rounded as it is; "
        "null when it is null or has no interval (fewer than 2 values for a mean).",
    )


class PathKeyed(serializers.Serializer):
    """A serializer of a dict whose keys are summary paths ("csat.score"): DRF would read a
    dotted field name as a path into the object, so each entry is taken by its key."""

    def to_representation(self, instance: dict) -> dict:
        return {
            name: None if instance[name] is None else field.to_representation(instance[name])
            for name, field in self.fields.items()
        }


def named_serializer(
    component_name: str, fields: dict[str, serializers.Field], *, base: type = serializers.Serializer
) -> type[serializers.Serializer]:
    """A serializer class of these fields, in this order, named `component_name` in the schema."""
    serializer = type(f"{component_name}Serializer", (base,), dict(fields))
    # DRF orders declared fields by when each was built; the layout's order is the answer's.
    serializer._declared_fields = dict(fields)
    return extend_schema_serializer(component_name=component_name)(serializer)


# --- The summary -------------------------------------------------------------------------------


def summary_body(summary) -> dict[str, Any]:
    """The summary's metrics (a selectors.Summary), nested and ordered as SUMMARY_LAYOUT says."""
    body: dict[str, Any] = {}
    for path in SUMMARY_LAYOUT:
        *block, key = path.split(".")
        target = body.setdefault(block[0], {}) if block else body
        if path in _SUMMARY_EXTRAS:
            target[key] = _SUMMARY_EXTRAS[path][0](summary)
            continue
        name = _BY_SUMMARY_PATH[path].name
        target[key] = _GETTERS[name](summary)
        if name in _INTERVALS:
            target[key + INTERVAL_SUFFIX] = _INTERVALS[name](summary)
    return body


def summary_fields() -> dict[str, serializers.Field]:
    """The fields of `summary_body`, its blocks as nested serializers."""
    fields: dict[str, Any] = {}
    for path in SUMMARY_LAYOUT:
        *block, key = path.split(".")
        target = fields.setdefault(block[0], {}) if block else fields
        if path in _SUMMARY_EXTRAS:
            target[key] = _SUMMARY_EXTRAS[path][1]()
            continue
        metric = _BY_SUMMARY_PATH[path]
        target[key] = metric_field(metric)
        if metric.interval is not None:
            target[key + INTERVAL_SUFFIX] = interval_field(metric)
    return {key: _block(key, value) if isinstance(value, dict) else value for key, value in fields.items()}


_BLOCKS: dict[str, type[serializers.Serializer]] = {}


def _block(key: str, fields: dict[str, serializers.Field]) -> serializers.Serializer:
    """A block's serializer: one class per block (its OpenAPI component), whichever answer
    has it (the summary's `outcomes` block is also every topic's and bucket's)."""
    if key not in _BLOCKS:
        _BLOCKS[key] = named_serializer(SUMMARY_BLOCKS[key], fields)
    assert list(_BLOCKS[key]._declared_fields) == list(fields), f"The {key!r} block differs between answers."
    return _BLOCKS[key]()


# --- Changes between two summaries (selectors.Comparison) ---------------------------------------

_COMPARED_PATHS = tuple(
    path for path in SUMMARY_LAYOUT if path in _BY_SUMMARY_PATH and _BY_SUMMARY_PATH[path].compare is not None
)


def _change_fields(unit: Unit) -> dict[str, serializers.Field]:
    difference = functools.partial(
        serializers.DecimalField, max_digits=unit.max_digits + 1, decimal_places=unit.decimal_places
    )
    return {
        "difference": difference(
            allow_null=True,
            help_text="b − a (points for a rate), rounded as the figure is; null when a side has no data.",
        ),
        "difference_ci95": serializers.ListField(
            child=difference(),
            min_length=2,
            max_length=2,
            allow_null=True,
            help_text="Its 95% interval (Newcombe's hybrid score method for a rate, Welch for a mean).",
        ),
        "p_value": serializers.FloatField(
            allow_null=True,
            help_text="Two-sided (pooled two-proportion z-test for a rate, Welch's t-test for a mean), "
            "4 significant digits; null where the test is undefined.",
        ),
        "significant": serializers.BooleanField(help_text="p_value < 0.05."),
    }


def _volume_fields() -> dict[str, serializers.Field]:
    return {
        "relative_change": serializers.DecimalField(
            max_digits=12, decimal_places=1, allow_null=True, help_text="100 × (b − a) / a; null when a is 0."
        ),
        "p_value": serializers.FloatField(
            allow_null=True,
            help_text="Exact conditional binomial test, its expected share following the windows' lengths.",
        ),
        "significant": serializers.BooleanField(help_text="p_value < 0.05."),
    }


def _adjusted_fields() -> dict[str, serializers.Field]:
    return {
        "q_value": serializers.FloatField(
            allow_null=True, help_text="The p-value adjusted by Benjamini–Hochberg across the topics."
        ),
        "significant": serializers.BooleanField(help_text="q_value < 0.05."),
    }


@functools.cache  # one component each, whichever answer has it
def _change_serializer(unit: Unit | None, *, adjusted: bool) -> type[serializers.Serializer]:
    """A change of a figure of `unit` (None: the volume), with its q-value when `adjusted`."""
    name = "VolumeChange" if unit is None else f"Change{unit.name.title()}"
    fields = _volume_fields() if unit is None else _change_fields(unit)
    if adjusted:
        return named_serializer(f"Topic{name}", {**fields, **_adjusted_fields()})
    return named_serializer(name, fields)


@functools.cache
def changes_serializer() -> type[serializers.Serializer]:
    """The `changes` object: one entry per compared summary path."""
    fields = {VOLUME_PATH: _change_serializer(None, adjusted=False)()}
    for path in _COMPARED_PATHS:
        fields[path] = _change_serializer(_BY_SUMMARY_PATH[path].unit, adjusted=False)()
    return named_serializer("Changes", fields, base=PathKeyed)


def topic_change_fields() -> dict[str, serializers.Field]:
    """The fields of a topic's `changes`: its figures' changes, each with its q-value."""
    fields = {"conversations": _change_serializer(None, adjusted=True)()}
    for name in TOPIC_METRICS:
        metric = METRICS[name]
        if metric.compare is not None:
            fields[metric.name_in(Answer.TOPICS)] = _change_serializer(metric.unit, adjusted=True)()
    return fields


# --- Rows: topics and time-series buckets ------------------------------------------------------


def row_body(row, metrics: tuple[str, ...], answer: Answer) -> dict[str, Any]:
    """The metrics of a result row (TopicStats, Bucket) under their names in `answer` (a name
    "block.key" in the block's object)."""
    body: dict[str, Any] = {}
    for block, key, get in _row_layout(metrics, answer):
        (body.setdefault(block, {}) if block else body)[key] = get(row)
    return body


@functools.cache
def _row_layout(
    metrics: tuple[str, ...], answer: Answer
) -> tuple[tuple[str | None, str, Callable[[Any], Any]], ...]:
    # Worked out once per layout: a series answer writes ~100 rows of ~10 metrics.
    layout = []
    for name in metrics:
        block, _, key = METRICS[name].name_in(answer).rpartition(".")
        layout.append((block or None, key, _GETTERS[name]))
        if name in _INTERVALS:
            layout.append((block or None, key + INTERVAL_SUFFIX, _INTERVALS[name]))
    return tuple(layout)


def row_fields(metrics: Iterable[str], answer: Answer) -> dict[str, serializers.Field]:
    fields: dict[str, Any] = {}
    for name in metrics:
        block, _, key = METRICS[name].name_in(answer).rpartition(".")
        target = fields.setdefault(block, {}) if block else fields
        target[key] = metric_field(METRICS[name])
        if METRICS[name].interval is not None:
            target[key + INTERVAL_SUFFIX] = interval_field(METRICS[name])
    return {key: _block(key, value) if isinstance(value, dict) else value for key, value in fields.items()}


def row_serializer(
    component_name: str, metrics: Iterable[str], answer: Answer, *, before: dict | None = None
) -> type[serializers.Serializer]:
    """A serializer of rows with `before`'s fields, then the metrics'."""
    return named_serializer(component_name, {**(before or {}), **row_fields(metrics, answer)})


def export_header(metrics: Iterable[str], answer: Answer) -> list[str]:
    """CSV column names: the answer's names, with the unit's suffix (`_pct` for rates)."""
    return [METRICS[name].csv_name(answer) for name in metrics]


def export_values(row, metrics: tuple[str, ...]) -> list[Any]:
    return [get(row) for get in _getters(metrics)]


@functools.cache
def _getters(metrics: tuple[str, ...]) -> tuple[Callable[[Any], Any], ...]:
    return tuple(_GETTERS[name] for name in metrics)
