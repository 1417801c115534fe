"""The ingest rules, defined once: what a conversation from the bot (or a line of the tutorial's
analytics.jsonl) may hold, and the `ConversationIn` it becomes.

`ConversationInput`, validated by pydantic 2, serves the API (`ConversationIngestApi`),
`import_jsonl` and the OpenAPI schema (conversations/schema.py) alike. Its checks run in
pydantic-core (Rust) where a constraint can say them; Python runs only where a rule needs it (a
topic's normalized name, a label's trimming, Django's ISO 8601 parser, DecimalField's arithmetic
for `ai_cost`, the rules between fields). It is a TypedDict, not a BaseModel: what the rules
make of an item is a `ConversationIn` (`_conversation_in`), and a model instance on the way
only adds cost (docs/benchmarks.md, "Ingest rules, per item").

The leniencies are the ones DRF's serializer had, kept so senders see no change (pinned by
tests/test_ingest_rules.py): a JSON number for a string field is taken as its `str()`
(`"session_id": 42` is "42"), blank `ai_cost` means null, numeric strings are costs. Everything
else is strict JSON: a boolean is not a number, 5.0 is not an integer, "5" is not a number.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Context, Decimal, DecimalException
from typing import Annotated, Any, Literal, NotRequired

from django.utils.dateparse import parse_datetime
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from conversations.customers import customer_hash
from conversations.models import (
    CSAT_SCORES,
    CUSTOMER_ID_MAX_LENGTH,
    FUTURE_TOLERANCE,
    LABEL_MAX_LENGTH,
    MAX_RESPONSE_MS,
    MAX_RESPONSES,
    MAX_TOPICS,
    MAX_TURNS,
    MAX_YEAR,
    MIN_YEAR,
    REASON_MAX_LENGTH,
    RESOLVED_OUTCOMES,
    SESSION_ID_MAX_LENGTH,
    TOPIC_MAX_LENGTH,
    normalize_topic,
)
from conversations.services import ConversationIn

RAW_TOPIC_MAX_LENGTH = 1000  # before normalizing: bounds the work on one topic
AI_COST_DIGITS, AI_COST_PLACES = 12, 6  # the column: numeric(12, 6)
# DRF's DecimalField.MAX_STRING_LENGTH: Decimal() of a huge string is slow.
AI_COST_MAX_STRING = 1000

# PostgreSQL text cannot hold NUL; a lone surrogate (from a JSON "\ud800" escape) cannot be
# encoded: pydantic-core refuses the latter for any string with a constraint.
NO_NUL = r"^[^\x00]*$"
WRONG_FORMAT = "Datetime has wrong format. Use ISO 8601."


def _error(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context or None)


# --- Fields ------------------------------------------------------------------------------


def _label(text: str) -> str:
    """Trimmed as DRF's CharField trimmed (str.strip: Python's idea of whitespace), then measured."""
    text = text.strip()
    if len(text) > LABEL_MAX_LENGTH:
        raise _error(
            "label_too_long",
            "Ensure this field has no more than {max_length} characters.",
            max_length=LABEL_MAX_LENGTH,
        )
    return text


@functools.lru_cache(maxsize=4096)
def _topic_name(raw: str) -> str | None:
    """The normalized name of a topic, or None if it is empty or too long once normalized.
    Cached: a bot sends the same few topics over and over (at most 4,096 names of up to
    1,000 characters kept: a few MB)."""
    name = normalize_topic(raw)
    return name if 0 < len(name) <= TOPIC_MAX_LENGTH else None


def _topic_names(topics: list[str]) -> tuple[str, ...]:
    """Normalized, duplicates once (in first-seen order); the count is of topics as sent.

    Checked after every topic passed its own checks, as DRF did: a list with a bad item names
    that item only; one of 21 topics names the list; then every topic empty or too long once
    normalized is named by its index (the error's `problems`, spread out by `errors_of`).
    """
    if len(topics) > MAX_TOPICS:
        raise _error(
            "too_many", "Ensure this field has no more than {max_items} elements.", max_items=MAX_TOPICS
        )
    names = dict.fromkeys(map(_topic_name, topics))  # an ordered set
    if None not in names:
        return tuple(names)
    problems = []
    for index, raw in enumerate(topics):
        if _topic_name(raw) is None:
            if normalize_topic(raw):
                message = f"A topic may have at most {TOPIC_MAX_LENGTH} characters (after normalizing)."
            else:
                message = "A topic may not be empty or only whitespace."
            problems.append((index, message))
    raise _error("topic_name", "Invalid topics.", problems=problems)


def _at_most(count: int) -> Callable[[list], list]:
    def check(items: list) -> list:
        if len(items) > count:
            raise _error(
                "too_many", "Ensure this field has no more than {max_items} elements.", max_items=count
            )
        return items

    return check


def _timestamp(value: Any, info: ValidationInfo) -> datetime:
    """ISO 8601 as Django's parse_datetime reads it (as DRF's DateTimeField did); naive means
    UTC (the tutorial writes `datetime.utcnow().isoformat()`); years 1900-9000 (nothing real
    lies outside, and date arithmetic near year 1 or 9999 would overflow); not after the
    context's `latest` (5 minutes after now)."""
    if type(value) is not str:
        if value is None:
            raise _error("null", "This field may not be null.")
        raise _error("datetime_format", WRONG_FORMAT)
    try:
        parsed = datetime.fromisoformat(value)  # what parse_datetime tries first
    except ValueError:
        try:
            parsed = parse_datetime(value)  # its regex reads a few more forms, e.g. 2026-3-4T1:02
        except ValueError:  # well formed but impossible, e.g. month 13
            parsed = None
        if parsed is None:
            raise _error("datetime_format", WRONG_FORMAT) from None
    if parsed.utcoffset() is None:
        parsed = datetime.combine(parsed, parsed.time(), UTC)  # replace(tzinfo=UTC), but cheaper
    else:
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
            raise _error("datetime_format", WRONG_FORMAT) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise _error("datetime_range", f"Must be between the years {MIN_YEAR} and {MAX_YEAR}.")
    if parsed > info.context["latest"]:
        raise _error("datetime_future", "May not be more than 5 minutes in the future.")
    return parsed


_AI_COST_EXPONENT = Decimal(1).scaleb(-AI_COST_PLACES)
# Only numbers within the digits and places get quantized, so this pads zeros and never rounds.
_AI_COST_CONTEXT = Context(prec=AI_COST_DIGITS)


def _ai_cost(value: Any) -> Decimal | None:
    """DRF's DecimalField(max_digits=12, decimal_places=6, min_value=0, allow_null=True), which
    read str() of what came: numbers and numeric strings (" 1.5 ", "1e-3", "1_000"); a blank
    string means null. The same arithmetic, so the same values pass, with the same places."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _error("decimal_type", "A valid number is required.")
    text = str(value).strip()
    if not text:
        return None
    if len(text) > AI_COST_MAX_STRING:
        raise _error("decimal_type", "String value too large.")
    number, problem = _decimal(text)
    if problem:
        raise _error("decimal", problem)
    return number


@functools.lru_cache(maxsize=4096)
def _decimal(text: str) -> tuple[Decimal | None, str | None]:
    """The cost in `text` and None, or None and what is wrong with it. Cached: a bot reports
    the same few costs over and over (Decimal is immutable, so sharing one is safe)."""
    try:
        number = Decimal(text)
    except DecimalException:
        return None, "A valid number is required."
    if not number.is_finite():
        return None, "A valid number is required."
    _, digits, exponent = number.as_tuple()
    if exponent >= 0:
        total_digits, whole_digits, places = len(digits) + exponent, len(digits) + exponent, 0
    elif len(digits) > -exponent:
        total_digits, whole_digits, places = len(digits), len(digits) + exponent, -exponent
    else:
        total_digits, whole_digits, places = -exponent, 0, -exponent
    if total_digits > AI_COST_DIGITS:
        return None, f"Ensure that there are no more than {AI_COST_DIGITS} digits in total."
    if places > AI_COST_PLACES:
        return None, f"Ensure that there are no more than {AI_COST_PLACES} decimal places."
    if whole_digits > AI_COST_DIGITS - AI_COST_PLACES:
        return None, (
            f"Ensure that there are no more than {AI_COST_DIGITS - AI_COST_PLACES} digits "
            "before the decimal point."
        )
    number = number.quantize(_AI_COST_EXPONENT, context=_AI_COST_CONTEXT)
    if number < 0:  # -0 passes, as -0.000000
        return None, "Ensure this value is greater than or equal to 0."
    return number, None


def _escalation_reason(raw: str) -> str:
    """Normalized like a topic (`normalize_topic`), then 1-100 characters."""
    name = normalize_topic(raw)
    if not name:
        raise _error("reason_empty", "May not be empty or only whitespace.")
    if len(name) > REASON_MAX_LENGTH:
        raise _error(
            "reason_too_long",
            f"Ensure this field has no more than {REASON_MAX_LENGTH} characters (after normalizing).",
        )
    return name


SessionId = Annotated[str, StringConstraints(min_length=1, max_length=SESSION_ID_MAX_LENGTH, pattern=NO_NUL)]
# A moment as `_timestamp` reads it (a conversation's end, an annotation's moment); validated
# with a `validation_context`.
Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
Label = Annotated[str, StringConstraints(pattern=NO_NUL), AfterValidator(_label)]
RawTopic = Annotated[str, StringConstraints(max_length=RAW_TOPIC_MAX_LENGTH, pattern=NO_NUL)]
Milliseconds = Annotated[float, Strict(), Field(ge=0, le=MAX_RESPONSE_MS, allow_inf_nan=False)]
StrictInt = Annotated[int, Strict()]


class ConversationInput(TypedDict):
    """One conversation as the bot sends it: the tutorial's `log_conversation` plus extras.

    Unknown fields are ignored, so a line of the tutorial's analytics.jsonl posts as is.
    """

    # JSON numbers for strings are taken as their str(), as DRF's CharField took them.
    __pydantic_config__ = ConfigDict(coerce_numbers_to_str=True, extra="ignore")

    # Stored exactly as sent (no trimming): the CSAT endpoint finds it by the same string.
    session_id: SessionId
    turns: Annotated[StrictInt, Field(ge=0, le=MAX_TURNS)]
    resolved_by_ai: Annotated[bool, Strict()]
    topics: NotRequired[
        Annotated[
            Annotated[list[RawTopic], AfterValidator(_topic_names)] | None,
            Field(
                description=f"Up to {MAX_TOPICS} topics; trimmed, inner whitespace collapsed, lowercased; "
                f"1-{TOPIC_MAX_LENGTH} characters after that; duplicates count once.",
                json_schema_extra={"maxItems": MAX_TOPICS},
            ),
        ]
    ]
    response_times: NotRequired[
        Annotated[
            list[Milliseconds],
            AfterValidator(_at_most(MAX_RESPONSES)),
            Field(
                description="Each bot response time in ms. Send this or avg_response_ms, not both.",
                json_schema_extra={"maxItems": MAX_RESPONSES},
            ),
        ]
    ]
    avg_response_ms: NotRequired[Milliseconds | None]
    response_count: NotRequired[
        Annotated[
            Annotated[StrictInt, Field(ge=0, le=MAX_RESPONSES)] | None,
            Field(
                description="How many responses avg_response_ms averages "
                "(optional; only with avg_response_ms)."
            ),
        ]
    ]
    csat: NotRequired[
        Annotated[
            Annotated[StrictInt, Field(ge=min(CSAT_SCORES), le=max(CSAT_SCORES))] | None,
            Field(description="1-5, or null. Leave the field out to keep a score stored earlier."),
        ]
    ]
    timestamp: NotRequired[
        Annotated[
            Timestamp,
            Field(
                description="When the conversation ended, ISO 8601; naive means UTC; "
                "default: time of receipt."
            ),
        ]
    ]
    # Trimmed, then measured: _label checks the length after trimming.
    channel: NotRequired[Annotated[Label | None, Field(json_schema_extra={"maxLength": LABEL_MAX_LENGTH})]]
    bot_version: NotRequired[
        Annotated[Label | None, Field(json_schema_extra={"maxLength": LABEL_MAX_LENGTH})]
    ]
    outcome: NotRequired[
        Annotated[
            Literal["confirmed", "assumed", "escalated", "abandoned"] | None,
            Field(
                description="How it ended: confirmed/assumed (resolved by the AI: resolved_by_ai may be "
                "left out) or escalated/abandoned (not). Null or left out: not reported."
            ),
        ]
    ]
    escalation_reason: NotRequired[
        Annotated[
            Annotated[
                str,
                StringConstraints(max_length=RAW_TOPIC_MAX_LENGTH, pattern=NO_NUL),
                AfterValidator(_escalation_reason),
            ]
            | None,
            Field(
                description=f"Why the AI did not resolve it (only when resolved_by_ai is false); "
                f"normalized like a topic, 1-{REASON_MAX_LENGTH} characters.",
                json_schema_extra={"maxLength": REASON_MAX_LENGTH},
            ),
        ]
    ]
    # Strict: a number is refused, not taken as its str() (an id that went through a float
    # would match no other).
    customer_id: NotRequired[
        Annotated[
            Annotated[
                str,
                Strict(),
                StringConstraints(min_length=1, max_length=CUSTOMER_ID_MAX_LENGTH, pattern=NO_NUL),
            ]
            | None,
            Field(
                description="The bot's id for the customer (a string), for repeat contacts. Stored only "
                "as a keyed hash. Leave the field out to keep the one stored earlier; null clears it."
            ),
        ]
    ]
    ai_cost: NotRequired[
        Annotated[
            Decimal | None,
            BeforeValidator(_ai_cost),
            WithJsonSchema(
                {
                    "type": "number",
                    "format": "double",
                    "minimum": 0,
                    "maximum": 10 ** (AI_COST_DIGITS - AI_COST_PLACES),
                    "exclusiveMaximum": True,
                    "nullable": True,
                }
            ),
            Field(description="What the bot cost for this conversation; default: the configured AI cost."),
        ]
    ]


def _conversation_in(item: ConversationInput, info: ValidationInfo) -> ConversationIn:
    """The rules between fields (checked once every field is valid, as DRF's Serializer.validate
    was), then the ConversationIn; `received_at` (the validation context's) is the default time."""
    get = item.get
    avg_response_ms = get("avg_response_ms")
    response_count = get("response_count")
    if "response_times" in item:
        if avg_response_ms is not None:
            raise _error(
                "exclusive", "Send response_times or avg_response_ms, not both.", field="avg_response_ms"
            )
        if response_count is not None:
            raise _error("requires", "Only allowed together with avg_response_ms.", field="response_count")
        times = item["response_times"]
        avg_response_ms = sum(times) / len(times) if times else None
        response_count = len(times)
    elif response_count is not None and avg_response_ms is None:
        raise _error("requires", "Only allowed together with avg_response_ms.", field="response_count")
    if avg_response_ms is not None:
        # To the microsecond: every sum of these (rollups, full scans) is then exact.
        avg_response_ms = round(avg_response_ms, 3)
    outcome = get("outcome") or ""
    resolved_by_ai = item["resolved_by_ai"]  # derived from the outcome when not sent (_derive_resolved)
    if outcome and (outcome in RESOLVED_OUTCOMES) != resolved_by_ai:
        raise _error(
            "contradicts",
            f"Contradicts resolved_by_ai: {outcome!r} means resolved_by_ai "
            f"{str(outcome in RESOLVED_OUTCOMES).lower()}.",
            field="outcome",
        )
    escalation_reason = get("escalation_reason") or ""
    if escalation_reason and resolved_by_ai:
        raise _error(
            "resolved",
            "Only for conversations the AI did not resolve (resolved_by_ai false).",
            field="escalation_reason",
        )
    customer_id = get("customer_id")
    # Built as pickle and copy build one (a new object, its __dict__ filled): the frozen
    # dataclass's __init__ sets each field through object.__setattr__, a large part of the
    # rules' time per item (docs/benchmarks.md, "Ingest rules, per item").
    conversation = _new_conversation(ConversationIn)
    conversation.__dict__.update(
        session_id=item["session_id"],
        timestamp=get("timestamp") or info.context["received_at"],
        turns=item["turns"],
        resolved_by_ai=resolved_by_ai,
        topics=get("topics") or (),
        avg_response_ms=avg_response_ms,
        response_count=response_count,
        channel=get("channel") or "",
        bot_version=get("bot_version") or "",
        ai_cost=get("ai_cost"),
        csat=get("csat"),
        # An explicit null clears a stored score; no csat field keeps it.
        csat_given="csat" in item,
        outcome=outcome,
        escalation_reason=escalation_reason,
        # Hashed here: nothing after this point sees the id as sent (conversations.customers).
        customer_hash=None if customer_id is None else customer_hash(customer_id),
        customer_given="customer_id" in item,
    )
    return conversation


def _derive_resolved(item: Any) -> Any:
    """With an outcome and without `resolved_by_ai`, the outcome says it (confirmed and
    assumed: true; escalated and abandoned: false). Before the field checks, so that without
    either, `resolved_by_ai` is missing among the other fields' errors, as it always was."""
    if type(item) is dict and "resolved_by_ai" not in item:
        outcome = item.get("outcome")
        if outcome in _OUTCOMES:
            return {**item, "resolved_by_ai": outcome in RESOLVED_OUTCOMES}
    return item


_OUTCOMES = frozenset({"confirmed", "assumed", "escalated", "abandoned"})
_new_conversation = object.__new__
Conversation = Annotated[
    ConversationInput, BeforeValidator(_derive_resolved), AfterValidator(_conversation_in)
]
_ONE = TypeAdapter(Conversation)
_MANY = TypeAdapter(list[Conversation])


class IngestInvalid(Exception):
    """An invalid body; `errors` as conversations/errors.py shows them (index only for arrays)."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors)
        self.errors = errors


def conversations_from_body(
    data: Any, *, received_at: datetime, now: datetime | None = None
) -> list[ConversationIn]:
    """One parsed JSON object, or an array of them, as ConversationIns; raises IngestInvalid.

    `received_at` is the timestamp of items without one and, unless `now` is given, the clock
    of the 5-minute future limit.
    """
    if not isinstance(data, list):
        return [conversation_from_item(data, received_at=received_at, now=now)]
    try:
        return _MANY.validate_python(data, context=validation_context(received_at, now))
    except ValidationError as error:
        raise IngestInvalid(errors_of(error, per_item=True)) from None


def conversation_from_item(
    item: Any, *, received_at: datetime, now: datetime | None = None
) -> ConversationIn:
    """One parsed JSON object (a line of analytics.jsonl) as a ConversationIn; raises IngestInvalid."""
    try:
        return _ONE.validate_python(item, context=validation_context(received_at, now))
    except ValidationError as error:
        raise IngestInvalid(errors_of(error, per_item=False)) from None


def validation_context(received_at: datetime, now: datetime | None) -> dict[str, datetime]:
    """What the rules read besides the item: the default time and the latest time allowed."""
    return {"received_at": received_at, "latest": (now or received_at) + FUTURE_TOLERANCE}


# --- Errors, worded as DRF worded them ----------------------------------------------------

_MESSAGES = {
    "missing": "This field is required.",
    "dict_type": "Invalid data. Expected a dictionary, but got {type}.",
    "int_type": "Must be a JSON integer.",
    "bool_type": "Must be a JSON boolean (true or false).",
    "float_type": "Must be a JSON number.",
    "finite_number": "Must be a JSON number.",
    "string_type": "Not a valid string.",
    "string_unicode": "Surrogate characters are not allowed.",
    "string_pattern_mismatch": "Null characters are not allowed.",
    "string_too_short": "This field may not be blank.",
    "string_too_long": "Ensure this field has no more than {max_length} characters.",
    "list_type": 'Expected a list of items but got type "{type}".',
    "greater_than_equal": "Ensure this value is greater than or equal to {ge}.",
    "less_than_equal": "Ensure this value is less than or equal to {le}.",
}
# Type errors on a null: the field is not nullable.
_NULL_REFUSED = {"int_type", "bool_type", "float_type", "string_type", "list_type"}


def errors_of(error: ValidationError, *, per_item: bool) -> list[dict[str, Any]]:
    """pydantic's errors as the API's `errors`: [{"index"?, "field", "message"}], in order."""
    result = []
    for detail in error.errors(include_url=False):
        location = list(detail["loc"])
        entry: dict[str, Any] = {}
        if per_item:
            entry["index"] = location.pop(0)
        context = detail.get("ctx") or {}
        if "field" in context:  # a rule between fields, named after the one it is about
            location.append(context["field"])
        kind = detail["type"]
        if "problems" in context:  # one error per bad topic
            for index, message in context["problems"]:
                result.append({**entry, "field": ".".join(map(str, [*location, index])), "message": message})
            continue
        if kind in _NULL_REFUSED and detail["input"] is None:
            message = "This field may not be null."
        elif kind in _MESSAGES:
            message = _MESSAGES[kind].format_map({**context, "type": type(detail["input"]).__name__})
        else:
            message = detail["msg"]
        entry["field"] = ".".join(map(str, location)) or None
        entry["message"] = message
        result.append(entry)
    return result
