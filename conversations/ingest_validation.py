"""Ingested conversations validated in plain Python, with DRF's serializer as the judge of doubt.

`ConversationInputSerializer` costs about 0.2 ms per item (field objects, validators, error
bookkeeping); a batch of 1,000 spent most of its time there. Nearly every item a bot sends is
valid, so this module checks each item with plain type and range tests that mirror the
serializer (see the comments on each check) and builds the `ConversationIn` directly.

It never produces an error itself: at the first thing it is not sure about (a wrong type, a
value out of range, a string that needs DRF's coercions), `conversation_from_item` returns
None and `conversations_from_body` runs the serializer on the whole body, so every 400
answer, its messages and the OpenAPI schema still come from the serializer alone.

The promise, tested by a property test in tests/test_ingest_validation.py: whenever the fast
path accepts an item, the serializer accepts it too and gives an equal `ConversationIn`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Context, Decimal, DecimalException
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conversations.models import (
    CSAT_SCORES,
    FUTURE_TOLERANCE,
    LABEL_MAX_LENGTH,
    MAX_RESPONSE_MS,
    MAX_TOPICS,
    MAX_TURNS,
    SESSION_ID_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    normalize_topic,
)
from conversations.serializers import (
    MAX_RESPONSE_TIMES,
    MAX_YEAR,
    MIN_YEAR,
    ConversationInputSerializer,
)
from conversations.services import ConversationIn

# Limits the models have no constant for, read from the serializer's own fields.
_FIELDS = ConversationInputSerializer().fields
_RAW_TOPIC_MAX_LENGTH = _FIELDS["topics"].child.max_length  # before normalizing
_AI_COST = _FIELDS["ai_cost"]
_CSAT_MIN, _CSAT_MAX = min(CSAT_SCORES), max(CSAT_SCORES)
# DecimalField's own guard against huge strings (MAX_STRING_LENGTH).
_AI_COST_MAX_STRING = _AI_COST.MAX_STRING_LENGTH
_AI_COST_MIN = _AI_COST.min_value
_AI_COST_DIGITS = _AI_COST.max_digits
_AI_COST_PLACES = _AI_COST.decimal_places
_AI_COST_WHOLE_DIGITS = _AI_COST_DIGITS - _AI_COST_PLACES
_AI_COST_EXPONENT = Decimal(1).scaleb(-_AI_COST_PLACES)
# Only numbers within max_digits/decimal_places get here, so this quantize pads zeros and
# never rounds: the context's rounding mode (DRF copies the thread's) cannot matter.
_AI_COST_CONTEXT = Context(prec=_AI_COST_DIGITS)

# The serializer's fields this module checks; a test fails when the serializer gains one
# it does not know (the fast path would silently ignore it).
CHECKED_FIELDS = frozenset(
    {
        "session_id",
        "turns",
        "resolved_by_ai",
        "topics",
        "response_times",
        "avg_response_ms",
        "response_count",
        "csat",
        "timestamp",
        "channel",
        "bot_version",
        "ai_cost",
    }
)

_MISSING = object()  # "field absent", where absent and null mean different things
_UNSURE = object()  # "ask the serializer"


def _is_clean(text: str) -> bool:
    """No NUL and no lone surrogate: DRF's CharField validators refuse both."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")  # fails exactly on surrogate code points
    except UnicodeEncodeError:
        return False
    return True


def _response_ms(value: Any) -> float | None:
    """StrictFloatField(min_value=0, max_value=MAX_RESPONSE_MS): a JSON number, finite, in range."""
    kind = type(value)  # `type is`, not isinstance: bool is an int subclass and is refused
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:  # a 400-digit integer
            return None
    else:
        return None
    # NaN compares false and infinity is out of range, so both end here too.
    if 0 <= number <= MAX_RESPONSE_MS:
        return number
    return None


def _label(value: Any) -> str | None:
    """CharField(max_length=64, allow_blank=True, allow_null=True), trimmed; null becomes ""."""
    if value is None:
        return ""
    if type(value) is not str:  # DRF would turn a number into its str(): leave that to DRF
        return None
    text = value.strip()  # trim_whitespace=True, checks on the trimmed text
    if len(text) > LABEL_MAX_LENGTH or not _is_clean(text):
        return None
    return text


def _topics(value: Any) -> tuple[str, ...] | None:
    """ListField of CharField(max_length=1000, allow_blank=True), then `validate_topics`."""
    if type(value) is not list or len(value) > MAX_TOPICS:
        return None
    names: dict[str, None] = {}  # ordered set: duplicates count once, first one's place
    for raw in value:
        if type(raw) is not str or (name := _topic_name(raw)) is None:
            return None
        names[name] = None
    return tuple(names)


@functools.lru_cache(maxsize=4096)
def _topic_name(raw: str) -> str | None:
    """The normalized name of a valid raw topic, else None. Cached: a bot sends the same few
    topics over and over, and checking and normalizing one took a tenth of an import's
    parsing (at most 4,096 names of up to 1,000 characters kept: a few MB)."""
    if len(raw) > _RAW_TOPIC_MAX_LENGTH or not _is_clean(raw):
        return None
    name = normalize_topic(raw)
    if not name or len(name) > TOPIC_MAX_LENGTH:
        return None
    return name


def _timestamp(value: Any, *, latest: datetime) -> datetime | None:
    """UTCDateTimeField plus `validate_timestamp`: ISO 8601 via Django's parse_datetime (as
    DRF's DateTimeField does), naive means UTC, years 1900-9000, at most `latest`."""
    if type(value) is not str:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well formed but impossible, e.g. month 13
        return None
    if parsed is None:  # DRF then tries strptime(value, "iso-8601"): leave that to DRF
        return None
    if parsed.utcoffset() is None:  # django.utils.timezone.is_aware, as DRF asks it
        parsed = parsed.replace(tzinfo=UTC)  # make_aware(value, UTC)
    else:
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            return None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR or parsed > latest:
        return None
    return parsed


def _ai_cost(value: Any) -> Decimal | object | None:
    """DecimalField(max_digits=12, decimal_places=6, min_value=0, allow_null=True), step by step.

    Returns the Decimal, None (null, or a blank string, which DRF also takes for null), or
    _UNSURE.
    """
    kind = type(value)
    if value is None:
        return None
    if kind is str:
        text = value.strip()  # smart_str(data).strip()
        if not text:  # DecimalField.validate_empty_values: blank means null
            return None
    elif kind is int or kind is float:  # DRF takes str() of a number; bool is refused
        text = str(value)
    else:
        return _UNSURE
    if len(text) > _AI_COST_MAX_STRING:
        return _UNSURE
    try:
        number = Decimal(text)
    except DecimalException:
        return _UNSURE
    if not number.is_finite():  # NaN, sNaN, Infinity
        return _UNSURE
    # DecimalField.validate_precision, the same arithmetic.
    _, digits, exponent = number.as_tuple()
    if exponent >= 0:
        total_digits = len(digits) + exponent
        whole_digits, decimal_places = total_digits, 0
    elif len(digits) > -exponent:
        total_digits = len(digits)
        whole_digits, decimal_places = total_digits + exponent, -exponent
    else:
        total_digits = -exponent
        whole_digits, decimal_places = 0, total_digits
    if (
        total_digits > _AI_COST_DIGITS
        or decimal_places > _AI_COST_PLACES
        or whole_digits > _AI_COST_WHOLE_DIGITS
    ):
        return _UNSURE
    number = number.quantize(_AI_COST_EXPONENT, context=_AI_COST_CONTEXT)
    if number < _AI_COST_MIN:  # MinValueValidator, after quantizing as in DRF
        return _UNSURE
    return number


def conversation_from_item(item: Any, *, received_at: datetime, now: datetime) -> ConversationIn | None:
    """One parsed JSON item as `ConversationInputSerializer` + `to_conversation_in` would turn it
    into a ConversationIn, or None when the serializer must decide (the item may be invalid).

    `received_at` is the default timestamp; `now` is the clock for the 5-minute future limit
    (the serializer reads the clock later, so its limit is never stricter than ours).
    """
    if type(item) is not dict:
        return None
    get = item.get

    # CharField(max_length=255, trim_whitespace=False): stored exactly as sent.
    session_id = get("session_id")
    if (
        type(session_id) is not str
        or not session_id
        or len(session_id) > SESSION_ID_MAX_LENGTH
        or not _is_clean(session_id)
    ):
        return None

    turns = get("turns")
    if type(turns) is not int or not 0 <= turns <= MAX_TURNS:
        return None

    resolved_by_ai = get("resolved_by_ai")
    if type(resolved_by_ai) is not bool:
        return None

    topics = get("topics")  # absent and null both mean none
    if topics is not None:
        topics = _topics(topics)
        if topics is None:
            return None
    else:
        topics = ()

    avg_response_ms = get("avg_response_ms")
    if avg_response_ms is not None:
        avg_response_ms = _response_ms(avg_response_ms)
        if avg_response_ms is None:
            return None

    response_count = get("response_count")
    if response_count is not None:
        if type(response_count) is not int or not 0 <= response_count <= MAX_RESPONSE_TIMES:
            return None
        if avg_response_ms is None:  # "Only allowed together with avg_response_ms."
            return None

    response_times = get("response_times", _MISSING)
    if response_times is not _MISSING:
        if avg_response_ms is not None:  # "Send response_times or avg_response_ms, not both."
            return None
        if type(response_times) is not list or len(response_times) > MAX_RESPONSE_TIMES:
            return None  # null included: the field is not nullable
        times = []
        for value in response_times:
            number = _response_ms(value)
            if number is None:
                return None
            times.append(number)
        avg_response_ms = sum(times) / len(times) if times else None
        response_count = len(times)
    if avg_response_ms is not None:
        avg_response_ms = round(avg_response_ms, 3)  # as to_conversation_in rounds it

    csat = get("csat", _MISSING)
    csat_given = csat is not _MISSING  # an explicit null clears a stored score
    if not csat_given:
        csat = None
    elif csat is not None and (type(csat) is not int or not _CSAT_MIN <= csat <= _CSAT_MAX):
        return None

    timestamp = get("timestamp", _MISSING)
    if timestamp is _MISSING:
        timestamp = received_at
    else:
        timestamp = _timestamp(timestamp, latest=now + FUTURE_TOLERANCE)
        if timestamp is None:
            return None

    channel = _label(get("channel"))
    if channel is None:
        return None
    bot_version = _label(get("bot_version"))
    if bot_version is None:
        return None

    ai_cost = _ai_cost(get("ai_cost"))
    if ai_cost is _UNSURE:
        return None

    return ConversationIn(
        session_id=session_id,
        timestamp=timestamp,
        turns=turns,
        resolved_by_ai=resolved_by_ai,
        topics=topics,
        avg_response_ms=avg_response_ms,
        response_count=response_count,
        channel=channel,
        bot_version=bot_version,
        ai_cost=ai_cost,
        csat=csat,
        csat_given=csat_given,
    )


def fast_conversations(data: Any, *, received_at: datetime) -> list[ConversationIn] | None:
    """A request body (one object or an array of them) as ConversationIns, or None as soon as
    one item needs the serializer."""
    items = data if type(data) is list else [data]
    conversations = []
    for item in items:
        conversation = conversation_from_item(item, received_at=received_at, now=received_at)
        if conversation is None:
            return None
        conversations.append(conversation)
    return conversations


def conversations_from_body(data: Any, *, received_at: datetime | None = None) -> list[ConversationIn]:
    """A request body as ConversationIns; raises the serializer's ValidationError if invalid.

    `received_at` (default: now) is the timestamp of items that have none, and the clock of
    the future limit.
    """
    if received_at is None:
        received_at = timezone.now()
    conversations = fast_conversations(data, received_at=received_at)
    if conversations is not None:
        return conversations
    many = isinstance(data, list)
    serializer = ConversationInputSerializer(data=data, many=many)
    serializer.is_valid(raise_exception=True)
    validated = serializer.validated_data if many else [serializer.validated_data]
    to_conversation_in = ConversationInputSerializer().to_conversation_in
    return [to_conversation_in(attrs, received_at=received_at) for attrs in validated]
