"""The ingest rules' one definition (conversations/ingest_rules.py), on its own.

tests/test_ingest_rules.py pins what the API and import_jsonl make of a table of inputs; here
hypothesis looks for inputs the table missed: valid items become the conversation they describe
(checked against a plain reading of the README's rules), every other item is refused with
errors that name its fields, an item fares the same alone and in an array, and what the rules
make of an item is a fixed point (posting a stored conversation again changes nothing).
"""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conversations.ingest_rules import ConversationInput, IngestInvalid, conversations_from_body
from conversations.models import FUTURE_TOLERANCE, MAX_RESPONSE_MS, normalize_topic
from conversations.services import ConversationIn
from tests.conftest import T0

FIELDS = set(ConversationInput.__annotations__)
BASE = {"session_id": "s-1", "turns": 3, "resolved_by_ai": True}


def outcome(body) -> list[ConversationIn] | list[dict]:
    """The ConversationIns, or the errors."""
    try:
        return conversations_from_body(body, received_at=T0)
    except IngestInvalid as invalid:
        return invalid.errors


def exactly(conversation: ConversationIn) -> list[tuple[str, type, str]]:
    """Comparable data that also tells 0.07 from 0.070000 and 0.0 from -0.0."""
    return [
        (field.name, type(value), repr(value))
        for field in dataclasses.fields(conversation)
        for value in [getattr(conversation, field.name)]
    ]


# --- Strategies: valid-looking values, boundary values and broken ones --------------------

NASTY_CHARACTERS = [" ", "\t", "\n", "\u00a0", "\u2003", "\x00", "\ud800", "\udfff", "İ", "ß", "Σ", "A", "é"]
texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(NASTY_CHARACTERS), st.characters(), st.sampled_from(string.ascii_letters)
    ),
    max_size=12,
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),  # NaN and infinity too: import_jsonl's json.loads lets them through
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=6,
)


def padded(strategy):
    """Strings with whitespace around them, sometimes."""
    return st.tuples(
        st.sampled_from(["", " ", "\t", "  \n"]), strategy, st.sampled_from(["", " ", "\u2003"])
    ).map("".join)


def long_strings(*lengths: int):
    return st.sampled_from(lengths).flatmap(
        lambda length: st.sampled_from(["x", " ", "x ", "X"]).map(lambda unit: (unit * length)[:length])
    )


session_ids = st.one_of(
    texts.filter(bool),
    st.text(min_size=1, max_size=40),
    long_strings(254, 255, 256),
    json_scalars,
)
bounded_ints = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from([9_999, 10_000, 10_001, -1, 2**63, 10**400, -(10**400)]),
    st.sampled_from([True, False, 5.0, 2.5, "3", None]),
)
milliseconds = st.one_of(
    st.integers(min_value=-2, max_value=5_000),
    st.floats(min_value=-1, max_value=MAX_RESPONSE_MS * 1.01),
    st.sampled_from(
        [
            0,
            0.0,
            -0.0,
            -0.5,
            -5e-324,
            5e-324,
            0.0005,
            0.0015,
            1000.0005,
            MAX_RESPONSE_MS,
            float(MAX_RESPONSE_MS),
            MAX_RESPONSE_MS + 1,
            86_400_000.000000015,
            1.7976931348623157e308,
            10**400,
            -(10**400),
            2**1000,
            True,
            "5",
            None,
        ]
    ),
    st.floats(),
)
topic_names = st.one_of(
    padded(st.sampled_from(["billing", "Billing", "BILLING", "billing  issues", "Billing Issues", "refund"])),
    texts,
    long_strings(99, 100, 101, 999, 1000, 1001),
    st.builds(lambda name, spaces: name + " " * spaces, st.just("x" * 50), st.sampled_from([949, 950, 951])),
    json_scalars,
)
topic_lists = st.one_of(
    st.lists(topic_names, max_size=4),
    st.lists(st.sampled_from(["a", "b", "A ", " b"]), min_size=19, max_size=22),
    json_values,
)
labels = st.one_of(
    padded(st.sampled_from(["web", "email", "2.5.0", ""])),
    texts,
    padded(long_strings(63, 64, 65)),
    json_scalars,
)
offsets = st.one_of(
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
        lambda minutes: timedelta(minutes=minutes)
    ),
    st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=-1), timedelta(seconds=30)]),
)
moments = st.one_of(
    st.datetimes(),  # years 1 to 9999
    st.datetimes(min_value=datetime(1899, 12, 31), max_value=datetime(1900, 1, 2)),
    st.integers(min_value=-3600, max_value=3600).map(
        lambda seconds: T0.replace(tzinfo=None) + FUTURE_TOLERANCE + timedelta(seconds=seconds / 7)
    ),
)


@st.composite
def timestamps(draw):
    moment = draw(moments)
    style = draw(st.integers(min_value=0, max_value=11))
    if style == 0:
        text = moment.isoformat()
    elif style == 1:
        text = moment.isoformat(
            sep=" ", timespec=draw(st.sampled_from(["minutes", "seconds", "milliseconds"]))
        )
    elif style == 2:
        text = moment.isoformat() + "Z"
    elif style == 3:
        text = moment.replace(tzinfo=timezone(draw(offsets))).isoformat()
    elif style == 4:
        text = moment.date().isoformat()
    elif style == 5:
        text = moment.strftime("%Y%m%dT%H%M%S")
    elif style == 6:  # only Django's regex reads these
        text = f"{moment.year:04d}-{moment.month}-{moment.day}T{moment.hour}:{moment.minute}"
        text += draw(st.sampled_from(["", ":7", ":07.1234567", ":07,5"]))
        text += draw(st.sampled_from(["", "Z", " +0200", "-05", "+24:00", "+00:60"]))
    elif style == 7:
        text = draw(
            st.sampled_from(["iso-8601", "yesterday", "", " ", "2026-02-30T00:00:00", "2026-03-14T24:00"])
        )
    elif style == 8:
        text = moment.isoformat() + draw(
            st.sampled_from(["+01:00", "-01:00", "+23:59", "-23:59:59", "+00:00:00.5"])
        )
    elif style == 9:
        text = draw(texts)
    elif style == 10:
        return draw(json_scalars)
    else:
        text = moment.isoformat()
        position = draw(st.integers(min_value=0, max_value=len(text)))
        text = (
            text[:position]
            + draw(st.sampled_from(["", "0", "T", " ", "Z", "\x00", "5"]))
            + text[position + 1 :]
        )
    return text


costs = st.one_of(
    *(st.decimals(places=places, allow_nan=False, allow_infinity=False).map(str) for places in (0, 3, 6, 7)),
    st.decimals().map(str),  # NaN, sNaN, Infinity and exponents
    st.floats(min_value=0, max_value=2_000_000),
    st.floats(),
    st.integers(min_value=-2, max_value=10**7),
    padded(
        st.sampled_from(["0.07", "1e-3", "1E+2", "-0", "0.0000000", "1_000", "１２", "0.1234565", ".5", "5."])
    ),
    st.sampled_from(["", "   ", "NaN", "sNaN", "-Infinity", "1" * 1001, True, False, [1], {"a": 1}]),
    json_scalars,
)


WILD_VALUES = {
    "session_id": session_ids,
    "turns": bounded_ints,
    "resolved_by_ai": st.one_of(st.booleans(), json_scalars),
    "topics": topic_lists,
    "response_times": st.one_of(st.lists(milliseconds, max_size=4), json_values),
    "avg_response_ms": milliseconds,
    "response_count": bounded_ints,
    "csat": bounded_ints,
    "timestamp": timestamps(),
    "channel": labels,
    "bot_version": labels,
    "ai_cost": costs,
}

clean_characters = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
valid_moments = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2026, 3, 13))


@st.composite
def valid_timestamps(draw) -> str:
    moment = draw(valid_moments)
    return draw(
        st.sampled_from(
            [
                moment.isoformat(),
                moment.isoformat(sep=" "),
                moment.isoformat() + "Z",
                moment.replace(tzinfo=timezone(draw(offsets))).isoformat(),
                moment.date().isoformat(),
            ]
        )
    )


@st.composite
def valid_items(draw) -> dict:
    """Items the rules accept, in the many shapes a sender may use."""
    item = {
        "session_id": draw(st.text(alphabet=clean_characters, min_size=1, max_size=255)),
        "turns": draw(st.integers(min_value=0, max_value=10_000)),
        "resolved_by_ai": draw(st.booleans()),
    }
    item |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "topics": st.one_of(
                    st.none(),
                    st.lists(
                        padded(
                            st.text(alphabet=string.ascii_letters + "  İß", min_size=1, max_size=90)
                        ).filter(str.strip),
                        max_size=20,
                    ),
                ),
                "csat": st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
                "timestamp": valid_timestamps(),
                "channel": st.one_of(st.none(), padded(st.text(alphabet=clean_characters, max_size=60))),
                "bot_version": st.one_of(st.none(), st.text(alphabet=string.digits + ".", max_size=64)),
                "ai_cost": st.one_of(
                    st.none(),
                    st.decimals(min_value=0, max_value=Decimal("999999.999999"), places=6).map(str),
                    st.floats(min_value=0, max_value=999_999).map(lambda cost: round(cost, 6)),
                    st.integers(min_value=0, max_value=999_999),
                ),
            },
        )
    )
    response_shape = draw(st.sampled_from(["none", "average", "average and count", "times"]))
    if response_shape.startswith("average"):
        item["avg_response_ms"] = draw(
            st.one_of(st.floats(min_value=0, max_value=MAX_RESPONSE_MS), st.integers(0, MAX_RESPONSE_MS))
        )
    if response_shape == "average and count":
        item["response_count"] = draw(st.integers(min_value=0, max_value=10_000))
    if response_shape == "times":
        item["response_times"] = draw(st.lists(st.floats(min_value=0, max_value=MAX_RESPONSE_MS), max_size=5))
    return item


@st.composite
def items(draw) -> dict:
    """A valid item with up to three changes: a field set to a wild value, or removed, or an
    unknown field added."""
    item = draw(valid_items())
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        name = draw(st.sampled_from([*WILD_VALUES, "unknown field"]))
        if name == "unknown field":
            item[draw(texts)] = draw(json_values)
        elif draw(st.integers(min_value=0, max_value=4)) == 0:
            item.pop(name, None)
        else:
            item[name] = draw(WILD_VALUES[name])
    return item


# --- Properties --------------------------------------------------------------------------


def expected_conversation(item: dict) -> ConversationIn:
    """A valid item (from `valid_items`) as the README describes what becomes of it."""
    if "timestamp" in item:
        timestamp = datetime.fromisoformat(item["timestamp"])
        timestamp = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
    else:
        timestamp = T0
    if "response_times" in item:
        times = item["response_times"]
        average = round(sum(times) / len(times), 3) if times else None
        count = len(times)
    else:
        average = item.get("avg_response_ms")
        average = None if average is None else round(float(average), 3)
        count = item.get("response_count")
    cost = item.get("ai_cost")
    return ConversationIn(
        session_id=item["session_id"],
        timestamp=timestamp,
        turns=item["turns"],
        resolved_by_ai=item["resolved_by_ai"],
        topics=tuple(dict.fromkeys(normalize_topic(topic) for topic in item.get("topics") or ())),
        avg_response_ms=average,
        response_count=count,
        channel=(item.get("channel") or "").strip(),
        bot_version=(item.get("bot_version") or "").strip(),
        ai_cost=None if cost is None else Decimal(str(cost)).quantize(Decimal("0.000001")),
        csat=item.get("csat"),
        csat_given="csat" in item,
    )


@settings(max_examples=300, deadline=None)
@given(item=valid_items())
def test_valid_items_become_the_conversation_they_describe(item):
    [conversation] = outcome(item)
    assert exactly(conversation) == exactly(expected_conversation(item))


def assert_errors_name_the_item(errors: list[dict], item) -> None:
    assert errors
    for error in errors:
        assert error["message"] and isinstance(error["message"], str)
        field = error["field"]
        if field is None:  # the item as a whole: only when it is not an object
            assert not isinstance(item, dict)
            continue
        name, _, position = field.partition(".")
        assert name in FIELDS, error
        if position:  # an element of a list
            assert name in ("topics", "response_times"), error
            assert 0 <= int(position) < len(item[name]), error


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=items())
@example(item={"session_id": "s", "turns": 1, "resolved_by_ai": True, "timestamp": "iso-8601"})
@example(item={"session_id": 7, "turns": 1, "resolved_by_ai": True, "channel": 5, "topics": [3]})
def test_any_item_is_accepted_or_refused_with_errors_naming_its_fields(item):
    result = outcome(item)
    if result and isinstance(result[0], dict):
        assert_errors_name_the_item(result, item)
        assert all("index" not in error for error in result)
    else:
        [conversation] = result
        assert isinstance(conversation, ConversationIn)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(st.one_of(items(), json_scalars), max_size=4))
def test_an_item_fares_in_an_array_as_it_does_alone(body):
    alone = [outcome(item) if isinstance(item, dict) else None for item in body]
    in_array = outcome(body)
    if all(result and isinstance(result[0], ConversationIn) for result in alone):
        assert [exactly(c) for c in in_array] == [exactly(result[0]) for result in alone]
        return
    expected_errors = []
    for index, result in enumerate(alone):
        if result is None:  # not an object
            expected_errors.append({"index": index, "field": None})
        elif isinstance(result[0], dict):
            expected_errors += [{"index": index, "field": error["field"]} for error in result]
    assert [{"index": e["index"], "field": e["field"]} for e in in_array] == expected_errors


def as_item(conversation: ConversationIn) -> dict:
    """A ConversationIn written back as an item, as a sender could post it."""
    item = {
        "session_id": conversation.session_id,
        "turns": conversation.turns,
        "resolved_by_ai": conversation.resolved_by_ai,
        "topics": list(conversation.topics),
        "timestamp": conversation.timestamp.isoformat(),
        "channel": conversation.channel,
        "bot_version": conversation.bot_version,
        "ai_cost": None if conversation.ai_cost is None else str(conversation.ai_cost),
    }
    if conversation.avg_response_ms is not None:
        item["avg_response_ms"] = conversation.avg_response_ms
        item["response_count"] = conversation.response_count
    elif conversation.response_count == 0:
        item["response_times"] = []
    if conversation.csat_given:
        item["csat"] = conversation.csat
    return item


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=items())
def test_what_the_rules_make_of_an_item_is_a_fixed_point(item):
    result = outcome(item)
    if not result or isinstance(result[0], dict):
        return
    [conversation] = result
    [again] = outcome(as_item(conversation))
    assert exactly(again) == exactly(conversation)


@settings(max_examples=100, deadline=None)
@given(item=valid_items())
def test_ordinary_valid_items_are_accepted(item):
    # Without this the properties above could hold for rules that refuse everything.
    [conversation] = outcome(item)
    assert isinstance(conversation, ConversationIn)


# --- The clock, the messages, the schema ---------------------------------------------------


def test_a_conversation_from_the_rules_is_a_whole_conversation_in():
    # The rules fill a ConversationIn's __dict__ instead of calling its __init__.
    [conversation] = outcome(BASE)
    assert conversation == ConversationIn(session_id="s-1", timestamp=T0, turns=3, resolved_by_ai=True)
    assert list(vars(conversation)) == [field.name for field in dataclasses.fields(ConversationIn)]
    assert hash(conversation) == hash(dataclasses.replace(conversation))


def test_no_timestamp_means_time_of_receipt():
    received_at = datetime(2026, 3, 14, 11, 59, tzinfo=UTC)
    [conversation] = conversations_from_body(BASE, received_at=received_at)
    assert conversation.timestamp == received_at


def test_the_future_limit_follows_now():
    item = {**BASE, "timestamp": "2026-03-14T12:05:00Z"}
    assert conversations_from_body(item, received_at=T0, now=T0)
    with pytest.raises(IngestInvalid):
        conversations_from_body(item, received_at=T0, now=T0 - timedelta(microseconds=1))


def test_an_array_of_1000_is_1000_conversations():
    body = [{**BASE, "session_id": f"s-{i}", "topics": [f"T{i % 3}"], "ai_cost": 0.01} for i in range(1000)]
    conversations = conversations_from_body(body, received_at=T0)
    assert [c.session_id for c in conversations] == [f"s-{i}" for i in range(1000)]
    assert conversations[4].topics == ("t1",)


@pytest.mark.parametrize(
    ("override", "errors"),
    [
        ({"turns": -1}, [("turns", "Ensure this value is greater than or equal to 0.")]),
        ({"csat": 9}, [("csat", "Ensure this value is less than or equal to 5.")]),
        ({"turns": True}, [("turns", "Must be a JSON integer.")]),
        ({"resolved_by_ai": 1}, [("resolved_by_ai", "Must be a JSON boolean (true or false).")]),
        ({"avg_response_ms": "5"}, [("avg_response_ms", "Must be a JSON number.")]),
        ({"session_id": None}, [("session_id", "This field may not be null.")]),
        ({"session_id": ""}, [("session_id", "This field may not be blank.")]),
        ({"session_id": "x" * 256}, [("session_id", "Ensure this field has no more than 255 characters.")]),
        ({"session_id": "a\x00"}, [("session_id", "Null characters are not allowed.")]),
        ({"channel": "c" * 65}, [("channel", "Ensure this field has no more than 64 characters.")]),
        ({"topics": "billing"}, [("topics", 'Expected a list of items but got type "str".')]),
        ({"topics": ["a"] * 21}, [("topics", "Ensure this field has no more than 20 elements.")]),
        (
            {"topics": ["ok", " ", "x" * 101]},
            [
                ("topics.1", "A topic may not be empty or only whitespace."),
                ("topics.2", "A topic may have at most 100 characters (after normalizing)."),
            ],
        ),
        ({"timestamp": "yesterday"}, [("timestamp", "Datetime has wrong format. Use ISO 8601.")]),
        ({"timestamp": "1899-12-31T23:59:59Z"}, [("timestamp", "Must be between the years 1900 and 9000.")]),
        (
            {"timestamp": "2026-03-14T12:05:01Z"},
            [("timestamp", "May not be more than 5 minutes in the future.")],
        ),
        ({"ai_cost": "cheap"}, [("ai_cost", "A valid number is required.")]),
        ({"ai_cost": 0.0000001}, [("ai_cost", "Ensure that there are no more than 6 decimal places.")]),
        ({"ai_cost": -1}, [("ai_cost", "Ensure this value is greater than or equal to 0.")]),
        (
            {"response_times": [1], "avg_response_ms": 5},
            [("avg_response_ms", "Send response_times or avg_response_ms, not both.")],
        ),
        ({"response_count": 3}, [("response_count", "Only allowed together with avg_response_ms.")]),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else "",
)
def test_messages_are_worded_as_before(override, errors):
    # DRF's wording, kept so that senders and import logs read as they did.
    result = outcome({**BASE, **override})
    assert [(error["field"], error["message"]) for error in result] == errors


def test_a_missing_field_and_a_non_object_item_are_worded_as_before():
    result = outcome([{"turns": 1, "resolved_by_ai": True}, 42])
    assert result == [
        {"index": 0, "field": "session_id", "message": "This field is required."},
        {"index": 1, "field": None, "message": "Invalid data. Expected a dictionary, but got int."},
    ]


@pytest.mark.django_db
def test_the_schema_describes_the_request_from_the_same_definition(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    body = schema["paths"]["/api/conversations/"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ConversationInputRequest"}
    component = schema["components"]["schemas"]["ConversationInputRequest"]
    no_nul = "^[^\\x00]*$"
    assert component == {
        "type": "object",
        "description": "One conversation as the bot sends it: the tutorial's `log_conversation` plus "
        "extras.\n\nUnknown fields are ignored, so a line of the tutorial's analytics.jsonl posts as is.",
        "properties": {
            "session_id": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": no_nul},
            "turns": {"type": "integer", "minimum": 0, "maximum": 10000},
            "resolved_by_ai": {
                "type": "boolean",
                "description": "Whether the bot resolved it without a human. Required unless outcome is "
                "given (then derived from it: confirmed/assumed true, escalated/abandoned false; both "
                "given must agree).",
            },
            "topics": {
                "type": "array",
                "items": {"type": "string", "maxLength": 1000, "pattern": no_nul},
                "maxItems": 20,
                "nullable": True,
                "description": "Up to 20 topics; trimmed, inner whitespace collapsed, lowercased; "
                "1-100 characters after that; duplicates count once.",
            },
            "response_times": {
                "type": "array",
                "items": {"type": "number", "format": "double", "minimum": 0, "maximum": 86400000},
                "maxItems": 10000,
                "description": "Each bot response time in ms. Send this or avg_response_ms, not both.",
            },
            "avg_response_ms": {
                "type": "number",
                "format": "double",
                "minimum": 0,
                "maximum": 86400000,
                "nullable": True,
            },
            "response_count": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10000,
                "nullable": True,
                "description": "How many responses avg_response_ms averages "
                "(optional; only with avg_response_ms).",
            },
            "csat": {
                "type": "integer",
                "minimum": 1,
                "maximum": 5,
                "nullable": True,
                "description": "1-5, or null. Leave the field out to keep a score stored earlier.",
            },
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the conversation ended, ISO 8601; naive means UTC; "
                "default: time of receipt.",
            },
            "channel": {"type": "string", "maxLength": 64, "nullable": True, "pattern": no_nul},
            "bot_version": {"type": "string", "maxLength": 64, "nullable": True, "pattern": no_nul},
            "ai_cost": {
                "type": "number",
                "format": "double",
                "minimum": 0,
                "maximum": 1000000,
                "exclusiveMaximum": True,
                "nullable": True,
                "description": "What the bot cost for this conversation; default: the configured AI cost.",
            },
            "outcome": {
                "allOf": [{"$ref": "#/components/schemas/OutcomeEnum"}],
                "nullable": True,
                "description": "How it ended: confirmed/assumed (resolved by the AI: resolved_by_ai may be "
                "left out) or escalated/abandoned (not). Null or left out: not reported.",
            },
            "escalation_reason": {
                "type": "string",
                "maxLength": 100,
                "pattern": no_nul,
                "nullable": True,
                "description": "Why the AI did not resolve it (only when resolved_by_ai is false); "
                "normalized like a topic, 1-100 characters.",
            },
            "customer_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": no_nul,
                "nullable": True,
                "description": "The bot's id for the customer (a string), for repeat contacts. Stored only "
                "as a keyed hash. Leave the field out to keep the one stored earlier; null clears it.",
            },
        },
        "required": ["session_id", "turns"],
    }
    assert schema["components"]["schemas"]["OutcomeEnum"]["enum"] == [
        "confirmed",
        "assumed",
        "escalated",
        "abandoned",
    ]
