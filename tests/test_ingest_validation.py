"""The ingestion fast path (conversations/ingest_validation.py) against the serializer it mirrors.

The promise: whenever the fast path accepts an item, ConversationInputSerializer accepts it too
and `to_conversation_in` gives an equal ConversationIn (same types, same reprs: Decimal places,
time zone, -0.0). So whenever the serializer refuses, the fast path refuses, hands the body to
the serializer, and the API's answer is the serializer's, unchanged.
"""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import time_machine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from conversations.ingest_validation import (
    CHECKED_FIELDS,
    conversation_from_item,
    conversations_from_body,
    fast_conversations,
)
from conversations.models import FUTURE_TOLERANCE, MAX_RESPONSE_MS
from conversations.serializers import ConversationInputSerializer
from conversations.services import ConversationIn
from tests.conftest import T0

RECEIVED_AT = T0  # the API passes the same moment as default timestamp and as "now"


def drf_conversation(item) -> ConversationIn | None:
    """What the API did before the fast path: the serializer, then `to_conversation_in`."""
    serializer = ConversationInputSerializer(data=item)
    if not serializer.is_valid():
        return None
    return serializer.to_conversation_in(serializer.validated_data, received_at=RECEIVED_AT)


def fast_conversation(item) -> ConversationIn | None:
    return conversation_from_item(item, received_at=RECEIVED_AT, now=T0)


def exactly(conversation: ConversationIn | None):
    """A ConversationIn as comparable data that also tells 0.07 from 0.070000 and 0.0 from -0.0."""
    if conversation is None:
        return None
    values = {field.name: getattr(conversation, field.name) for field in dataclasses.fields(conversation)}
    return [(name, type(value), repr(value)) for name, value in values.items()]


def assert_fast_path_agrees(item) -> ConversationIn | None:
    with time_machine.travel(T0, tick=False):  # the serializer's clock for the future limit
        fast = fast_conversation(item)
        if fast is None:
            return None
        drf = drf_conversation(item)
    assert drf is not None, f"fast path accepted what the serializer refuses: {item!r}"
    assert fast == drf
    assert exactly(fast) == exactly(drf)
    return fast


def test_the_fast_path_checks_every_field_of_the_serializer():
    assert set(ConversationInputSerializer().fields) == CHECKED_FIELDS


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
    """Items the serializer accepts, in the many shapes a sender may use."""
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


# --- The property ------------------------------------------------------------------------


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=items())
@example(item={"session_id": "s", "turns": 1, "resolved_by_ai": True, "timestamp": "iso-8601"})
@example(item={"session_id": 7, "turns": 1, "resolved_by_ai": True, "channel": 5, "topics": [3]})
def test_fast_path_accepts_only_what_the_serializer_accepts_and_builds_the_same_item(item):
    assert_fast_path_agrees(item)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.lists(items(), max_size=4))
def test_fast_path_on_an_array_agrees_with_the_list_serializer(body):
    with time_machine.travel(T0, tick=False):
        fast = fast_conversations(body, received_at=RECEIVED_AT)
        if fast is None:
            return
        serializer = ConversationInputSerializer(data=body, many=True)
        assert serializer.is_valid(), serializer.errors
        to_item = ConversationInputSerializer().to_conversation_in
        drf = [to_item(attrs, received_at=RECEIVED_AT) for attrs in serializer.validated_data]
    assert [exactly(c) for c in fast] == [exactly(c) for c in drf]


@settings(max_examples=200, deadline=None)
@given(item=valid_items())
def test_ordinary_valid_items_take_the_fast_path(item):
    # Without this the fast path could refuse everything and still "agree".
    assert assert_fast_path_agrees(item) is not None


# --- Edge cases, spelled out ----------------------------------------------------------------

BASE = {"session_id": "s-1", "turns": 3, "resolved_by_ai": True}
FAST = "accepted by the fast path"
SERIALIZER_ONLY = "left to the serializer, which accepts"
INVALID = "refused by both"

EDGE_CASES = [
    # Strict JSON types: a bool is not an int, an int is not a bool, 5.0 is not an int.
    ({"turns": True}, INVALID),
    ({"turns": 5.0}, INVALID),
    ({"turns": "3"}, INVALID),
    ({"turns": 10**400}, INVALID),
    ({"turns": 10_000}, FAST),
    ({"turns": 10_001}, INVALID),
    ({"turns": 0}, FAST),
    ({"turns": -1}, INVALID),
    ({"resolved_by_ai": 1}, INVALID),
    ({"resolved_by_ai": 0}, INVALID),
    ({"resolved_by_ai": "true"}, INVALID),
    ({"resolved_by_ai": False}, FAST),
    ({"csat": True}, INVALID),
    ({"csat": 4.0}, INVALID),
    ({"csat": 10**400}, INVALID),
    ({"response_count": False, "avg_response_ms": 1}, INVALID),
    # Floats at their limits.
    ({"avg_response_ms": 0}, FAST),
    ({"avg_response_ms": -0.0}, FAST),
    ({"avg_response_ms": 5e-324}, FAST),
    ({"avg_response_ms": 86_400_000}, FAST),
    ({"avg_response_ms": 86_400_000.0}, FAST),
    ({"avg_response_ms": 86_400_000.00000001}, INVALID),
    ({"avg_response_ms": 1.7976931348623157e308}, INVALID),
    ({"avg_response_ms": -0.5}, INVALID),
    ({"avg_response_ms": -5e-324}, INVALID),
    ({"response_times": [100, -1]}, INVALID),
    ({"avg_response_ms": 10**400}, INVALID),
    ({"avg_response_ms": float("nan")}, INVALID),
    ({"avg_response_ms": float("inf")}, INVALID),
    ({"avg_response_ms": True}, INVALID),
    ({"response_times": [10**400]}, INVALID),
    ({"response_times": [1.7e308, 1.7e308]}, INVALID),
    ({"response_times": [0, 86_400_000]}, FAST),
    ({"response_times": [1.0] * 10_000}, FAST),
    ({"response_times": [1.0] * 10_001}, INVALID),
    ({"response_times": None}, INVALID),
    ({"response_times": []}, FAST),
    ({"response_times": [1], "avg_response_ms": 5}, INVALID),
    ({"response_times": [1], "avg_response_ms": None}, FAST),
    ({"response_times": [1], "avg_response_ms": None, "response_count": 1}, INVALID),
    ({"response_count": 3}, INVALID),
    ({"response_count": 3, "avg_response_ms": 10}, FAST),
    ({"response_count": None}, FAST),
    # Timestamps: with and without offsets, Z, dates only, the year limits, the future limit.
    ({"timestamp": "2026-03-14T11:00:00"}, FAST),
    ({"timestamp": "2026-03-14T11:00:00.123456"}, FAST),
    ({"timestamp": "2026-03-14T13:30:00+02:00"}, FAST),
    ({"timestamp": "2026-03-14T06:30:00-05:30"}, FAST),
    ({"timestamp": "2026-03-14T11:00:00Z"}, FAST),
    ({"timestamp": "2026-03-14T11:00:00z"}, INVALID),
    ({"timestamp": "2026-03-14 11:00"}, FAST),
    ({"timestamp": "2026-03-14"}, FAST),
    ({"timestamp": "2026-3-4T1:02"}, FAST),  # Django's regex, not fromisoformat
    ({"timestamp": "2026-03-14T11:00:00.1234567"}, FAST),
    ({"timestamp": "1899-12-31T23:59:59Z"}, INVALID),
    ({"timestamp": "1900-01-01T00:00:00"}, FAST),
    ({"timestamp": "1900-01-01T00:30:00+01:00"}, INVALID),  # 1899 in UTC
    ({"timestamp": "9001-01-01T00:00:00Z"}, INVALID),
    ({"timestamp": "0001-01-01T00:00:00+01:00"}, INVALID),
    ({"timestamp": "9999-12-31T23:59:59-01:00"}, INVALID),
    ({"timestamp": "2026-03-14T12:05:00Z"}, FAST),  # exactly 5 minutes ahead
    ({"timestamp": "2026-03-14T12:05:00.000001Z"}, INVALID),
    ({"timestamp": "2026-03-14T14:05:00+02:00"}, FAST),
    ({"timestamp": "2026-02-30T00:00:00"}, INVALID),
    ({"timestamp": "2026-03-14T11:00:00+24:00"}, INVALID),
    ({"timestamp": "iso-8601"}, SERIALIZER_ONLY),  # DRF's strptime fallback: 1900-01-01
    ({"timestamp": 1_700_000_000}, INVALID),
    ({"timestamp": None}, INVALID),
    ({"timestamp": ""}, INVALID),
    # Topics: normalized, deduplicated, at most 20, 1-100 characters after normalizing.
    ({"topics": ["  Billing   Issues ", "refund", "billing issues", "REFUND"]}, FAST),
    ({"topics": None}, FAST),
    ({"topics": []}, FAST),
    ({"topics": ["a"] * 20}, FAST),
    ({"topics": ["a"] * 21}, INVALID),  # counted before deduplication
    ({"topics": ["x" * 100]}, FAST),
    ({"topics": ["  " + "x" * 100 + "  "]}, FAST),
    ({"topics": ["x" * 101]}, INVALID),
    ({"topics": [" " * 999 + "x"]}, FAST),
    ({"topics": [" " * 1000 + "x"]}, INVALID),  # 1001 characters before normalizing
    ({"topics": ["   "]}, INVALID),
    ({"topics": [""]}, INVALID),
    ({"topics": ["a\x00"]}, INVALID),
    ({"topics": ["\ud800"]}, INVALID),
    ({"topics": ["İstanbul", "ISTANBUL"]}, FAST),
    ({"topics": "billing"}, INVALID),
    ({"topics": [None]}, INVALID),
    ({"topics": [5]}, SERIALIZER_ONLY),  # CharField turns 5 into "5"
    # ai_cost: DecimalField(max_digits=12, decimal_places=6, min_value=0).
    ({"ai_cost": "0.07"}, FAST),
    ({"ai_cost": 0.07}, FAST),
    ({"ai_cost": 1}, FAST),
    ({"ai_cost": 0}, FAST),
    ({"ai_cost": "-0"}, FAST),
    ({"ai_cost": " 1.5 "}, FAST),
    ({"ai_cost": "1e-3"}, FAST),
    ({"ai_cost": "1E+2"}, FAST),
    ({"ai_cost": "1_000"}, FAST),
    ({"ai_cost": "１２"}, FAST),
    ({"ai_cost": 0.123456}, FAST),
    ({"ai_cost": 123456.123456}, FAST),
    ({"ai_cost": "999999.999999"}, FAST),
    ({"ai_cost": "1000000"}, INVALID),
    ({"ai_cost": 0.1234567}, INVALID),
    ({"ai_cost": 0.0000001}, INVALID),  # str() gives 1e-07
    ({"ai_cost": "0.0000000"}, INVALID),
    ({"ai_cost": 1234567.5}, INVALID),
    ({"ai_cost": -0.01}, INVALID),
    ({"ai_cost": "-0.000001"}, INVALID),
    ({"ai_cost": ""}, FAST),  # blank means null to DecimalField
    ({"ai_cost": "  "}, FAST),
    ({"ai_cost": None}, FAST),
    ({"ai_cost": "NaN"}, INVALID),
    ({"ai_cost": "Infinity"}, INVALID),
    ({"ai_cost": "cheap"}, INVALID),
    ({"ai_cost": "1" * 1001}, INVALID),
    ({"ai_cost": True}, INVALID),
    ({"ai_cost": [1]}, INVALID),
    ({"ai_cost": 10**400}, INVALID),
    # Strings: NUL and lone surrogates refused, labels trimmed, session ids kept as sent.
    ({"session_id": "a\x00b"}, INVALID),
    ({"session_id": "a\udc80"}, INVALID),
    ({"session_id": "  padded  "}, FAST),
    ({"session_id": " "}, FAST),
    ({"session_id": ""}, INVALID),
    ({"session_id": "x" * 255}, FAST),
    ({"session_id": "x" * 256}, INVALID),
    ({"session_id": "😀" * 255}, FAST),
    ({"session_id": 123}, SERIALIZER_ONLY),
    ({"session_id": None}, INVALID),
    ({"channel": "  web  "}, FAST),
    ({"channel": "   "}, FAST),
    ({"channel": None}, FAST),
    ({"channel": "x" * 64 + "   "}, FAST),
    ({"channel": "x" * 65}, INVALID),
    ({"channel": "web\x00"}, INVALID),
    ({"bot_version": "\ud83d"}, INVALID),
    ({"bot_version": 2.5}, SERIALIZER_ONLY),
    ({"bot_version": ["2.5"]}, INVALID),
    # csat: absent keeps a stored score, null clears it.
    ({"csat": None}, FAST),
    ({"csat": 5}, FAST),
    ({"csat": 0}, INVALID),
    ({"csat": "5"}, INVALID),
    # Unknown fields are ignored, whatever they hold.
    ({"unknown": float("nan"), "notes": "\ud800\x00", "nested": {"a": [1, {}]}}, FAST),
]


@pytest.mark.parametrize(("override", "outcome"), EDGE_CASES, ids=[repr(o)[:50] for o, _ in EDGE_CASES])
def test_edge_cases(override, outcome):
    item = {**BASE, **override}
    fast = assert_fast_path_agrees(item)
    with time_machine.travel(T0, tick=False):
        drf = drf_conversation(item)
    actual = FAST if fast is not None else SERIALIZER_ONLY if drf is not None else INVALID
    assert actual == outcome


@pytest.mark.parametrize("missing", ["session_id", "turns", "resolved_by_ai"])
def test_a_missing_required_field_is_left_to_the_serializer(missing):
    item = dict(BASE)
    del item[missing]
    assert fast_conversation(item) is None


def test_normalized_values():
    item = {
        **BASE,
        "topics": ["  Billing   Issues ", "refund", "billing issues"],
        "response_times": [800, 1200.5, 0.0004],
        "timestamp": "2026-03-14T13:30:00+02:00",
        "channel": " email ",
        "bot_version": None,
        "ai_cost": 0.07,
    }
    assert assert_fast_path_agrees(item) == ConversationIn(
        session_id="s-1",
        timestamp=datetime(2026, 3, 14, 11, 30, tzinfo=UTC),
        turns=3,
        resolved_by_ai=True,
        topics=("billing issues", "refund"),
        avg_response_ms=666.833,  # 2000.5004 / 3, to the microsecond
        response_count=3,
        channel="email",
        bot_version="",
        ai_cost=Decimal("0.070000"),
        csat=None,
        csat_given=False,
    )


def test_csat_absent_and_null_differ():
    absent = assert_fast_path_agrees(dict(BASE))
    null = assert_fast_path_agrees({**BASE, "csat": None})
    assert (absent.csat, absent.csat_given) == (None, False)
    assert (null.csat, null.csat_given) == (None, True)


def test_no_timestamp_means_time_of_receipt():
    received_at = datetime(2026, 3, 14, 11, 59, tzinfo=UTC)
    conversation = conversation_from_item(BASE, received_at=received_at, now=T0)
    assert conversation.timestamp == received_at


def test_the_future_limit_follows_now():
    item = {**BASE, "timestamp": "2026-03-14T12:05:00Z"}
    assert conversation_from_item(item, received_at=T0, now=T0) is not None
    assert conversation_from_item(item, received_at=T0, now=T0 - timedelta(microseconds=1)) is None


# --- The whole body: one doubtful item sends all of it to the serializer ---------------------


@time_machine.travel(T0, tick=False)
def test_a_valid_array_is_converted_without_the_serializer(monkeypatch):
    def no_serializer(*args, **kwargs):
        raise AssertionError("the serializer ran")

    monkeypatch.setattr(ConversationInputSerializer, "is_valid", no_serializer)
    body = [{**BASE, "session_id": f"s-{i}", "topics": [f"T{i % 3}"], "ai_cost": 0.01} for i in range(1000)]
    conversations = conversations_from_body(body, received_at=T0)
    assert [c.session_id for c in conversations] == [f"s-{i}" for i in range(1000)]
    assert conversations[4].topics == ("t1",)


@time_machine.travel(T0, tick=False)
def test_an_invalid_array_raises_the_serializers_own_error():
    body = [dict(BASE), {**BASE, "csat": 9}, {**BASE, "turns": True, "ai_cost": "0.0000001"}]
    with pytest.raises(ValidationError) as raised:
        conversations_from_body(body, received_at=T0)

    serializer = ConversationInputSerializer(data=body, many=True)
    assert not serializer.is_valid()
    assert raised.value.detail == serializer.errors


@time_machine.travel(T0, tick=False)
def test_a_body_the_serializer_accepts_after_a_doubt_is_converted_by_it():
    body = [dict(BASE), {**BASE, "session_id": 42, "timestamp": "iso-8601"}]
    conversations = conversations_from_body(body, received_at=T0)
    assert [c.session_id for c in conversations] == ["s-1", "42"]
    assert conversations[1].timestamp == datetime(1900, 1, 1, tzinfo=UTC)


@time_machine.travel(T0, tick=False)
def test_a_single_object_is_one_item():
    assert conversations_from_body({**BASE, "csat": 4}, received_at=T0)[0].csat == 4
    with pytest.raises(ValidationError) as raised:
        conversations_from_body({**BASE, "csat": 9}, received_at=T0)
    assert raised.value.detail == {"csat": ["Ensure this value is less than or equal to 5."]}
