"""The ingestion API: parse the request once, call one service, answer (analytics: analytics_apis)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import errors, ingest_rules, services
from conversations.auth import CanIngest
from conversations.models import SESSION_ID_MAX_LENGTH, Conversation
from conversations.serializers import (
    ConversationOutputSerializer,
    StrictIntegerField,
)

MAX_BATCH = 1_000


def _stored_conversation(session_id: str) -> Conversation:
    return Conversation.objects.with_topic_names().get(session_id=session_id)


@extend_schema_serializer(component_name="IngestBatchResult")
class BatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


# One output serializer for every reply: building one deep-copies its declared fields, while
# `to_representation` keeps no state between calls, so threads can share it
# (docs/benchmarks.md, "Shared output serializers").
_CONVERSATION_OUTPUT = ConversationOutputSerializer()


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
            raise exceptions.ValidationError(errors.rules_detail(invalid.errors)) from None
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
