"""The client's local checks come from the server: client/src/supportanalytics_client/rules.json
is what `manage.py client_rules` writes from the ingest rules and the OpenAPI document, and
the client's verdict on a field's type and range is the server's."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations import client_rules, ingest_rules
from supportanalytics_client import _rules


def test_the_rules_file_is_the_one_the_server_writes():
    assert client_rules.RULES_FILE.read_text() == client_rules.rules_text(), (
        "The server's ingest rules changed: run `python manage.py client_rules` and commit "
        "client/src/supportanalytics_client/rules.json."
    )
    call_command("client_rules", "--check")  # what CI or a pre-commit hook can run


def test_the_rules_name_the_servers_paths_and_limits():
    assert _rules.PATHS == {
        "ingest": "/api/conversations/",
        "csat": "/api/conversations/{session_id}/csat/",
        "summary": "/api/analytics/",
    }
    assert _rules.LIMITS["max_batch"] == 1000
    assert _rules.LIMITS["max_body_bytes"] == 2 * 1024 * 1024
    assert _rules.UNCHECKED == []  # every property's schema is one the client reads


BASE = {"session_id": "s-1", "turns": 3, "resolved_by_ai": True}
NOW = timezone.now()

# (field, value, whether the server's schema takes it). Each is checked against both sides.
CASES = [
    ("session_id", "x" * 255, True),
    ("session_id", "x" * 256, False),
    ("session_id", "", False),
    ("session_id", "a\x00b", False),
    ("turns", 0, True),
    ("turns", 10_000, True),
    ("turns", 10_001, False),
    ("turns", -1, False),
    ("turns", 2.0, False),
    ("turns", True, False),
    ("turns", None, False),
    ("resolved_by_ai", False, True),
    ("resolved_by_ai", 1, False),
    ("resolved_by_ai", "yes", False),
    ("topics", ["Billing", "refund"], True),
    ("topics", None, True),
    ("topics", ["t"] * 20, True),
    ("topics", [f"t{n}" for n in range(21)], False),
    ("topics", "billing", False),
    ("topics", [None], False),
    ("response_times", [820, 1140.5], True),
    ("response_times", [86_400_000], True),
    ("response_times", [86_400_001], False),
    ("response_times", [-1], False),
    ("response_times", [True], False),
    ("response_times", None, False),
    ("csat", 1, True),
    ("csat", 5, True),
    ("csat", None, True),
    ("csat", 0, False),
    ("csat", 6, False),
    ("csat", 4.0, False),
    ("channel", "web", True),
    ("channel", "w" * 64, True),
    ("channel", "w" * 65, False),
    ("channel", None, True),
    ("outcome", "assumed", True),
    ("outcome", "resolved", False),
    ("customer_id", "crm-88123", True),
    ("customer_id", "", False),
    ("customer_id", "c" * 256, False),
    ("ai_cost", 0.05, True),
    ("ai_cost", Decimal("0.123456"), True),
    ("ai_cost", 0.1234567, False),
    ("ai_cost", -0.01, False),
    ("ai_cost", 1_000_000, False),
    ("ai_cost", 999_999.999999, True),
    ("ai_cost", None, True),
    ("timestamp", "2026-03-14T12:00:00Z", True),
    ("timestamp", "2026-03-14T12:00:00", True),
    ("timestamp", "2026-03-14T12:00:00+05:30", True),
    ("timestamp", "yesterday", False),
    ("timestamp", "1899-12-31T23:00:00Z", False),
    ("timestamp", None, False),
]


def _server_takes(field, value, *, now=NOW) -> bool:
    item = {**BASE, field: str(value) if isinstance(value, Decimal) else value}
    try:
        ingest_rules.conversation_from_item(item, received_at=now)
    except ingest_rules.IngestInvalid as invalid:
        fields = {error["field"].split(".")[0] for error in invalid.errors}
        assert fields == {field}, invalid.errors
        return False
    return True


def _client_takes(field, value) -> bool:
    try:
        _rules.CONVERSATION.check({**BASE, field: value})
    except ValueError as error:
        assert str(error).startswith(f"{field}"), error
        return False
    return True


@pytest.mark.parametrize(("field", "value", "takes"), CASES, ids=[f"{c[0]}={c[1]!r:.30}" for c in CASES])
def test_the_client_and_the_server_agree_on_a_fields_type_and_range(field, value, takes):
    assert _server_takes(field, value) is takes
    assert _client_takes(field, value) is takes


def test_a_timestamp_more_than_five_minutes_ahead_is_refused_by_both():
    """Both sides compare with their own clock: taken now, not when the cases were collected."""
    now = timezone.now()
    for minutes, takes in ((4, True), (6, False)):
        value = (now + timedelta(minutes=minutes)).isoformat()
        assert _server_takes("timestamp", value, now=now) is takes
        assert _client_takes("timestamp", value) is takes


def test_a_refused_value_is_named_by_its_field_never_shown():
    with pytest.raises(ValueError, match=r"^customer_id: may have at most 255 characters$"):
        _rules.CONVERSATION.check({**BASE, "customer_id": "secret-" * 40})


def test_the_client_is_as_strict_as_the_schema_where_the_server_is_lenient():
    """The server still takes a number for a string (as DRF did, for old senders); the
    schema says string, and so does the client: a bot using the client sends strings."""
    assert _server_takes("session_id", 42)
    assert not _client_takes("session_id", 42)


def test_what_the_schema_cannot_say_is_left_to_the_server():
    """Rules between fields and a topic's length once normalized: the client sends it, the
    server refuses it (and the client dead-letters it: tests/test_client_live.py)."""
    contradiction = {**BASE, "outcome": "escalated"}
    assert _client_takes("outcome", "escalated")
    with pytest.raises(ingest_rules.IngestInvalid):
        ingest_rules.conversation_from_item(contradiction, received_at=datetime(2026, 3, 14, tzinfo=UTC))
