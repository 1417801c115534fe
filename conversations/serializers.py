"""Serializers shared by several API views (and, for the query, by the dashboard later)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from conversations.analytics.query import Filters, Granularity, Period
from conversations.models import (
    CSAT_SCORES,
    FUTURE_TOLERANCE,
    LABEL_MAX_LENGTH,
    MAX_RESPONSE_MS,
    MAX_RESPONSES,
    MAX_TOPICS,
    MAX_TURNS,
    SESSION_ID_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    normalize_topic,
)
from conversations.services import ConversationIn

MAX_HOURS = 87_600  # ten years
MAX_BUCKETS = 10_000
MAX_RESPONSE_TIMES = MAX_RESPONSES
MIN_YEAR, MAX_YEAR = 1900, 9000


# --- Strict JSON scalars -------------------------------------------------------------
# DRF happily turns "yes", "1" and 1 into True, and "5" into 5. The bot speaks JSON, so
# we take JSON types only: a wrong type is a bug in the sender that should surface.


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be a JSON boolean (true or false)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "Must be a JSON integer."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "Must be a JSON number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        try:
            finite = math.isfinite(data)  # a 400-digit JSON integer overflows here
        except OverflowError:
            finite = False
        if not finite:
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


# --- Ingestion ---------------------------------------------------------------------


class ConversationInputSerializer(serializers.Serializer):
    """One conversation as the bot sends it: the tutorial's `log_conversation` plus extras.

    Unknown fields are ignored, so a line of the tutorial's analytics.jsonl posts as is.

    `conversations/ingest_validation.py` repeats these checks in plain Python (this serializer
    costs 0.2 ms an item) and hands anything doubtful back to it: change both together;
    tests/test_ingest_validation.py tells whether they still agree.
    """

    # Stored exactly as sent (no trimming): the CSAT endpoint finds it by the same string.
    session_id = serializers.CharField(max_length=SESSION_ID_MAX_LENGTH, trim_whitespace=False)
    turns = StrictIntegerField(min_value=0, max_value=MAX_TURNS)
    resolved_by_ai = StrictBooleanField()
    topics = serializers.ListField(
        child=serializers.CharField(max_length=1000, allow_blank=True, trim_whitespace=False),
        max_length=MAX_TOPICS,
        required=False,
        allow_null=True,
        help_text=f"Up to {MAX_TOPICS} topics; trimmed, inner whitespace collapsed, lowercased; "
        f"1-{TOPIC_MAX_LENGTH} characters after that; duplicates count once.",
    )
    response_times = serializers.ListField(
        child=StrictFloatField(min_value=0, max_value=MAX_RESPONSE_MS),
        max_length=MAX_RESPONSE_TIMES,
        required=False,
        help_text="Each bot response time in ms. Send this or avg_response_ms, not both.",
    )
    avg_response_ms = StrictFloatField(
        min_value=0, max_value=MAX_RESPONSE_MS, required=False, allow_null=True
    )
    response_count = StrictIntegerField(
        min_value=0,
        max_value=MAX_RESPONSE_TIMES,
        required=False,
        allow_null=True,
        help_text="How many responses avg_response_ms averages (optional; only with avg_response_ms).",
    )
    csat = StrictIntegerField(
        min_value=min(CSAT_SCORES),
        max_value=max(CSAT_SCORES),
        required=False,
        allow_null=True,
        help_text="1-5, or null. Leave the field out to keep a score stored earlier.",
    )
    timestamp = UTCDateTimeField(
        required=False,
        help_text="When the conversation ended, ISO 8601; naive means UTC; default: time of receipt.",
    )
    channel = serializers.CharField(
        max_length=LABEL_MAX_LENGTH, required=False, allow_blank=True, allow_null=True
    )
    bot_version = serializers.CharField(
        max_length=LABEL_MAX_LENGTH, required=False, allow_blank=True, allow_null=True
    )
    ai_cost = serializers.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="What the bot cost for this conversation; default: the configured AI cost.",
    )

    def validate_topics(self, topics: list[str] | None) -> tuple[str, ...]:
        normalized: dict[str, None] = {}  # ordered set
        errors = {}
        for index, raw in enumerate(topics or []):
            name = normalize_topic(raw)
            if not name:
                errors[index] = ["A topic may not be empty or only whitespace."]
            elif len(name) > TOPIC_MAX_LENGTH:
                errors[index] = [
                    f"A topic may have at most {TOPIC_MAX_LENGTH} characters (after normalizing)."
                ]
            else:
                normalized[name] = None
        if errors:
            raise serializers.ValidationError(errors)
        return tuple(normalized)

    def validate_timestamp(self, value: datetime) -> datetime:
        if value > timezone.now() + FUTURE_TOLERANCE:
            raise serializers.ValidationError("May not be more than 5 minutes in the future.")
        return value

    def validate(self, attrs: dict) -> dict:
        if "response_times" in attrs and attrs.get("avg_response_ms") is not None:
            raise serializers.ValidationError(
                {"avg_response_ms": ["Send response_times or avg_response_ms, not both."]}
            )
        if attrs.get("response_count") is not None and attrs.get("avg_response_ms") is None:
            raise serializers.ValidationError(
                {"response_count": ["Only allowed together with avg_response_ms."]}
            )
        return attrs

    def to_conversation_in(self, attrs: dict, *, received_at: datetime) -> ConversationIn:
        if "response_times" in attrs:
            times = attrs["response_times"]
            avg_response_ms = sum(times) / len(times) if times else None
            response_count = len(times)
        else:
            avg_response_ms = attrs.get("avg_response_ms")
            response_count = attrs.get("response_count")
        if avg_response_ms is not None:
            # To the microsecond: every sum of these (rollups, full scans) is then exact.
            avg_response_ms = round(avg_response_ms, 3)
        return ConversationIn(
            session_id=attrs["session_id"],
            timestamp=attrs.get("timestamp") or received_at,
            turns=attrs["turns"],
            resolved_by_ai=attrs["resolved_by_ai"],
            topics=attrs.get("topics") or (),
            avg_response_ms=avg_response_ms,
            response_count=response_count,
            channel=attrs.get("channel") or "",
            bot_version=attrs.get("bot_version") or "",
            ai_cost=attrs.get("ai_cost"),
            csat=attrs.get("csat"),
            csat_given="csat" in attrs,
        )


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
    received_at = serializers.DateTimeField()

    def get_topics(self, conversation) -> list[str]:
        # Set by the ingestion service (IngestResult.conversation) or annotated
        # (Conversation.objects.with_topic_names()): the two ways a reply gets its conversation.
        return conversation.topic_names


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
        attrs["filters"] = Filters(
            channel=attrs.get("channel"),
            topic=topic or None,
            bot_version=attrs.get("bot_version"),
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
