"""REST API views: parse the request once, call one service or selector, render."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import ingest_rules, selectors, services
from conversations.auth import CanIngest, CanRead
from conversations.metrics import Totals
from conversations.models import SESSION_ID_MAX_LENGTH, Conversation
from conversations.serializers import (
    AnalyticsQuerySerializer,
    ConversationOutputSerializer,
    StrictIntegerField,
    TimeseriesQuerySerializer,
)

MAX_BATCH = 1_000


def _stored_conversation(session_id: str) -> Conversation:
    return Conversation.objects.with_topic_names().get(session_id=session_id)


@extend_schema_serializer(component_name="IngestBatchResult")
class BatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


# One output serializer for every reply: building a serializer deep-copies its declared fields
# (~0.4 ms, 5% of a single POST, measured), while `to_representation` keeps no state between
# calls (the fields are bound once), so threads can share it.
_CONVERSATION_OUTPUT = ConversationOutputSerializer()


def _error_detail(errors: list[dict]) -> dict:
    """The ingest rules' errors as DRF's nested detail, which conversations/errors.py flattens
    back into the same list for the 400 (an `index` key level only for an array)."""
    detail: dict = {}
    for error in errors:
        item = detail.setdefault(error["index"], {}) if "index" in error else detail
        item.setdefault(error["field"] or "non_field_errors", []).append(error["message"])
    return detail


class ConversationIngestApi(APIView):
    permission_classes = [CanIngest]
    throttle_scope = "ingest"  # conversations.throttling

    @extend_schema(
        operation_id="conversations_ingest",
        summary="Store one finished conversation, or an array of up to 1,000",
        description=(
            "Idempotent by `session_id`: posting a session again replaces it. A single object answers "
            "201 (created) or 200 (replaced) with the stored conversation; an array answers 200 with "
            "counts, the last item winning when a session id repeats. If any item is invalid, nothing "
            "is stored and the 400 names each bad item's index and field."
        ),
        request=ingest_rules.ConversationInput,
        responses={
            200: PolymorphicProxySerializer(
                component_name="IngestResult",
                serializers=[ConversationOutputSerializer, BatchResultSerializer],
                resource_type_field_name=None,
            ),
            201: ConversationOutputSerializer,
            400: None,
            401: None,
            403: None,
            415: None,
        },
        examples=[
            OpenApiExample(
                "Tutorial tracker line",
                value={
                    "session_id": "abc-123",
                    "turns": 4,
                    "resolved_by_ai": True,
                    "topics": ["billing", "refund"],
                    "response_times": [820, 1140],
                    "csat": 5,
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if isinstance(data, list):
            if len(data) > MAX_BATCH:
                raise exceptions.ValidationError(
                    {
                        "non_field_errors": [
                            f"At most {MAX_BATCH:,} conversations per request; got {len(data):,}."
                        ]
                    }
                )
            many = True
        elif isinstance(data, dict):
            if not data:
                raise exceptions.ParseError(
                    "Empty request body: send a conversation object or an array of them."
                )
            many = False
        else:
            raise exceptions.ParseError("Expected a JSON object or an array of objects.")

        try:
            items = ingest_rules.conversations_from_body(data, received_at=timezone.now())
        except ingest_rules.IngestInvalid as invalid:
            raise exceptions.ValidationError(_error_detail(invalid.errors)) from None
        result = services.conversations_ingest(items=items, details=not many)

        if many:
            return Response({"created": result.created, "updated": result.updated})
        session_id = items[0].session_id
        return Response(
            _CONVERSATION_OUTPUT.to_representation(result.conversation(session_id)),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class ConversationCsatApi(APIView):
    permission_classes = [CanIngest]
    throttle_scope = "ingest"

    @extend_schema_serializer(component_name="CsatInput")
    class InputSerializer(serializers.Serializer):
        csat = StrictIntegerField(
            min_value=1,
            max_value=5,
            allow_null=True,
            help_text="1-5, or null to clear.",
        )

    @extend_schema(
        operation_id="conversations_set_csat",
        summary="Set the CSAT of a stored conversation (surveys arrive later)",
        request=InputSerializer,
        responses={
            200: ConversationOutputSerializer,
            400: None,
            401: None,
            403: None,
            404: None,
        },
    )
    def post(self, request: Request, session_id: str) -> Response:
        if "\x00" in session_id or len(session_id) > SESSION_ID_MAX_LENGTH:
            # Not a session id we could ever have stored (PostgreSQL text cannot hold NUL).
            raise exceptions.NotFound("No conversation with that session_id.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.conversation_set_csat(session_id=session_id, csat=serializer.validated_data["csat"])
        except Conversation.DoesNotExist:
            raise exceptions.NotFound(f"No conversation with session_id {session_id!r}.") from None
        return Response(_CONVERSATION_OUTPUT.to_representation(_stored_conversation(session_id)))


# --- Analytics ---------------------------------------------------------------------------


def _window(period: selectors.Period) -> dict:
    return {
        "start": period.start,
        "end": period.end,
        "start_inclusive": period.include_start,
    }


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


def _rate(help_text: str) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=6, decimal_places=1, allow_null=True, help_text=help_text)


def _money(help_text: str = "") -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=2, help_text=help_text)


class CostSerializer(serializers.Serializer):
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


class CsatSerializer(serializers.Serializer):
    responses = serializers.IntegerField(help_text="Conversations with a CSAT score.")
    response_rate = _rate("100 × responses / conversations.")
    average = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    score = _rate("CSAT score: 100 × ratings of 4 or 5 / all ratings.")
    distribution = inline_serializer(
        "CsatDistribution",
        {str(score): serializers.IntegerField() for score in range(1, 6)},
    )
    average_ai_resolved = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    average_escalated = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)


class ResponseTimeSerializer(serializers.Serializer):
    mean_ms = serializers.DecimalField(
        max_digits=14,
        decimal_places=1,
        allow_null=True,
        help_text="Mean of the conversations' averages.",
    )
    p95_ms = serializers.DecimalField(
        max_digits=14,
        decimal_places=1,
        allow_null=True,
        help_text="95th percentile of the conversations' averages.",
    )


def _csat_block(totals: Totals) -> dict:
    return {
        "responses": totals.csat_responses,
        "response_rate": totals.csat_response_rate,
        "average": totals.avg_csat,
        "score": totals.csat_score,
        "distribution": {str(score): count for score, count in totals.csat_distribution.items()},
        "average_ai_resolved": totals.avg_csat_ai_resolved,
        "average_escalated": totals.avg_csat_escalated,
    }


def _cost_block(cost) -> dict:
    return {
        "currency": cost.currency,
        "human_cost_per_conversation": cost.human_cost_per_conversation,
        "ai_cost_per_conversation": cost.ai_cost_per_conversation,
        "human_only_cost": cost.human_only_cost,
        "actual_cost": cost.actual_cost,
        "savings": cost.savings,
    }


class AnalyticsSummaryApi(APIView):
    permission_classes = [CanRead]
    throttle_scope = "read"

    @extend_schema_serializer(component_name="AnalyticsSummary")
    class OutputSerializer(serializers.Serializer):
        window = WindowSerializer()
        filters = FiltersSerializer()
        # The tutorial's keys, same names and meaning (avg_csat is null, not 0, without scores).
        total_conversations = serializers.IntegerField()
        ai_resolution_rate = _rate(
            "The primary metric: 100 × AI-resolved / conversations; null without data."
        )
        avg_csat = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
        top_topics = serializers.ListField(
            child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
            help_text="Up to 10 [topic, conversations] pairs, most first, ties by name.",
        )
        avg_turns = serializers.DecimalField(max_digits=8, decimal_places=1, allow_null=True)
        estimated_savings = _money("Same as cost.savings.")
        # Added.
        ai_resolved_conversations = serializers.IntegerField()
        escalated_conversations = serializers.IntegerField(help_text="Conversations a human took over.")
        csat = CsatSerializer()
        response_time = ResponseTimeSerializer()
        cost = CostSerializer()

    @extend_schema(
        operation_id="analytics_summary",
        summary="Summary of a window: the tutorial's keys plus CSAT, response time and cost detail",
        parameters=[AnalyticsQuerySerializer],
        responses={200: OutputSerializer, 400: None, 401: None, 403: None},
    )
    def get(self, request: Request) -> Response:
        query = AnalyticsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        result = selectors.summary(
            period=query.validated_data["period"],
            filters=query.validated_data["filters"],
        )
        totals = result.totals
        data = {
            "window": _window(result.period),
            "filters": vars(result.filters),
            "total_conversations": totals.conversations,
            "ai_resolution_rate": totals.ai_resolution_rate,
            "avg_csat": totals.avg_csat,
            "top_topics": [[name, count] for name, count in result.top_topics],
            "avg_turns": totals.avg_turns,
            "estimated_savings": result.cost.savings,
            "ai_resolved_conversations": totals.ai_resolved,
            "escalated_conversations": totals.escalated,
            "csat": _csat_block(totals),
            "response_time": {
                "mean_ms": totals.avg_response_ms,
                "p95_ms": totals.p95_response_ms,
            },
            "cost": _cost_block(result.cost),
        }
        return Response(_SUMMARY_OUTPUT.to_representation(data))


class TopicStatsSerializer(serializers.Serializer):
    topic = serializers.CharField()
    conversations = serializers.IntegerField()
    share = _rate("100 × this topic's conversations / all conversations in the window.")
    ai_resolved = serializers.IntegerField()
    escalations = serializers.IntegerField()
    ai_resolution_rate = _rate("100 × AI-resolved / conversations with this topic.")
    avg_csat = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    csat_responses = serializers.IntegerField()
    escalation_cost = _money("escalations × human cost per conversation: what the knowledge gap costs.")


class AnalyticsTopicsApi(APIView):
    permission_classes = [CanRead]
    throttle_scope = "read"

    @extend_schema_serializer(component_name="AnalyticsTopics")
    class OutputSerializer(serializers.Serializer):
        window = WindowSerializer()
        filters = FiltersSerializer()
        topics = TopicStatsSerializer(many=True)

    @extend_schema(
        operation_id="analytics_topics",
        summary="Every topic in the window with its conversations, AI resolution, CSAT and escalations",
        parameters=[AnalyticsQuerySerializer],
        responses={200: OutputSerializer, 400: None, 401: None, 403: None},
    )
    def get(self, request: Request) -> Response:
        query = AnalyticsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period, filters = (
            query.validated_data["period"],
            query.validated_data["filters"],
        )
        rows = selectors.topic_breakdown(period=period, filters=filters)
        data = {
            "window": _window(period),
            "filters": vars(filters),
            "topics": [
                {
                    "topic": row.topic,
                    "conversations": row.totals.conversations,
                    "share": row.share,
                    "ai_resolved": row.totals.ai_resolved,
                    "escalations": row.totals.escalated,
                    "ai_resolution_rate": row.totals.ai_resolution_rate,
                    "avg_csat": row.totals.avg_csat,
                    "csat_responses": row.totals.csat_responses,
                    "escalation_cost": row.escalation_cost,
                }
                for row in rows
            ],
        }
        return Response(_TOPICS_OUTPUT.to_representation(data))


class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Bucket start, in the requested time zone.")
    conversations = serializers.IntegerField()
    ai_resolved = serializers.IntegerField()
    escalated = serializers.IntegerField()
    ai_resolution_rate = _rate("null for an empty bucket.")
    csat_responses = serializers.IntegerField()
    avg_csat = serializers.DecimalField(max_digits=3, decimal_places=2, allow_null=True)
    csat_score = _rate("100 × ratings of 4 or 5 / all ratings.")
    avg_turns = serializers.DecimalField(max_digits=8, decimal_places=1, allow_null=True)
    p95_response_ms = serializers.DecimalField(max_digits=14, decimal_places=1, allow_null=True)
    savings = _money()
    cumulative_savings = _money("Savings of this bucket and all before it in the window.")


class AnalyticsTimeseriesApi(APIView):
    permission_classes = [CanRead]
    throttle_scope = "read"

    @extend_schema_serializer(component_name="AnalyticsTimeseries")
    class OutputSerializer(serializers.Serializer):
        window = WindowSerializer()
        filters = FiltersSerializer()
        granularity = serializers.CharField()
        time_zone = serializers.CharField()
        buckets = BucketSerializer(many=True)

    @extend_schema(
        operation_id="analytics_timeseries",
        summary="Per-hour, -day or -week buckets over the window, empty buckets included",
        parameters=[TimeseriesQuerySerializer],
        responses={200: OutputSerializer, 400: None, 401: None, 403: None},
    )
    def get(self, request: Request) -> Response:
        query = TimeseriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        period, filters = (
            query.validated_data["period"],
            query.validated_data["filters"],
        )
        granularity, tz = (
            query.validated_data["granularity"],
            query.validated_data["tz"],
        )
        buckets = selectors.timeseries(period=period, filters=filters, granularity=granularity, tz=tz)
        data = {
            "window": _window(period),
            "filters": vars(filters),
            "granularity": granularity,
            "time_zone": str(tz),
            "buckets": [
                {
                    # isoformat keeps the bucket's own time zone (DRF would convert to UTC).
                    "start": bucket.start.isoformat(),
                    "conversations": bucket.totals.conversations,
                    "ai_resolved": bucket.totals.ai_resolved,
                    "escalated": bucket.totals.escalated,
                    "ai_resolution_rate": bucket.totals.ai_resolution_rate,
                    "csat_responses": bucket.totals.csat_responses,
                    "avg_csat": bucket.totals.avg_csat,
                    "csat_score": bucket.totals.csat_score,
                    "avg_turns": bucket.totals.avg_turns,
                    "p95_response_ms": bucket.totals.p95_response_ms,
                    "savings": bucket.cost.savings,
                    "cumulative_savings": bucket.cumulative_savings,
                }
                for bucket in buckets
            ],
        }
        return Response(_TIMESERIES_OUTPUT.to_representation(data))


# One output serializer per view, shared by its requests, as for the ingest reply
# (_CONVERSATION_OUTPUT): building one per request deep-copied its declared fields, nested
# serializers included, a third of a summary's Python time (cProfile, CPU clock).
_SUMMARY_OUTPUT = AnalyticsSummaryApi.OutputSerializer()
_TOPICS_OUTPUT = AnalyticsTopicsApi.OutputSerializer()
_TIMESERIES_OUTPUT = AnalyticsTimeseriesApi.OutputSerializer()
