"""The server's ingest rules, read from `rules.json` (written by the server's
`manage.py client_rules` from its OpenAPI document; never edited by hand).

Each property of the request schema becomes one check: its JSON type, nullability, ranges,
lengths, item counts, enum and pattern, plus the limits the schema cannot say (a timestamp's
years and how far ahead it may be, a decimal's places). A value the schema refuses raises
`ValueError` naming the field; the messages never show the value (a customer id must not
reach a log line through an exception). What the schema does not say (topics normalized,
the rules between fields such as `outcome` against `resolved_by_ai`) is the server's to check:
such a conversation is dead-lettered with the server's message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

RULES: dict[str, Any] = json.loads(
    resources.files(__package__).joinpath("rules.json").read_text(encoding="utf-8")
)
LIMITS: dict[str, Any] = RULES["limits"]
PATHS: dict[str, str] = RULES["paths"]

Check = Callable[[Any], Any]  # returns the value as it is to be sent (JSON-ready), or raises


# Properties whose schema the client cannot read (checked by the server only); a test keeps
# this empty, so a new construct in the server's schema is noticed.
UNCHECKED: list[str] = []


class Invalid(ValueError):
    """A value the server's schema refuses (a ValueError, as the issue promises)."""


def _fail(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}")


def _parse_timestamp(text: str) -> datetime | None:
    """ISO 8601 as datetime.fromisoformat reads it; a trailing Z is UTC (Python < 3.11 does
    not read it)."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _timestamp_check(field: str) -> Check:
    first_year, last_year = LIMITS["timestamp_years"]
    ahead = timedelta(seconds=LIMITS["timestamp_future_seconds"])

    def check(value: Any) -> str:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            parsed = _parse_timestamp(value)
            if parsed is None:
                raise _fail(field, "must be an ISO 8601 date and time")
            moment = parsed
        else:
            raise _fail(field, "must be a datetime or an ISO 8601 string")
        if moment.utcoffset() is None:  # naive means UTC, as on the server
            moment = moment.replace(tzinfo=timezone.utc)
        if not first_year <= moment.astimezone(timezone.utc).year <= last_year:
            raise _fail(field, f"must be between the years {first_year} and {last_year}")
        if moment > datetime.now(timezone.utc) + ahead:
            raise _fail(field, f"may not be more than {ahead.total_seconds():.0f} seconds in the future")
        return value if isinstance(value, str) else value.isoformat()

    return check


def _decimal_places(field: str, rule: dict[str, int]) -> Callable[[Any], None]:
    """The server reads str() of the number as a Decimal and refuses more places or digits
    than its column has (so 0.1 + 0.2 = 0.30000000000000004 is refused: round it first)."""
    places, whole = rule["places"], rule["digits"] - rule["places"]

    def check(value: Any) -> None:
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _fail(field, "must be a number") from None
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise _fail(field, f"may have at most {places} decimal places")
        if number.adjusted() >= whole:
            raise _fail(field, f"may have at most {whole} digits before the decimal point")

    return check


def compile_property(field: str, schema: dict[str, Any]) -> Check:
    """One property's check, built once from its JSON schema (OpenAPI 3.0 dialect): a quick
    test that lets the usual values through as they are, and the full check, which converts
    (a tuple, a Decimal, a datetime) or raises naming the field."""
    nullable = bool(schema.get("nullable"))
    full = _full_check(field, schema)
    quick = _quick_test(field, schema)

    def check(value: Any) -> Any:
        if quick(value):
            return value
        if value is None:
            if nullable:
                return None
            raise _fail(field, "may not be None")
        return full(value)

    return check


def _bounds(schema: dict[str, Any]) -> tuple[float, float, bool]:
    low = schema.get("minimum", -math.inf)
    high = schema.get("maximum", math.inf)
    return low, high, schema.get("exclusiveMaximum") is True


def _quick_test(field: str, schema: dict[str, Any]) -> Callable[[Any], bool]:
    """True for a value that certainly passes and is sent as it is; False: ask the full check."""
    kind = schema.get("type")
    if kind == "integer":
        low, high, exclusive = _bounds(schema)
        if exclusive:
            return lambda value: type(value) is int and low <= value < high
        return lambda value: type(value) is int and low <= value <= high
    if kind == "number" and field not in LIMITS["decimals"]:
        low, high, exclusive = _bounds(schema)
        if exclusive:
            return lambda value: (type(value) is float or type(value) is int) and low <= value < high
        return lambda value: (type(value) is float or type(value) is int) and low <= value <= high
    if kind == "boolean":
        return lambda value: value is True or value is False
    if kind == "string" and "format" not in schema:
        low, high = schema.get("minLength", 0), schema.get("maxLength", math.inf)
        search = _pattern_test(schema.get("pattern"))
        enum = frozenset(schema.get("enum", ()))
        if enum:
            return lambda value: type(value) is str and value in enum
        return lambda value: (
            type(value) is str and low <= len(value) <= high and value.isascii() and search(value)
        )
    if kind == "array":
        most = schema.get("maxItems", math.inf)
        items = schema.get("items", {})
        if items.get("type") in ("number", "integer") and field not in LIMITS["decimals"]:
            low, high, exclusive = _bounds(items)
            allowed = {int} if items["type"] == "integer" else {int, float}

            def numbers(value: Any) -> bool:
                # In C: the types, the range, and finiteness (a NaN or an infinity makes the sum
                # one); anything else goes to the full check, which names the bad item.
                if type(value) is not list or len(value) > most:
                    return False
                if not value:
                    return True
                if not set(map(type, value)) <= allowed or min(value) < low or math.isnan(sum(value)):
                    return False
                top = max(value)
                return top < high if exclusive else top <= high

            return numbers
        item = _quick_test(f"{field} item", items)
        return lambda value: type(value) is list and len(value) <= most and all(map(item, value))
    return lambda value: False


NO_NUL = r"^[^\x00]*$"  # the server's pattern for text PostgreSQL can store


def _pattern_test(pattern: str | None) -> Callable[[str], bool]:
    if pattern is None:
        return lambda value: True
    if pattern == NO_NUL:  # the one the server uses everywhere, tested without a regex
        return lambda value: "\x00" not in value
    return re.compile(pattern).search  # type: ignore[return-value]


def _full_check(field: str, schema: dict[str, Any]) -> Check:
    """The check of a value that is not None: the value as it is to be sent, or Invalid."""
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "date-time":
        return _timestamp_check(field)
    if kind == "string":
        return _string_check(field, schema)
    if kind in ("integer", "number"):
        return _number_check(field, schema)
    if kind == "boolean":

        def boolean(value: Any) -> bool:
            if not isinstance(value, bool):
                raise _fail(field, "must be True or False")
            return value

        return boolean
    if kind == "array":
        most = schema.get("maxItems")
        item = compile_property(f"{field} item", schema.get("items", {}))

        def array(value: Any) -> list:
            if not isinstance(value, (list, tuple)):
                raise _fail(field, "must be a list")
            if most is not None and len(value) > most:
                raise _fail(field, f"may have at most {most} items")
            return [item(element) for element in value]

        return array
    UNCHECKED.append(field)  # a type the client does not know: the server checks it
    return lambda value: value


def _string_check(field: str, schema: dict[str, Any]) -> Check:
    low, high = schema.get("minLength"), schema.get("maxLength")
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    enum = schema.get("enum")

    def string(value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(field, "must be a string")
        if low is not None and len(value) < low:
            raise _fail(field, "may not be empty" if low == 1 else f"needs at least {low} characters")
        if high is not None and len(value) > high:
            raise _fail(field, f"may have at most {high} characters")
        if enum is not None and value not in enum:
            raise _fail(field, "must be one of " + ", ".join(enum))
        if pattern is not None and not pattern.search(value):
            raise _fail(field, f"must match {pattern.pattern}")
        try:
            value.encode("utf-8")  # a lone surrogate is no text the server can read
        except UnicodeEncodeError:
            raise _fail(field, "may not hold lone surrogate characters") from None
        return value

    return string


def _number_check(field: str, schema: dict[str, Any]) -> Check:
    kind = schema["type"]
    low, high, exclusive = _bounds(schema)
    places = LIMITS["decimals"].get(field) if kind == "number" else None
    place_check = _decimal_places(field, places) if places else None

    def number(value: Any) -> Any:
        if isinstance(value, bool):
            raise _fail(field, f"must be {'an integer' if kind == 'integer' else 'a number'}, not a bool")
        if kind == "integer":
            if not isinstance(value, int):
                raise _fail(field, "must be an integer")
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise _fail(field, "must be a finite number")
        elif not isinstance(value, (int, float)):
            raise _fail(field, "must be a number")
        elif isinstance(value, float) and not math.isfinite(value):
            raise _fail(field, "must be a finite number")
        if value < low:
            raise _fail(field, f"must be at least {low}")
        if value >= high if exclusive else value > high:
            raise _fail(field, f"must be {'less than' if exclusive else 'at most'} {high}")
        if place_check is not None:
            place_check(value)
            # A decimal column takes a numeric string exactly, where a float may not be.
            return str(value) if isinstance(value, Decimal) else value
        return float(value) if isinstance(value, Decimal) else int(value) if kind == "integer" else value

    return number


class BodyRules:
    """The checks of one request body (an object schema): `check(item)` returns the item as
    it is to be sent, or raises Invalid (ValueError) naming the first bad field."""

    def __init__(self, schema: dict[str, Any]):
        self.fields = {name: compile_property(name, spec) for name, spec in schema["properties"].items()}
        self.required = tuple(schema.get("required", ()))

    def check(self, item: dict[str, Any]) -> dict[str, Any]:
        for name in self.required:
            if name not in item:
                raise _fail(name, "is required")
        fields = self.fields
        return {name: fields[name](value) for name, value in item.items()}


CONVERSATION = BodyRules(RULES["conversation"])
CSAT = BodyRules(RULES["csat"])
