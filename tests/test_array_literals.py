"""services._array writes the PostgreSQL array literals that carry a batch to the database:
every value must come back from PostgreSQL exactly as it went in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import IntEnum
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.db import connection
from django.utils.safestring import mark_safe
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.services import _array, _strings

pytestmark = pytest.mark.django_db

# PostgreSQL text holds any character but NUL (and UTF-8 no lone surrogates: validation
# refuses both).
texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)


def round_trip(literal: str, sql_type: str) -> list:
    # As the writes send it: a parameter bound server-side (services._execute's cursor).
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(f"SELECT %(values)s::{sql_type}[]", {"values": literal})
        return cursor.fetchone()[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), texts), max_size=20))
def test_strings_with_quotes_backslashes_braces_and_unicode_come_back_unchanged(values):
    assert round_trip(_array(values), "varchar") == values


def test_the_strings_that_look_like_syntax_stay_strings():
    values = ["NULL", "null", "", " ", "{}", "a,b", '"', "\\", '\\"', '{a,"b"}', "é€😀", "\t\n"]
    assert round_trip(_array(values), "varchar") == values


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)), max_size=20))
def test_floats_come_back_as_the_same_double(values):
    assert round_trip(_array(values), "double precision") == values


def test_subclasses_are_written_as_their_base_type_and_unknown_types_refused():
    assert round_trip(_array([mark_safe('<b>"x"</b>'), IntEnum("Level", ["ONE"]).ONE]), "varchar") == [
        '<b>"x"</b>',
        "1",
    ]
    with pytest.raises(TypeError, match="No array literal for complex"):
        _array([1j])


def test_bytes_are_written_in_bytea_hex_form():
    values = [bytes(range(256)), b"", None, b'"\\']
    assert [None if v is None else bytes(v) for v in round_trip(_array(values), "bytea")] == values


def test_integers_booleans_decimals_and_times():
    moments = [datetime(2026, 3, 14, 12, 0, 0, 123456, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)]
    assert round_trip(_array([0, -5, 2**31 - 1, None]), "integer") == [0, -5, 2**31 - 1, None]
    assert round_trip(_array([True, False, None]), "boolean") == [True, False, None]
    decimals = [Decimal("0.000000"), Decimal("0.123456"), Decimal("999999.000001"), None]
    assert [str(value) for value in round_trip(_array(decimals), "numeric")] == [str(d) for d in decimals]
    local = datetime(2026, 3, 14, 13, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    back = round_trip(_array([*moments, local]), "timestamptz")
    assert back[:2] == moments and back[2] - local == timedelta(0)


# Columns of a single type take _array's short cuts (one join per column): the same round trip.
def test_strings_without_quotes_or_backslashes_are_quoted_at_once():
    assert _strings(["import-1", "", "a,b {c}"]) == '{"import-1","","a,b {c}"}'
    assert _strings(["plain", 'a"b']) is None  # each is then escaped on its own
    assert _strings(["plain", "a\\b"]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, max_size=20))
def test_a_column_of_strings_only_comes_back_unchanged(values):
    assert round_trip(_array(values), "varchar") == values


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=20),
    st.lists(st.booleans(), max_size=20),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20),
    st.integers(min_value=0, max_value=5),
)
def test_columns_of_ints_bools_floats_or_nones_only_come_back_unchanged(ints, bools, floats, nones):
    assert round_trip(_array(ints), "bigint") == ints
    assert round_trip(_array(bools), "boolean") == bools
    assert round_trip(_array(floats), "double precision") == floats
    assert round_trip(_array([None] * nones), "integer") == [None] * nones


@settings(max_examples=100, deadline=None)
@given(st.lists(st.datetimes(timezones=st.just(UTC)), max_size=20))
def test_a_column_of_timestamps_only_comes_back_unchanged(values):
    assert round_trip(_array(values), "timestamptz") == values
