"""The analytics API: one skeleton (`AnalyticsApi`) for its three reads.

Each view parses the query once (conversations.serializers), calls one selector
(conversations.analytics.selectors) and writes the answer laid out by
conversations.analytics.tables, which also gives its OpenAPI schema.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.analytics import selectors, tables
from conversations.analytics.query import Filters, Period
from conversations.analytics.tables import Answer
from conversations.auth import CanRead
from conversations.serializers import (
    AnalyticsQuerySerializer,
    CompareQuerySerializer,
    SummaryQuerySerializer,
    TimeseriesQuerySerializer,
)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Exclusive.")
    start_inclusive = serializers.BooleanField(
        help_text="False for `hours` windows (timestamp > now - hours)."
    )


class FiltersSerializer(serializers.Serializer):
    channel = serializers.CharField(allow_null=True)
    topic = serializers.CharField(allow_null=True)
    bot_version = serializers.CharField(allow_null=True)
    escalation_reason = serializers.CharField(allow_null=True)


def _money(help_text: str = "") -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2, help_text=help_text)


class CostSerializer(serializers.Serializer):
    """The cost assumptions (CostSettings) and what they make of the window."""

    currency = serializers.CharField()
    human_cost_per_conversation = serializers.DecimalField(max_digits=10, decimal_places=2)
    ai_cost_per_conversation = serializers.DecimalField(
        max_digits=10,
        decimal_places=4,
        help_text="Used for conversations that did not report their own ai_cost.",
    )
    human_only_cost = _money("conversations × human cost per conversation")
    actual_cost = _money("AI cost of every conversation + escalated × human cost")
    savings = _money("human_only_cost - actual_cost")


class AnalyticsApi(APIView):
    """Parse the query, read, answer `{"window", "filters", **answer(query)}`."""

    permission_classes = [CanRead]
    throttle_scope = "read"
    query_serializer: ClassVar[type[serializers.Serializer]] = AnalyticsQuerySerializer
    # One output serializer per view, shared by its requests: building one per request
    # deep-copies its declared fields (docs/benchmarks.md, "Shared output serializers").
    output: ClassVar[serializers.Serializer]

    def get(self, request: Request) -> Response:
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period: Period = query.validated_data["period"]
        body = {
            "window": _window(period),
            "filters": dataclasses.asdict(query.validated_data["filters"]),
            **self.answer(**query.validated_data),
        }
        return Response(self.output.to_representation(body))

    def answer(self, *, period, filters, **query: Any) -> dict[str, Any]:
        raise NotImplementedError


def _output(component_name: str, fields: dict[str, serializers.Field]) -> serializers.Serializer:
    return tables.named_serializer(
        component_name, {"window": WindowSerializer(), "filters": FiltersSerializer(), **fields}
    )()


_ERRORS = {400: None, 401: None, 403: None}
_PREVIOUS = tables.named_serializer(
    "PreviousSummary", {"window": WindowSerializer(), **tables.summary_fields(), "cost": CostSerializer()}
)
_SUMMARY = _output(
    "AnalyticsSummary",
    {
        **tables.summary_fields(),
        "cost": CostSerializer(),
        # With compare=previous only.
        "previous": _PREVIOUS(
            required=False, help_text="With compare=previous: the summary of the period just before."
        ),
        "changes": tables.changes_serializer()(
            required=False,
            help_text="With compare=previous: this period against the previous one, keyed by the "
            "figure's path in the summary.",
        ),
    },
)
_TOPICS = _output(
    "AnalyticsTopics",
    {
        "topics": tables.row_serializer(
            "TopicStats", tables.TOPIC_METRICS, Answer.TOPICS, before={"topic": serializers.CharField()}
        )(many=True)
    },
)
_TIMESERIES = _output(
    "AnalyticsTimeseries",
    {
        "granularity": serializers.CharField(),
        "time_zone": serializers.CharField(),
        "buckets": tables.row_serializer(
            "Bucket",
            tables.SERIES_METRICS,
            Answer.SERIES,
            before={
                "start": serializers.DateTimeField(help_text="Bucket start, in the requested time zone.")
            },
        )(many=True),
    },
)


@extend_schema_view(
    get=extend_schema(
        operation_id="analytics_summary",
        summary="Summary of a window: the tutorial's keys plus CSAT, response time and cost detail",
        parameters=[SummaryQuerySerializer],
        responses={200: _SUMMARY, **_ERRORS},
    )
)
class AnalyticsSummaryApi(AnalyticsApi):
    output = _SUMMARY
    query_serializer = SummaryQuerySerializer

    def answer(self, *, period, filters, compare=None, **query):
        if compare != "previous":
            return _summary_body(selectors.summary(period=period, filters=filters))
        comparison = selectors.compare_with_previous(period=period, filters=filters)
        return {
            **_summary_body(comparison.b),
            "previous": {"window": _window(comparison.a.period), **_summary_body(comparison.a)},
            "changes": comparison.changes,
        }


def _window(period: Period) -> dict[str, Any]:
    return {"start": period.start, "end": period.end, "start_inclusive": period.include_start}


def _summary_body(result: selectors.Summary) -> dict[str, Any]:
    return {**tables.summary_body(result), "cost": dataclasses.asdict(result.cost)}


@extend_schema_view(
    get=extend_schema(
        operation_id="analytics_topics",
        summary="Every topic in the window with its conversations, AI resolution, CSAT and escalations",
        parameters=[AnalyticsQuerySerializer],
        responses={200: _TOPICS, **_ERRORS},
    )
)
class AnalyticsTopicsApi(AnalyticsApi):
    output = _TOPICS

    def answer(self, *, period, filters, **query):
        rows = selectors.topic_breakdown(period=period, filters=filters)
        return {
            "topics": [
                {"topic": row.topic, **tables.row_body(row, tables.TOPIC_METRICS, Answer.TOPICS)}
                for row in rows
            ]
        }


@extend_schema_view(
    get=extend_schema(
        operation_id="analytics_timeseries",
        summary="Per-hour, -day or -week buckets over the window, empty buckets included",
        parameters=[TimeseriesQuerySerializer],
        responses={200: _TIMESERIES, **_ERRORS},
    )
)
class AnalyticsTimeseriesApi(AnalyticsApi):
    query_serializer = TimeseriesQuerySerializer
    output = _TIMESERIES

    def answer(self, *, period, filters, granularity, tz, **query):
        buckets = selectors.timeseries(period=period, filters=filters, granularity=granularity, tz=tz)
        return {
            "granularity": granularity,
            "time_zone": str(tz),
            "buckets": [
                # isoformat keeps the bucket's own time zone (DRF would convert to UTC).
                {
                    "start": bucket.start.isoformat(),
                    **tables.row_body(bucket, tables.SERIES_METRICS, Answer.SERIES),
                }
                for bucket in buckets
            ],
        }


_ARM = tables.named_serializer(
    "ArmSummary",
    {
        "window": WindowSerializer(),
        "filters": FiltersSerializer(),
        **tables.summary_fields(),
        "cost": CostSerializer(),
    },
)
_TOPIC_ROW = tables.row_serializer("ArmTopic", tables.TOPIC_METRICS, Answer.TOPICS)
# The layout of a comparison of two arms (`comparison_body`): the compare API's answer, and
# an annotation's impact (annotation_apis) beside the annotation.
COMPARISON_FIELDS: dict[str, serializers.Field] = {
    "filters": FiltersSerializer(),
    "a": _ARM(),
    "b": _ARM(),
    "changes": tables.changes_serializer()(
        help_text="b against a, keyed by the figure's path in the summary."
    ),
    "topics": tables.named_serializer(
        "TopicComparison",
        {
            "topic": serializers.CharField(),
            "a": _TOPIC_ROW(allow_null=True, help_text="Null when the topic has no conversation in arm a."),
            "b": _TOPIC_ROW(allow_null=True, help_text="Null when the topic has no conversation in arm b."),
            "changes": tables.named_serializer(
                "TopicChanges", tables.topic_change_fields(), base=tables.PathKeyed
            )(),
        },
    )(many=True),
    "sample_size_per_arm": tables.named_serializer(
        "SampleSizePerArm",
        {
            str(points): serializers.IntegerField(
                allow_null=True,
                help_text=f"Conversations per arm to detect a {points}-point change of the AI "
                "resolution rate from arm a's, at 80% power and α = 0.05 (null without data in a).",
            )
            for points in selectors.SAMPLE_SIZE_CHANGES
        },
        base=tables.PathKeyed,
    )(),
}
_COMPARE = tables.named_serializer("AnalyticsCompare", COMPARISON_FIELDS)()


@extend_schema_view(
    get=extend_schema(
        operation_id="analytics_compare",
        summary="Two bot versions, channels or windows side by side, with each figure's change and its test",
        parameters=[CompareQuerySerializer],
        responses={200: _COMPARE, **_ERRORS},
    )
)
class AnalyticsCompareApi(AnalyticsApi):
    """Arm a against arm b: b − a for every rate and mean, with its 95% interval and p-value,
    per topic too (adjusted across the topics), and the sample size a 2- and 5-point change of
    the AI resolution rate would need."""

    query_serializer = CompareQuerySerializer

    def get(self, request: Request) -> Response:
        query = self.query_serializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        a, b = query.validated_data["arms"]
        comparison = selectors.compare(a=a, b=b)
        body = comparison_body(comparison, filters=query.validated_data["filters"])
        return Response(_COMPARE.to_representation(body))


def comparison_body(comparison: selectors.Comparison, *, filters: Filters) -> dict[str, Any]:
    """Two arms of `selectors.compare` as COMPARISON_FIELDS lay them out."""
    return {
        "filters": dataclasses.asdict(filters),
        "a": _arm_body(comparison.a),
        "b": _arm_body(comparison.b),
        "changes": comparison.changes,
        "topics": [
            {
                "topic": topic.topic,
                "a": _topic_body(topic.a),
                "b": _topic_body(topic.b),
                "changes": topic.changes,
            }
            for topic in comparison.topics
        ],
        "sample_size_per_arm": comparison.sample_size_per_arm,
    }


def _arm_body(summary: selectors.Summary) -> dict[str, Any]:
    return {
        "window": _window(summary.period),
        "filters": dataclasses.asdict(summary.filters),
        **_summary_body(summary),
    }


def _topic_body(topic: selectors.TopicStats | None) -> dict[str, Any] | None:
    return None if topic is None else tables.row_body(topic, tables.TOPIC_METRICS, Answer.TOPICS)
