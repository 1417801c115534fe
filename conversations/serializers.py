"""Serializers shared by several API views (and, for the query, by the dashboard later)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from conversations.analytics.query import Filters, Granularity, Period
from conversations.models import LABEL_MAX_LENGTH, MAX_YEAR, MIN_YEAR, normalize_topic

MAX_HOURS = 87_600  # ten years
MAX_BUCKETS = 10_000


# --- Strict JSON scalars -------------------------------------------------------------
# DRF happily turns "yes", "1" and 1 into True, and "5" into 5. The bot speaks JSON, so
# we take JSON types only: a wrong type is a bug in the sender that should surface.


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be a JSON integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be a JSON boolean."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string: DRF's CharField would take 3 as "3"."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictDecimalField(serializers.DecimalField):
    """A JSON number (not a string, not a boolean), within the field's digits and places."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class UTCDateTimeField(serializers.DateTimeField):
    """ISO 8601; a naive time is UTC (the tutorial writes `datetime.utcnow().isoformat()`).

    Years outside 1900-9000 are refused: nothing real lies there, and date arithmetic
    near year 1 or 9999 (a previous period, a time-zone shift) would overflow.
    """

    default_error_messages = {"out_of_range": f"Must be between the years {MIN_YEAR} and {MAX_YEAR}."}

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def to_internal_value(self, value):
        if isinstance(value, datetime):  # only strings come from JSON or a query string
            self.fail("invalid", format="ISO 8601")
        try:
            parsed = super().to_internal_value(value)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 shifted to UTC
            self.fail("invalid", format="ISO 8601")
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            self.fail("out_of_range")
        return parsed


# --- Ingestion (the input: conversations/ingest_rules.py) ------------------------------


class ConversationOutputSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    timestamp = serializers.DateTimeField()
    turns = serializers.IntegerField()
    resolved_by_ai = serializers.BooleanField()
    topics = serializers.SerializerMethodField()
    avg_response_ms = serializers.FloatField(allow_null=True)
    response_count = serializers.IntegerField(allow_null=True)
    csat = serializers.IntegerField(allow_null=True)
    channel = serializers.CharField()
    bot_version = serializers.CharField()
    ai_cost = serializers.DecimalField(max_digits=12, decimal_places=6, allow_null=True)
    outcome = serializers.SerializerMethodField(help_text="Null when not reported.")
    escalation_reason = serializers.SerializerMethodField(help_text="Null when not reported.")
    # Never the id itself, nor its hash (conversations.customers).
    has_customer_id = serializers.SerializerMethodField()
    received_at = serializers.DateTimeField()

    def get_topics(self, conversation) -> list[str]:
        # Set by the ingestion service (IngestResult.conversation) or annotated
        # (Conversation.objects.with_topic_names()): the two ways a reply gets its conversation.
        return conversation.topic_names

    def get_outcome(self, conversation) -> str | None:
        return conversation.outcome or None

    def get_escalation_reason(self, conversation) -> str | None:
        return conversation.escalation_reason or None

    def get_has_customer_id(self, conversation) -> bool:
        return conversation.customer_hash is not None


# --- Analytics queries -----------------------------------------------------------------


class AnalyticsQuerySerializer(serializers.Serializer):
    """The window and filters of every analytics request, parsed once into Period + Filters."""

    hours = serializers.IntegerField(
        min_value=1,
        max_value=MAX_HOURS,
        required=False,
        help_text="Conversations that ended within the last N hours (timestamp > now - N h). Default 24.",
    )
    start = UTCDateTimeField(required=False, help_text="ISO 8601, inclusive. Use with end instead of hours.")
    end = UTCDateTimeField(required=False, help_text="ISO 8601, exclusive. Default: now.")
    channel = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    topic = serializers.CharField(max_length=1000, required=False)
    bot_version = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    escalation_reason = serializers.CharField(
        max_length=1000,
        required=False,
        help_text="Only conversations escalated for this reason (normalized like a topic).",
    )

    def validate(self, attrs: dict) -> dict:
        if "hours" in attrs and ("start" in attrs or "end" in attrs):
            raise serializers.ValidationError({"hours": ["Use hours, or start and end, not both."]})
        if "end" in attrs and "start" not in attrs:
            raise serializers.ValidationError({"start": ["Required when end is given."]})
        now = timezone.now()
        if "start" in attrs:
            end = attrs.get("end", now)
            if attrs["start"] > end:
                raise serializers.ValidationError({"end": ["Must not be before start."]})
            attrs["period"] = Period(start=attrs["start"], end=end, include_start=True)
        else:
            attrs["period"] = Period.last_hours(attrs.get("hours", 24), now=now)
        topic = normalize_topic(attrs["topic"]) if "topic" in attrs else None
        reason = normalize_topic(attrs["escalation_reason"]) if "escalation_reason" in attrs else None
        attrs["filters"] = Filters(
            channel=attrs.get("channel"),
            topic=topic or None,
            bot_version=attrs.get("bot_version"),
            escalation_reason=reason or None,
        )
        return attrs


class SummaryQuerySerializer(AnalyticsQuerySerializer):
    """The summary's query: the window and filters, and what to compare it with."""

    compare = serializers.ChoiceField(
        choices=["previous"],
        required=False,
        help_text="previous: add `previous` (the summary of the period of equal length just before) and "
        "`changes` (each rate's and mean's difference with its 95% interval and p-value, and the "
        "volume's relative change).",
    )


class CompareQuerySerializer(AnalyticsQuerySerializer):
    """Two arms over the window and filters, chosen by exactly one kind of pair: two bot
    versions, two channels, or two windows (which replace the window)."""

    a_bot_version = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    b_bot_version = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    a_channel = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    b_channel = serializers.CharField(max_length=LABEL_MAX_LENGTH, required=False)
    a_start = UTCDateTimeField(required=False, help_text="ISO 8601, inclusive: arm a's window.")
    a_end = UTCDateTimeField(required=False, help_text="ISO 8601, exclusive.")
    b_start = UTCDateTimeField(required=False, help_text="ISO 8601, inclusive: arm b's window.")
    b_end = UTCDateTimeField(required=False, help_text="ISO 8601, exclusive.")

    PAIRS = {
        "bot_version": ("a_bot_version", "b_bot_version"),
        "channel": ("a_channel", "b_channel"),
        "window": ("a_start", "a_end", "b_start", "b_end"),
    }

    def validate(self, attrs: dict) -> dict:
        kinds = [kind for kind, names in self.PAIRS.items() if any(name in attrs for name in names)]
        if len(kinds) != 1:
            names = ", ".join(name for names in self.PAIRS.values() for name in names)
            field = "compare" if not kinds else self.PAIRS[kinds[1]][0]
            raise serializers.ValidationError(
                {field: [f"Give exactly one kind of pair of arms, all of its parameters: {names}."]}
            )
        [kind] = kinds
        for name in self.PAIRS[kind]:
            if name not in attrs:
                raise serializers.ValidationError({name: ["Required with the other half of the pair."]})
        if kind == "window":
            for name in ("hours", "start", "end"):
                if name in attrs:
                    raise serializers.ValidationError(
                        {name: ["Two windows replace the window: leave it out."]}
                    )
            for side in ("a", "b"):
                if attrs[f"{side}_start"] > attrs[f"{side}_end"]:
                    raise serializers.ValidationError({f"{side}_end": ["Must not be before its start."]})
        elif kind in attrs or (kind == "bot_version" and "bot_version" in attrs):
            raise serializers.ValidationError({kind: [f"The arms set the {kind}: leave it out."]})
        attrs = super().validate(attrs)
        filters: Filters = attrs["filters"]
        if kind == "window":
            attrs["arms"] = tuple(
                (Period(start=attrs[f"{side}_start"], end=attrs[f"{side}_end"], include_start=True), filters)
                for side in ("a", "b")
            )
        else:
            attrs["arms"] = tuple(
                (attrs["period"], replace(filters, **{kind: attrs[f"{side}_{kind}"]})) for side in ("a", "b")
            )
        return attrs


class TimeseriesQuerySerializer(AnalyticsQuerySerializer):
    granularity = serializers.ChoiceField(
        choices=[choice.value for choice in Granularity], default=Granularity.DAY
    )
    tz = serializers.CharField(
        required=False,
        max_length=64,
        help_text="IANA time zone for day and week buckets, e.g. Europe/Berlin. Default: the server's "
        "ANALYTICS_TIME_ZONE.",
    )

    def validate_tz(self, value: str) -> ZoneInfo:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise serializers.ValidationError(f"Unknown time zone {value!r}.") from None

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        attrs.setdefault("tz", ZoneInfo(settings.ANALYTICS_TIME_ZONE))
        period = attrs["period"]
        attrs["granularity"] = granularity = Granularity(attrs["granularity"])
        if (period.end - period.start) / granularity.nominal_length > MAX_BUCKETS:
            raise serializers.ValidationError(
                {
                    "granularity": [
                        f"Too many buckets (more than {MAX_BUCKETS:,}); choose a coarser granularity."
                    ]
                }
            )
        return attrs
