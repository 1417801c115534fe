"""The annotations API (issue 17): the release hook posts one, charts list a window's, and each
has its impact (the week before against the week after). Parse once, call one service or
selector, answer."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import annotation_rules, errors, services
from conversations.analytics import selectors, tables
from conversations.analytics_apis import COMPARISON_FIELDS, comparison_body
from conversations.auth import CanIngest, CanRead
from conversations.ingest_rules import IngestInvalid
from conversations.models import LABEL_MAX_LENGTH, Annotation, AnnotationKind
from conversations.serializers import UTCDateTimeField

# The list's window when none is given: the dashboard's longest preset range.
DEFAULT_LIST_WINDOW = timedelta(days=90)


@extend_schema_serializer(component_name="Annotation")
class AnnotationOutputSerializer(serializers.Serializer):
    """An annotation as stored; its unset channel, bot version and external id are null."""

    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    title = serializers.CharField()
    kind = serializers.ChoiceField(choices=AnnotationKind.choices)
    channel = serializers.SerializerMethodField(help_text="Null: every channel.")
    bot_version = serializers.SerializerMethodField(help_text="Null: every bot version.")
    external_id = serializers.SerializerMethodField(help_text="The sender's own id; null when none.")

    def get_channel(self, annotation: Annotation) -> str | None:
        return annotation.channel or None

    def get_bot_version(self, annotation: Annotation) -> str | None:
        return annotation.bot_version or None

    def get_external_id(self, annotation: Annotation) -> str | None:
        return annotation.external_id or None


# Shared by every request: `to_representation` keeps no state between calls
# (docs/benchmarks.md, "Shared output serializers").
_ANNOTATION = AnnotationOutputSerializer()
_ANNOTATIONS = AnnotationOutputSerializer(many=True)
_IMPACT = tables.named_serializer(
    "AnnotationImpact", {"annotation": AnnotationOutputSerializer(), **COMPARISON_FIELDS}
)()


class AnnotationListCreateApi(APIView):
    """POST: the bot's release process (ingest scope). GET: a window's annotations (read scope)."""

    @extend_schema_serializer(component_name="AnnotationListQuery")
    class ListQuerySerializer(serializers.Serializer):
        start = UTCDateTimeField(
            required=False, help_text="ISO 8601, inclusive; naive means UTC. Default: 90 days before end."
        )
        end = UTCDateTimeField(required=False, help_text="ISO 8601, exclusive. Default: now.")
        channel = serializers.CharField(
            max_length=LABEL_MAX_LENGTH,
            required=False,
            help_text="Only the annotations that apply to this channel: scoped to it or unscoped.",
        )
        bot_version = serializers.CharField(
            max_length=LABEL_MAX_LENGTH,
            required=False,
            help_text="Only the annotations that apply to this bot version: scoped to it or unscoped.",
        )

        def validate(self, attrs: dict) -> dict:
            end = attrs.get("end") or timezone.now()
            start = attrs.get("start") or end - DEFAULT_LIST_WINDOW
            if start >= end:
                if "end" in attrs:
                    raise serializers.ValidationError({"end": ["Must be after start."]})
                raise serializers.ValidationError({"start": ["Must be before end (default: now)."]})
            return {**attrs, "start": start, "end": end}

    def get_permissions(self):
        return [CanIngest()] if self.request.method == "POST" else [CanRead()]

    @property
    def throttle_scope(self) -> str:  # conversations.throttling
        return "ingest" if self.request.method == "POST" else "read"

    @extend_schema(
        operation_id="annotations_create",
        summary="Add an annotation: a release, a knowledge-base update, an incident",
        description=(
            "Answers 201 with the stored annotation. With an `external_id` already stored it stores "
            "nothing and answers 200 with the stored annotation as it is, so a retried release hook "
            "makes no duplicate. Needs the ingest scope."
        ),
        request=annotation_rules.AnnotationInput,
        responses={
            201: AnnotationOutputSerializer,
            200: AnnotationOutputSerializer,
            400: None,
            401: None,
            403: None,
            415: None,
        },
        examples=[
            OpenApiExample(
                "Release hook",
                value={
                    "timestamp": "2026-03-14T09:30:00Z",
                    "title": "Bot 2.5.0: new refund flow",
                    "kind": "release",
                    "bot_version": "2.5.0",
                    "external_id": "deploy-8812",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise exceptions.ParseError("Expected a JSON object.")
        try:
            item = annotation_rules.annotation_from_body(request.data, received_at=timezone.now())
        except IngestInvalid as invalid:
            raise exceptions.ValidationError(errors.rules_detail(invalid.errors)) from None
        annotation, created = services.annotation_create(annotation=item)
        return Response(
            _ANNOTATION.to_representation(annotation),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="annotations_list",
        summary="The annotations of a window, in time order",
        description=(
            f"`start` ≤ timestamp < `end`, ties by id; by default the last 90 days. At most "
            f"{selectors.ANNOTATIONS_LIMIT:,}: a window with more answers 400 (narrow it). Needs the "
            "read scope or a staff login."
        ),
        parameters=[ListQuerySerializer],
        responses={200: AnnotationOutputSerializer(many=True), 400: None, 401: None, 403: None},
    )
    def get(self, request: Request) -> Response:
        query = self.ListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        annotations = selectors.annotations_in(
            start=query.validated_data["start"],
            end=query.validated_data["end"],
            channel=query.validated_data.get("channel"),
            bot_version=query.validated_data.get("bot_version"),
            limit=selectors.ANNOTATIONS_LIMIT + 1,  # one more, to tell a full window from a cut one
        )
        if len(annotations) > selectors.ANNOTATIONS_LIMIT:
            raise exceptions.ValidationError(
                {
                    "start": [
                        f"More than {selectors.ANNOTATIONS_LIMIT:,} annotations in the window: narrow it."
                    ]
                }
            )
        return Response(_ANNOTATIONS.to_representation(annotations))


class NothingAfterYet(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "nothing_after_yet"


class AnnotationImpactApi(APIView):
    permission_classes = [CanRead]
    throttle_scope = "read"

    @extend_schema(
        operation_id="annotations_impact",
        summary="An annotation's impact: the 7 days before its moment against the 7 days after",
        description=(
            "Arm `a` is the 7 days before the moment, [t − 7 days, t); arm `b` the 7 days after it, "
            "[t, t + 7 days), cut at now (the moment itself belongs to after). Both cover all traffic, "
            "or the annotation's channel when it is scoped to one (never only its bot version). Laid "
            "out as `/api/analytics/compare/` answers, with the `annotation`. An annotation whose "
            "moment is not in the past yet answers 409: nothing after it to compare."
        ),
        responses={200: _IMPACT, 401: None, 403: None, 404: None, 409: None},
    )
    def get(self, request: Request, annotation_id: int) -> Response:
        try:
            annotation = Annotation.objects.get(pk=annotation_id)
        except Annotation.DoesNotExist:
            raise exceptions.NotFound(f"No annotation with id {annotation_id}.") from None
        now = timezone.now()
        try:
            comparison = selectors.annotation_impact(annotation=annotation, now=now)
        except selectors.NothingAfterYet:
            raise NothingAfterYet(
                f"The annotation's moment ({annotation.timestamp.isoformat()}) is not in the past yet: "
                "there is no traffic after it to compare."
            ) from None
        body = {
            "annotation": annotation,
            **comparison_body(comparison, filters=comparison.a.filters),
        }
        return Response(_IMPACT.to_representation(body))
