"""The ingest rules, pinned: what the API and import_jsonl accept, and what they make of it.

Each row is an item (BASE with some fields changed or added) and either the exact
ConversationIn it becomes (every field compared by type and repr, so Decimal places, the time
zone, -0.0 and the rounding of avg_response_ms count) or the fields its 400 names, in order
(each field once; the messages may change). Both ways in are checked against the one table:
`POST /api/conversations/` with the item alone and inside an array (whose errors carry the
item's index), and `manage.py import_jsonl` with one line per row. NaN and Infinity are not
JSON: the API refuses them while parsing, the importer reads them (the tracker may write them).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from conversations import services
from conversations.models import Conversation
from conversations.services import ConversationIn
from tests.conftest import T0

URL = "/api/conversations/"
BASE = {"session_id": "s-1", "turns": 3, "resolved_by_ai": True}
NAN, INF = float("nan"), float("inf")


@dataclasses.dataclass(frozen=True)
class Accepted:
    """The ConversationIn of BASE (received at T0, no timestamp sent) with these changes."""

    changes: dict

    def __init__(self, **changes):
        object.__setattr__(self, "changes", changes)

    def conversation(self) -> ConversationIn:
        base = ConversationIn(session_id="s-1", timestamp=T0, turns=3, resolved_by_ai=True)
        return dataclasses.replace(base, **self.changes)


@dataclasses.dataclass(frozen=True)
class Refused:
    """The fields the 400 names, in order (None: the item as a whole)."""

    fields: tuple[str | None, ...]

    def __init__(self, *fields: str | None):
        object.__setattr__(self, "fields", fields)


def exactly(conversation: ConversationIn) -> list[tuple[str, type, str]]:
    """Comparable data that also tells 0.07 from 0.070000, 0.0 from -0.0 and UTC from +00:00."""
    return [
        (field.name, type(value), repr(value))
        for field in dataclasses.fields(conversation)
        for value in [getattr(conversation, field.name)]
    ]


def error_fields(errors: list[dict]) -> tuple[str | None, ...]:
    fields: list[str | None] = []
    for error in errors:
        if error["field"] not in fields:
            fields.append(error["field"])
    return tuple(fields)


CASES = [
    # required fields and nulls
    ({}, Accepted()),
    ({"session_id": None}, Refused("session_id")),
    ({"turns": None}, Refused("turns")),
    ({"resolved_by_ai": None}, Refused("resolved_by_ai")),
    ({"topics": None}, Accepted()),
    ({"response_times": None}, Refused("response_times")),
    ({"avg_response_ms": None}, Accepted()),
    ({"response_count": None}, Accepted()),
    ({"csat": None}, Accepted(csat_given=True)),
    ({"timestamp": None}, Refused("timestamp")),
    ({"channel": None}, Accepted()),
    ({"bot_version": None}, Accepted()),
    ({"ai_cost": None}, Accepted()),
    # session_id
    ({"session_id": ""}, Refused("session_id")),
    ({"session_id": " "}, Accepted(session_id=" ")),
    ({"session_id": "  padded  "}, Accepted(session_id="  padded  ")),
    ({"session_id": "x" * 255}, Accepted(session_id="x" * 255)),
    ({"session_id": "x" * 256}, Refused("session_id")),
    ({"session_id": "😀" * 255}, Accepted(session_id="😀" * 255)),
    ({"session_id": "😀" * 256}, Refused("session_id")),
    ({"session_id": "a\x00b"}, Refused("session_id")),
    ({"session_id": "a\udc80"}, Refused("session_id")),
    ({"session_id": 123}, Accepted(session_id="123")),
    ({"session_id": 0}, Accepted(session_id="0")),
    ({"session_id": -7}, Accepted(session_id="-7")),
    ({"session_id": 2.5}, Accepted(session_id="2.5")),
    ({"session_id": 1e20}, Accepted(session_id="1e+20")),
    ({"session_id": -0.0}, Accepted(session_id="-0.0")),
    ({"session_id": 10**300}, Refused("session_id")),
    ({"session_id": True}, Refused("session_id")),
    ({"session_id": ["s"]}, Refused("session_id")),
    ({"session_id": {"a": 1}}, Refused("session_id")),
    ({"session_id": NAN}, Accepted(session_id="nan")),
    # turns
    ({"turns": 0}, Accepted(turns=0)),
    ({"turns": 10_000}, Accepted(turns=10000)),
    ({"turns": 10_001}, Refused("turns")),
    ({"turns": -1}, Refused("turns")),
    ({"turns": True}, Refused("turns")),
    ({"turns": False}, Refused("turns")),
    ({"turns": 5.0}, Refused("turns")),
    ({"turns": 2.5}, Refused("turns")),
    ({"turns": "3"}, Refused("turns")),
    ({"turns": 10**400}, Refused("turns")),
    ({"turns": -(10**400)}, Refused("turns")),
    ({"turns": 2**63}, Refused("turns")),
    ({"turns": [3]}, Refused("turns")),
    # resolved_by_ai
    ({"resolved_by_ai": False}, Accepted(resolved_by_ai=False)),
    ({"resolved_by_ai": 1}, Refused("resolved_by_ai")),
    ({"resolved_by_ai": 0}, Refused("resolved_by_ai")),
    ({"resolved_by_ai": "true"}, Refused("resolved_by_ai")),
    ({"resolved_by_ai": "yes"}, Refused("resolved_by_ai")),
    ({"resolved_by_ai": 1.0}, Refused("resolved_by_ai")),
    ({"resolved_by_ai": [True]}, Refused("resolved_by_ai")),
    # topics
    ({"topics": []}, Accepted()),
    (
        {"topics": ["  Billing   Issues ", "refund", "billing issues", "REFUND"]},
        Accepted(topics=("billing issues", "refund")),
    ),
    ({"topics": ["a"] * 20}, Accepted(topics=("a",))),
    ({"topics": ["a"] * 21}, Refused("topics")),
    ({"topics": [f"t{i}" for i in range(21)]}, Refused("topics")),
    ({"topics": ["x" * 100]}, Accepted(topics=("x" * 100,))),
    ({"topics": ["  " + "x" * 100 + "  "]}, Accepted(topics=("x" * 100,))),
    ({"topics": ["x" * 101]}, Refused("topics.0")),
    ({"topics": [" " * 999 + "x"]}, Accepted(topics=("x",))),
    ({"topics": [" " * 1000 + "x"]}, Refused("topics.0")),
    ({"topics": ["x" * 1001]}, Refused("topics.0")),
    ({"topics": ["   "]}, Refused("topics.0")),
    ({"topics": [""]}, Refused("topics.0")),
    ({"topics": ["ok", "   "]}, Refused("topics.1")),
    ({"topics": ["", "ok", "\t"]}, Refused("topics.0", "topics.2")),
    ({"topics": ["a\x00"]}, Refused("topics.0")),
    ({"topics": ["\ud800"]}, Refused("topics.0")),
    ({"topics": ["İstanbul", "ISTANBUL"]}, Accepted(topics=("i̇stanbul", "istanbul"))),
    ({"topics": ["Straße", "STRASSE"]}, Accepted(topics=("straße", "strasse"))),
    ({"topics": ["a\u2003b", "a b", "a\u00a0 b"]}, Accepted(topics=("a b",))),
    ({"topics": ["a\u200bb"]}, Accepted(topics=("a\u200bb",))),
    ({"topics": ["\x1cbilling\x1f"]}, Accepted(topics=("billing",))),
    ({"topics": "billing"}, Refused("topics")),
    ({"topics": [None]}, Refused("topics.0")),
    ({"topics": [5]}, Accepted(topics=("5",))),
    ({"topics": [2.5, "2.5"]}, Accepted(topics=("2.5",))),
    ({"topics": [True]}, Refused("topics.0")),
    ({"topics": [["x"]]}, Refused("topics.0")),
    ({"topics": {"a": 1}}, Refused("topics")),
    ({"topics": 5}, Refused("topics")),
    ({"topics": ["   ", "x" * 1001]}, Refused("topics.1")),
    ({"topics": ["   ", "x" * 101, "ok"]}, Refused("topics.0", "topics.1")),
    ({"topics": ["a"] * 20 + ["   "]}, Refused("topics")),
    ({"topics": ["a"] * 20 + [None]}, Refused("topics.20")),
    ({"topics": [None, 5, "x" * 1001]}, Refused("topics.0", "topics.2")),
    # response_times
    ({"response_times": []}, Accepted(response_count=0)),
    ({"response_times": [800, 1200.5, 0.0004]}, Accepted(avg_response_ms=666.833, response_count=3)),
    ({"response_times": [0, 86_400_000]}, Accepted(avg_response_ms=43200000.0, response_count=2)),
    ({"response_times": [1, 2]}, Accepted(avg_response_ms=1.5, response_count=2)),
    ({"response_times": [0.0005]}, Accepted(avg_response_ms=0.001, response_count=1)),
    ({"response_times": [0.0015]}, Accepted(avg_response_ms=0.002, response_count=1)),
    ({"response_times": [-0.0]}, Accepted(avg_response_ms=0.0, response_count=1)),
    ({"response_times": [1.0] * 10_000}, Accepted(avg_response_ms=1.0, response_count=10000)),
    ({"response_times": [1.0] * 10_001}, Refused("response_times")),
    ({"response_times": [1.0] * 10_000 + [-1]}, Refused("response_times.10000")),
    ({"response_times": [100, -1]}, Refused("response_times.1")),
    ({"response_times": [100, "fast"]}, Refused("response_times.1")),
    ({"response_times": [True]}, Refused("response_times.0")),
    ({"response_times": ["5"]}, Refused("response_times.0")),
    ({"response_times": [10**400]}, Refused("response_times.0")),
    ({"response_times": [1.7e308, 1.7e308]}, Refused("response_times.0", "response_times.1")),
    ({"response_times": [NAN]}, Refused("response_times.0")),
    ({"response_times": [INF]}, Refused("response_times.0")),
    ({"response_times": [None]}, Refused("response_times.0")),
    ({"response_times": 5}, Refused("response_times")),
    ({"response_times": "1,2"}, Refused("response_times")),
    ({"response_times": [-1, "x", 5]}, Refused("response_times.0", "response_times.1")),
    ({"response_times": [1 / 3, 2 / 3]}, Accepted(avg_response_ms=0.5, response_count=2)),
    # avg_response_ms
    ({"avg_response_ms": 0}, Accepted(avg_response_ms=0.0)),
    ({"avg_response_ms": -0.0}, Accepted(avg_response_ms=-0.0)),
    ({"avg_response_ms": 5e-324}, Accepted(avg_response_ms=0.0)),
    ({"avg_response_ms": 86_400_000}, Accepted(avg_response_ms=86400000.0)),
    ({"avg_response_ms": 86_400_000.0}, Accepted(avg_response_ms=86400000.0)),
    ({"avg_response_ms": 86_400_001}, Refused("avg_response_ms")),
    ({"avg_response_ms": 86_400_000.00000001}, Refused("avg_response_ms")),
    ({"avg_response_ms": 1.7976931348623157e308}, Refused("avg_response_ms")),
    ({"avg_response_ms": -0.5}, Refused("avg_response_ms")),
    ({"avg_response_ms": -5e-324}, Refused("avg_response_ms")),
    ({"avg_response_ms": 10**400}, Refused("avg_response_ms")),
    ({"avg_response_ms": NAN}, Refused("avg_response_ms")),
    ({"avg_response_ms": INF}, Refused("avg_response_ms")),
    ({"avg_response_ms": True}, Refused("avg_response_ms")),
    ({"avg_response_ms": "5"}, Refused("avg_response_ms")),
    ({"avg_response_ms": 950.0}, Accepted(avg_response_ms=950.0)),
    ({"avg_response_ms": 1000.0005}, Accepted(avg_response_ms=1000.0)),
    ({"avg_response_ms": 0.0015}, Accepted(avg_response_ms=0.002)),
    ({"avg_response_ms": 123.4567}, Accepted(avg_response_ms=123.457)),
    ({"avg_response_ms": 7}, Accepted(avg_response_ms=7.0)),
    # response_count and the pairing rules
    ({"response_count": 3}, Refused("response_count")),
    ({"response_count": 3, "avg_response_ms": 10}, Accepted(avg_response_ms=10.0, response_count=3)),
    ({"response_count": 0, "avg_response_ms": 10}, Accepted(avg_response_ms=10.0, response_count=0)),
    ({"response_count": 10_000, "avg_response_ms": 10}, Accepted(avg_response_ms=10.0, response_count=10000)),
    ({"response_count": 10_001, "avg_response_ms": 10}, Refused("response_count")),
    ({"response_count": -1, "avg_response_ms": 10}, Refused("response_count")),
    ({"response_count": 2**40, "avg_response_ms": 1000}, Refused("response_count")),
    ({"response_count": False, "avg_response_ms": 1}, Refused("response_count")),
    ({"response_count": 3.0, "avg_response_ms": 1}, Refused("response_count")),
    ({"response_count": 3, "avg_response_ms": None}, Refused("response_count")),
    ({"response_times": [1], "avg_response_ms": 5}, Refused("avg_response_ms")),
    ({"response_times": [1], "avg_response_ms": None}, Accepted(avg_response_ms=1.0, response_count=1)),
    ({"response_times": [1], "response_count": 1}, Refused("response_count")),
    ({"response_times": [1], "avg_response_ms": None, "response_count": 1}, Refused("response_count")),
    ({"response_times": [], "avg_response_ms": 5}, Refused("avg_response_ms")),
    ({"response_times": [1], "avg_response_ms": 5, "response_count": 3}, Refused("avg_response_ms")),
    ({"response_times": [1], "avg_response_ms": 5, "turns": -1}, Refused("turns")),
    ({"response_count": 3, "csat": 9}, Refused("csat")),
    ({"response_times": [-1], "avg_response_ms": 5}, Refused("response_times.0")),
    ({"avg_response_ms": -1, "response_count": 3}, Refused("avg_response_ms")),
    # csat
    ({"csat": 1}, Accepted(csat=1, csat_given=True)),
    ({"csat": 5}, Accepted(csat=5, csat_given=True)),
    ({"csat": 0}, Refused("csat")),
    ({"csat": 6}, Refused("csat")),
    ({"csat": 9}, Refused("csat")),
    ({"csat": True}, Refused("csat")),
    ({"csat": 4.0}, Refused("csat")),
    ({"csat": 4.5}, Refused("csat")),
    ({"csat": "5"}, Refused("csat")),
    ({"csat": 10**400}, Refused("csat")),
    ({"csat": [5]}, Refused("csat")),
    # timestamp
    ({"timestamp": "2026-03-14T11:00:00"}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    (
        {"timestamp": "2026-03-14T11:00:00.123456"},
        Accepted(timestamp=datetime(2026, 3, 14, 11, 0, 0, 123456, tzinfo=UTC)),
    ),
    (
        {"timestamp": "2026-03-14T10:15:30.123456"},
        Accepted(timestamp=datetime(2026, 3, 14, 10, 15, 30, 123456, tzinfo=UTC)),
    ),
    (
        {"timestamp": "2026-03-14T13:30:00+02:00"},
        Accepted(timestamp=datetime(2026, 3, 14, 11, 30, tzinfo=UTC)),
    ),
    ({"timestamp": "2026-03-14T06:30:00-05:30"}, Accepted()),
    ({"timestamp": "2026-03-14T11:00:00Z"}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T11:00:00z"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14 11:00"}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14"}, Accepted(timestamp=datetime(2026, 3, 14, 0, 0, tzinfo=UTC))),
    ({"timestamp": "2026-3-4T1:02"}, Accepted(timestamp=datetime(2026, 3, 4, 1, 2, tzinfo=UTC))),
    (
        {"timestamp": "2026-03-14T11:00:00.1234567"},
        Accepted(timestamp=datetime(2026, 3, 14, 11, 0, 0, 123456, tzinfo=UTC)),
    ),
    (
        {"timestamp": "2026-03-14T11:00:00,5"},
        Accepted(timestamp=datetime(2026, 3, 14, 11, 0, 0, 500000, tzinfo=UTC)),
    ),
    ({"timestamp": "20260314T110000"}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    ({"timestamp": "2026-W11-6T10:00"}, Accepted(timestamp=datetime(2026, 3, 14, 10, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T11"}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T11:00:00+0200"}, Accepted(timestamp=datetime(2026, 3, 14, 9, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T11:00:00 +0200"}, Accepted(timestamp=datetime(2026, 3, 14, 9, 0, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T11:00:00+02"}, Accepted(timestamp=datetime(2026, 3, 14, 9, 0, tzinfo=UTC))),
    ({"timestamp": " 2026-03-14T11:00:00"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14T11:00:00 "}, Accepted(timestamp=datetime(2026, 3, 14, 11, 0, tzinfo=UTC))),
    ({"timestamp": "1899-12-31T23:59:59Z"}, Refused("timestamp")),
    ({"timestamp": "1900-01-01T00:00:00"}, Accepted(timestamp=datetime(1900, 1, 1, 0, 0, tzinfo=UTC))),
    ({"timestamp": "1900-01-01T00:30:00+01:00"}, Refused("timestamp")),
    ({"timestamp": "9000-12-31T23:59:59"}, Refused("timestamp")),
    ({"timestamp": "9001-01-01T00:00:00Z"}, Refused("timestamp")),
    ({"timestamp": "0001-01-01T00:00:00+01:00"}, Refused("timestamp")),
    ({"timestamp": "9999-12-31T23:59:59-01:00"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14T12:05:00Z"}, Accepted(timestamp=datetime(2026, 3, 14, 12, 5, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T12:05:00"}, Accepted(timestamp=datetime(2026, 3, 14, 12, 5, tzinfo=UTC))),
    ({"timestamp": "2026-03-14T12:05:00.000001Z"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14T12:05:01Z"}, Refused("timestamp")),
    (
        {"timestamp": "2026-03-14T14:05:00+02:00"},
        Accepted(timestamp=datetime(2026, 3, 14, 12, 5, tzinfo=UTC)),
    ),
    ({"timestamp": "2026-03-15"}, Refused("timestamp")),
    ({"timestamp": "2026-02-30T00:00:00"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14T24:00"}, Refused("timestamp")),
    ({"timestamp": "2026-03-14T11:00:00+24:00"}, Refused("timestamp")),
    # DRF's DateTimeField, failing ISO 8601, tried strptime(value, "iso-8601"), which read the
    # format's own name as 1900-01-01; the one definition refuses it.
    ({"timestamp": "iso-8601"}, Refused("timestamp")),
    ({"timestamp": "ISO-8601"}, Refused("timestamp")),
    ({"timestamp": "yesterday"}, Refused("timestamp")),
    ({"timestamp": ""}, Refused("timestamp")),
    ({"timestamp": " "}, Refused("timestamp")),
    ({"timestamp": 1_700_000_000}, Refused("timestamp")),
    ({"timestamp": 1.5}, Refused("timestamp")),
    ({"timestamp": True}, Refused("timestamp")),
    ({"timestamp": ["2026-03-14"]}, Refused("timestamp")),
    # channel and bot_version
    ({"channel": "  web  "}, Accepted(channel="web")),
    ({"channel": "   "}, Accepted()),
    ({"channel": ""}, Accepted()),
    ({"channel": "x" * 64}, Accepted(channel="x" * 64)),
    ({"channel": "x" * 64 + "   "}, Accepted(channel="x" * 64)),
    ({"channel": "x" * 65}, Refused("channel")),
    ({"channel": "web\x00"}, Refused("channel")),
    ({"channel": "\u2003web\u00a0"}, Accepted(channel="web")),
    ({"channel": "\x1cweb\x1f"}, Accepted(channel="web")),
    ({"channel": "\u200bweb"}, Accepted(channel="\u200bweb")),
    ({"channel": "\ud800"}, Refused("channel")),
    ({"channel": 5}, Accepted(channel="5")),
    ({"channel": 2.5}, Accepted(channel="2.5")),
    ({"channel": True}, Refused("channel")),
    ({"channel": ["web"]}, Refused("channel")),
    ({"channel": 10**70}, Refused("channel")),
    ({"bot_version": "2.1"}, Accepted(bot_version="2.1")),
    ({"bot_version": " 2.1 "}, Accepted(bot_version="2.1")),
    ({"bot_version": "v" * 65}, Refused("bot_version")),
    ({"bot_version": "\ud83d"}, Refused("bot_version")),
    ({"bot_version": 2.5}, Accepted(bot_version="2.5")),
    ({"bot_version": 2}, Accepted(bot_version="2")),
    ({"bot_version": ["2.5"]}, Refused("bot_version")),
    ({"bot_version": False}, Refused("bot_version")),
    # ai_cost
    ({"ai_cost": "0.07"}, Accepted(ai_cost=Decimal("0.070000"))),
    ({"ai_cost": 0.07}, Accepted(ai_cost=Decimal("0.070000"))),
    ({"ai_cost": 1}, Accepted(ai_cost=Decimal("1.000000"))),
    ({"ai_cost": 0}, Accepted(ai_cost=Decimal("0.000000"))),
    ({"ai_cost": "-0"}, Accepted(ai_cost=Decimal("-0.000000"))),
    ({"ai_cost": -0.0}, Accepted(ai_cost=Decimal("-0.000000"))),
    ({"ai_cost": " 1.5 "}, Accepted(ai_cost=Decimal("1.500000"))),
    ({"ai_cost": "1e-3"}, Accepted(ai_cost=Decimal("0.001000"))),
    ({"ai_cost": "1E+2"}, Accepted(ai_cost=Decimal("100.000000"))),
    ({"ai_cost": "1_000"}, Accepted(ai_cost=Decimal("1000.000000"))),
    ({"ai_cost": "１２"}, Accepted(ai_cost=Decimal("12.000000"))),
    ({"ai_cost": 0.123456}, Accepted(ai_cost=Decimal("0.123456"))),
    ({"ai_cost": 123456.123456}, Accepted(ai_cost=Decimal("123456.123456"))),
    ({"ai_cost": "999999.999999"}, Accepted(ai_cost=Decimal("999999.999999"))),
    ({"ai_cost": 999999}, Accepted(ai_cost=Decimal("999999.000000"))),
    ({"ai_cost": "1000000"}, Refused("ai_cost")),
    ({"ai_cost": 1000000}, Refused("ai_cost")),
    ({"ai_cost": 0.1234567}, Refused("ai_cost")),
    ({"ai_cost": 0.0000001}, Refused("ai_cost")),
    ({"ai_cost": "0.0000000"}, Refused("ai_cost")),
    ({"ai_cost": "1.0000000"}, Refused("ai_cost")),
    ({"ai_cost": 1234567.5}, Refused("ai_cost")),
    ({"ai_cost": -0.01}, Refused("ai_cost")),
    ({"ai_cost": "-0.000001"}, Refused("ai_cost")),
    ({"ai_cost": ""}, Accepted()),
    ({"ai_cost": "  "}, Accepted()),
    ({"ai_cost": "NaN"}, Refused("ai_cost")),
    ({"ai_cost": "Infinity"}, Refused("ai_cost")),
    ({"ai_cost": "-Infinity"}, Refused("ai_cost")),
    ({"ai_cost": "sNaN"}, Refused("ai_cost")),
    ({"ai_cost": "cheap"}, Refused("ai_cost")),
    ({"ai_cost": "1" * 1001}, Refused("ai_cost")),
    ({"ai_cost": "0." + "0" * 995 + "1"}, Refused("ai_cost")),
    ({"ai_cost": True}, Refused("ai_cost")),
    ({"ai_cost": [1]}, Refused("ai_cost")),
    ({"ai_cost": {"a": 1}}, Refused("ai_cost")),
    ({"ai_cost": 10**400}, Refused("ai_cost")),
    ({"ai_cost": 1e-05}, Accepted(ai_cost=Decimal("0.000010"))),
    ({"ai_cost": ".5"}, Accepted(ai_cost=Decimal("0.500000"))),
    ({"ai_cost": "5."}, Accepted(ai_cost=Decimal("5.000000"))),
    ({"ai_cost": NAN}, Refused("ai_cost")),
    ({"ai_cost": INF}, Refused("ai_cost")),
    # unknown fields and several errors at once
    ({"unknown": NAN, "notes": "\ud800\x00", "nested": {"a": [1, {}]}}, Accepted()),
    ({"Turns": "x", "SESSION_ID": None}, Accepted()),
    ({"turns": -1, "csat": 9}, Refused("turns", "csat")),
    ({"csat": 9, "turns": -1}, Refused("turns", "csat")),
    (
        {
            "session_id": "",
            "turns": True,
            "resolved_by_ai": 1,
            "topics": ["   "],
            "response_times": [-1],
            "csat": 0,
            "timestamp": "x",
            "channel": "c" * 65,
            "bot_version": "v" * 65,
            "ai_cost": -1,
        },
        Refused(
            "session_id",
            "turns",
            "resolved_by_ai",
            "topics.0",
            "response_times.0",
            "csat",
            "timestamp",
            "channel",
            "bot_version",
            "ai_cost",
        ),
    ),
]


def item_of(override: dict) -> dict:
    return {**BASE, **override}


def is_json(item: dict) -> bool:
    try:
        json.dumps(item, allow_nan=False)
    except ValueError:
        return False
    return True


@pytest.fixture
def ingested(monkeypatch) -> list[list[ConversationIn]]:
    """The items each call of the ingestion service received."""
    calls: list[list[ConversationIn]] = []
    original = services.conversations_ingest

    def spy(*, items, **kwargs):
        calls.append(list(items))
        return original(items=items, **kwargs)

    monkeypatch.setattr(services, "conversations_ingest", spy)
    return calls


def post(client, body):
    return client.post(URL, json.dumps(body), content_type="application/json")


IDS = [f"{number}-{repr(override)[:40]}" for number, (override, _) in enumerate(CASES)]


@pytest.mark.django_db
@pytest.mark.parametrize(("override", "expected"), CASES, ids=IDS)
def test_the_api_applies_the_rules(ingest_client, frozen_now, ingested, override, expected):
    item = item_of(override)
    if not is_json(item):
        response = ingest_client.post(URL, json.dumps(item), content_type="application/json")
        assert response.status_code == 400
        assert response.json()["detail"].startswith("JSON parse error")
        return

    single = post(ingest_client, item)
    in_array = post(ingest_client, [item_of({"session_id": "other"}), item])

    if isinstance(expected, Accepted):
        assert single.status_code in (200, 201), single.json()
        assert in_array.status_code == 200, in_array.json()
        [[from_single], [_, from_array]] = ingested
        assert exactly(from_single) == exactly(expected.conversation())
        assert exactly(from_array) == exactly(expected.conversation())
    else:
        assert (single.status_code, in_array.status_code) == (400, 400)
        assert ingested == []
        assert Conversation.objects.count() == 0
        single_errors, array_errors = single.json()["errors"], in_array.json()["errors"]
        assert all("index" not in error for error in single_errors), single_errors
        assert error_fields(single_errors) == expected.fields, single_errors
        assert {error["index"] for error in array_errors} == {1}, array_errors
        assert error_fields(array_errors) == expected.fields, array_errors


@pytest.mark.django_db(transaction=True)  # import_jsonl writes from threads of its own
def test_import_jsonl_applies_the_same_rules(frozen_now, monkeypatch, tmp_path):
    prepared: list[ConversationIn] = []
    original = services.conversations_ingest_prepare

    def spy(*, items, **kwargs):
        prepared.extend(items)
        return original(items=items, **kwargs)

    monkeypatch.setattr(services, "conversations_ingest_prepare", spy)
    path = tmp_path / "analytics.jsonl"
    path.write_text("".join(json.dumps(item_of(override)) + "\n" for override, _ in CASES))
    stderr = StringIO()
    with pytest.raises(SystemExit):  # some lines are bad
        call_command("import_jsonl", str(path), "--no-progress", stdout=StringIO(), stderr=stderr)

    # "PATH:LINE: field: message; field: message" per refused line
    reasons = {}
    for report in stderr.getvalue().splitlines():
        _, line, reason = report.split(":", 2)
        reasons[int(line)] = reason.strip()
    accepted = iter(prepared)
    for line, (override, expected) in enumerate(CASES, start=1):
        if isinstance(expected, Accepted):
            assert line not in reasons, (override, reasons[line])
            assert exactly(next(accepted)) == exactly(expected.conversation()), override
        else:
            assert line in reasons, override
            fields = error_fields([{"field": part.split(": ")[0]} for part in reasons[line].split("; ")])
            assert fields == expected.fields, (override, reasons[line])
    assert next(accepted, None) is None


# --- The body as a whole --------------------------------------------------------------------


@pytest.mark.django_db
def test_items_that_are_not_objects_are_named_by_index(ingest_client, frozen_now, ingested):
    response = post(ingest_client, [BASE, 42, "x", None, [], {}, {"session_id": "s-2"}])

    assert response.status_code == 400
    assert [(error["index"], error["field"]) for error in response.json()["errors"]] == [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
        (5, "session_id"),
        (5, "turns"),
        (5, "resolved_by_ai"),
        (6, "turns"),
        (6, "resolved_by_ai"),
    ]
    assert ingested == []


@pytest.mark.django_db
def test_every_bad_item_of_an_array_is_named(ingest_client, frozen_now, ingested):
    body = [BASE, item_of({"csat": 9}), BASE, item_of({"turns": True, "ai_cost": "0.0000001"})]
    response = post(ingest_client, body)

    assert response.status_code == 400
    assert [(error["index"], error["field"]) for error in response.json()["errors"]] == [
        (1, "csat"),
        (3, "turns"),
        (3, "ai_cost"),
    ]


@pytest.mark.django_db
def test_an_empty_array_is_accepted(ingest_client, ingested):
    response = post(ingest_client, [])
    assert (response.status_code, response.json()) == (200, {"created": 0, "updated": 0})
