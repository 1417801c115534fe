"""The alert rules API (issue 18, first part): `GET/POST /api/alert-rules/`,
`GET/PUT/PATCH/DELETE /api/alert-rules/<id>/`, for API keys with the `all` scope. Parse once,
call one service, answer. The evaluation: conversations.alert_evaluation."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations import alert_rules, alerts
from conversations.auth import CanManage
from conversations.models import LABEL_MAX_LENGTH, REASON_MAX_LENGTH, TOPIC_MAX_LENGTH, AlertRule
from conversations.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictDecimalField,
    StrictIntegerField,
)

FILTERS = ("channel", "bot_version", "topic", "escalation_reason")
# Fields of an answer a client may send back in a PUT as it got them: ignored, not refused.
ANSWER_ONLY_FIELDS = frozenset({"id", "state", "state_changed_at", "webhook_secret"})
# Rules are managed by hand, a few per team: the list is not paginated but capped.
LIST_LIMIT = 1000


def _number(**kwargs) -> StrictDecimalField:
    """A rule's threshold or minimum change: a JSON number, at most 2 decimals."""
    return StrictDecimalField(
        max_digits=alert_rules.NUMBER_MAX_DIGITS, decimal_places=alert_rules.NUMBER_DECIMAL_PLACES, **kwargs
    )


class _StrictKeysMixin:
    """Unknown keys are refused, naming them: a misspelt `treshold` must not pass silently."""

    allowed_extra: frozenset[str] = frozenset()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields) - self.allowed_extra)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def _duration(*, most: int, least: int = 0, default: int | None = None, help_text: str):
    kwargs: dict[str, Any] = {"min_value": least, "max_value": most, "help_text": help_text}
    if default is not None:
        kwargs["default"] = default
    return StrictIntegerField(**kwargs)


@extend_schema_serializer(component_name="AlertRuleFilters")
class FiltersSerializer(_StrictKeysMixin, serializers.Serializer):
    channel = StrictCharField(max_length=LABEL_MAX_LENGTH, required=False, allow_null=True, allow_blank=True)
    bot_version = StrictCharField(
        max_length=LABEL_MAX_LENGTH, required=False, allow_null=True, allow_blank=True
    )
    topic = StrictCharField(
        max_length=TOPIC_MAX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Normalized like a topic filter.",
    )
    escalation_reason = StrictCharField(
        max_length=REASON_MAX_LENGTH,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Normalized like a topic filter.",
    )


@extend_schema_serializer(component_name="AlertRuleInput")
class AlertRuleInputSerializer(_StrictKeysMixin, serializers.Serializer):
    """A rule as a client sends it (POST, PUT; PATCH: any part of it)."""

    allowed_extra = ANSWER_ONLY_FIELDS

    name = StrictCharField(max_length=alert_rules.NAME_MAX_LENGTH)
    metric = serializers.ChoiceField(
        choices=list(alert_rules.ALERT_METRICS), help_text="The figure's path in the summary answer."
    )
    condition = serializers.ChoiceField(choices=alert_rules.Condition.choices)
    threshold = _number(
        required=False,
        allow_null=True,
        help_text="below/above only, compared strictly: 0 to 100 for a rate, 1 to 5 for avg_csat.",
    )
    min_change = _number(
        required=False,
        allow_null=True,
        help_text="drop/rise only, more than 0: points for rates, the unit for means, percent for counts.",
    )
    window_minutes = _duration(
        least=alert_rules.WINDOW_MINUTES[0],
        most=alert_rules.WINDOW_MINUTES[1],
        help_text="The evaluation window: 15 minutes to 7 days.",
    )
    min_sample_size = _duration(
        most=alert_rules.MAX_MIN_SAMPLE_SIZE,
        default=alert_rules.DEFAULT_MIN_SAMPLE_SIZE,
        help_text="Under this many conversations in the window the rule never fires.",
    )
    for_minutes = _duration(
        most=alert_rules.MAX_FOR_MINUTES,
        default=0,
        help_text="How long the condition must hold before the rule fires.",
    )
    renotify_minutes = _duration(
        most=alert_rules.MAX_RENOTIFY_MINUTES,
        default=0,
        help_text="Remind every N minutes while firing; 0: never.",
    )
    delay_minutes = _duration(
        most=alert_rules.MAX_DELAY_MINUTES,
        default=0,
        help_text="The window ends this long before now, for late data.",
    )
    filters = FiltersSerializer(required=False)
    emails = serializers.ListField(
        child=serializers.EmailField(max_length=alert_rules.EMAIL_MAX_LENGTH),
        max_length=alert_rules.MAX_EMAILS,
        default=list,
    )
    webhooks = serializers.ListField(
        # A CharField with the one validator: URLField's own would report a bad URL twice.
        child=StrictCharField(
            max_length=alert_rules.URL_MAX_LENGTH,
            validators=[URLValidator(schemes=alert_rules.WEBHOOK_SCHEMES)],
            help_text="http or https.",
        ),
        max_length=alert_rules.MAX_WEBHOOKS,
        default=list,
    )
    enabled = StrictBooleanField(default=True)

    def _no_duplicates(self, values: list[str]) -> list[str]:
        seen = set()
        for value in values:
            if value.lower() in seen:
                raise serializers.ValidationError(f"{value} is given twice.")
            seen.add(value.lower())
        return values

    def validate_emails(self, emails: list[str]) -> list[str]:
        return self._no_duplicates(emails)

    def validate_webhooks(self, webhooks: list[str]) -> list[str]:
        return self._no_duplicates(webhooks)

    def validate(self, attrs: dict) -> dict:
        """The fields as the services take them (the filters flat), checked together with what
        the rule holds already (a PATCH)."""
        instance: AlertRule | None = self.instance
        values = {name: value for name, value in attrs.items() if name != "filters"}
        given_filters = attrs.get("filters", {})
        for name in FILTERS:
            if name in given_filters or not self.partial:
                values[name] = given_filters.get(name) or ""
        if not self.partial:
            values.setdefault("threshold", None)
            values.setdefault("min_change", None)

        def current(name: str) -> Any:
            return values[name] if name in values else getattr(instance, name)

        errors = alert_rules.condition_errors(
            metric=current("metric"),
            condition=current("condition"),
            threshold=current("threshold"),
            min_change=current("min_change"),
        )
        if errors:
            raise serializers.ValidationError({name: [message] for name, message in errors.items()})
        return values


@extend_schema_serializer(component_name="AlertRuleFiltersAnswer")
class FiltersAnswerSerializer(serializers.Serializer):
    """A rule's filters; null: every value."""

    channel = serializers.CharField(allow_null=True)
    bot_version = serializers.CharField(allow_null=True)
    topic = serializers.CharField(allow_null=True)
    escalation_reason = serializers.CharField(allow_null=True)


@extend_schema_serializer(component_name="AlertRule")
class AlertRuleOutputSerializer(serializers.Serializer):
    """A rule as stored; its unset filters are null."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    metric = serializers.ChoiceField(choices=list(alert_rules.ALERT_METRICS))
    condition = serializers.ChoiceField(choices=alert_rules.Condition.choices)
    threshold = _number(allow_null=True)
    min_change = _number(allow_null=True)
    window_minutes = serializers.IntegerField()
    min_sample_size = serializers.IntegerField()
    for_minutes = serializers.IntegerField()
    renotify_minutes = serializers.IntegerField()
    delay_minutes = serializers.IntegerField()
    filters = serializers.SerializerMethodField()
    emails = serializers.ListField(child=serializers.CharField())
    webhooks = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    state = serializers.ChoiceField(
        choices=alert_rules.AlertState.choices,
        help_text="ok or firing: what the last evaluation (every minute) found.",
    )
    state_changed_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(FiltersAnswerSerializer)
    def get_filters(self, rule: AlertRule) -> dict[str, str | None]:
        return {name: getattr(rule, name) or None for name in FILTERS}


@extend_schema_serializer(component_name="AlertRuleCreated")
class AlertRuleCreatedSerializer(AlertRuleOutputSerializer):
    webhook_secret = serializers.CharField(
        required=False,
        help_text="Only in the answer that made it (the rule's first webhooks): the HMAC-SHA256 key "
        "its webhook calls will be signed with. Never shown again.",
    )


# Shared by every request: `to_representation` keeps no state between calls. Never the
# stored webhook secret: only `_answer` adds a secret, the one a write has just made.
_RULE = AlertRuleOutputSerializer()
_RULES = AlertRuleOutputSerializer(many=True)


def _answer(saved: alerts.AlertRuleSaved) -> dict:
    body = _RULE.to_representation(saved.rule)
    if saved.new_webhook_secret is not None:
        body["webhook_secret"] = saved.new_webhook_secret
    return body


def _saved(write, **kwargs) -> alerts.AlertRuleSaved:
    """The service's own validation (the model's) as a 400: a safety net, since the input was
    checked by the same rules already."""
    try:
        return write(**kwargs)
    except DjangoValidationError as invalid:
        raise exceptions.ValidationError(invalid.message_dict) from None


def _rule(rule_id: int) -> AlertRule:
    try:
        return AlertRule.objects.get(pk=rule_id)
    except AlertRule.DoesNotExist:
        raise exceptions.NotFound(f"No alert rule with id {rule_id}.") from None


EXAMPLE = {
    "name": "AI resolution fell",
    "metric": "ai_resolution_rate",
    "condition": "drop",
    "min_change": 5,
    "window_minutes": 1440,
    "filters": {"channel": "web"},
    "emails": ["support-leads@example.com"],
    "webhooks": ["https://hooks.example.com/alerts"],
}
_ERRORS = {400: None, 401: None, 403: None}


class _AlertRuleApi(APIView):
    permission_classes = [CanManage]
    # Rules are managed by hand: the read limit (per key) is plenty for every method.
    throttle_scope = "read"

    def _body(self, request: Request) -> dict:
        if not isinstance(request.data, dict):
            raise exceptions.ParseError("Expected a JSON object.")
        return request.data


class AlertRuleListCreateApi(_AlertRuleApi):
    @extend_schema(
        operation_id="alert_rules_list",
        summary="Every alert rule, by id",
        description=f"At most {LIST_LIMIT:,}. Needs an API key with the all scope.",
        responses={200: AlertRuleOutputSerializer(many=True), 401: None, 403: None},
    )
    def get(self, request: Request) -> Response:
        return Response(_RULES.to_representation(AlertRule.objects.order_by("id")[:LIST_LIMIT]))

    @extend_schema(
        operation_id="alert_rules_create",
        summary="Add an alert rule",
        description=(
            "Answers 201 with the stored rule; with webhooks, also its `webhook_secret`, shown this "
            "once. Rules are evaluated every minute and notify their emails and webhooks when they "
            "start firing and when they resolve. Needs an API key with the all scope."
        ),
        request=AlertRuleInputSerializer,
        responses={201: AlertRuleCreatedSerializer, **_ERRORS, 415: None},
        examples=[OpenApiExample("A drop of the AI resolution rate", value=EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        given = AlertRuleInputSerializer(data=self._body(request))
        given.is_valid(raise_exception=True)
        saved = _saved(alerts.alert_rule_create, values=given.validated_data)
        return Response(_answer(saved), status=status.HTTP_201_CREATED)


class AlertRuleDetailApi(_AlertRuleApi):
    @extend_schema(
        operation_id="alert_rules_retrieve",
        summary="One alert rule",
        responses={200: AlertRuleOutputSerializer, 401: None, 403: None, 404: None},
    )
    def get(self, request: Request, rule_id: int) -> Response:
        return Response(_RULE.to_representation(_rule(rule_id)))

    def _update(self, request: Request, rule_id: int, *, partial: bool) -> Response:
        rule = _rule(rule_id)
        given = AlertRuleInputSerializer(rule, data=self._body(request), partial=partial)
        given.is_valid(raise_exception=True)
        try:
            saved = _saved(alerts.alert_rule_update, rule_id=rule_id, values=given.validated_data)
        except AlertRule.DoesNotExist:  # deleted meanwhile
            raise exceptions.NotFound(f"No alert rule with id {rule_id}.") from None
        return Response(_answer(saved))

    _UPDATE_DESCRIPTION = (
        "A change resets the rule's state to ok, without a notification. The answer carries a "
        "`webhook_secret` only when this request gave the rule its first webhooks. Needs an API key "
        "with the all scope."
    )

    @extend_schema(
        operation_id="alert_rules_update",
        summary="Replace an alert rule",
        description="Fields left out take their defaults. " + _UPDATE_DESCRIPTION,
        request=AlertRuleInputSerializer,
        responses={200: AlertRuleCreatedSerializer, **_ERRORS, 404: None, 415: None},
    )
    def put(self, request: Request, rule_id: int) -> Response:
        return self._update(request, rule_id, partial=False)

    @extend_schema(
        operation_id="alert_rules_partial_update",
        summary="Change some fields of an alert rule",
        description="Fields left out keep their values. " + _UPDATE_DESCRIPTION,
        request=AlertRuleInputSerializer(partial=True),
        responses={200: AlertRuleCreatedSerializer, **_ERRORS, 404: None, 415: None},
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        return self._update(request, rule_id, partial=True)

    @extend_schema(
        operation_id="alert_rules_destroy",
        summary="Delete an alert rule",
        responses={204: None, 401: None, 403: None, 404: None},
    )
    def delete(self, request: Request, rule_id: int) -> Response:
        try:
            alerts.alert_rule_delete(rule_id=rule_id)
        except AlertRule.DoesNotExist:
            raise exceptions.NotFound(f"No alert rule with id {rule_id}.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)
