"""The health check of reused connections (supportanalytics/postgresql/base.py)."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from supportanalytics.postgresql import base


@pytest.fixture
def health_checks(transactional_db, monkeypatch):
    """Counts the `SELECT 1` checks; outside a test transaction, as a request would be."""
    checks = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or is_usable())
    return checks


def request(statement: str = "SELECT 1") -> None:
    """What a request does with the connection: Django's check as it starts, one query, and
    its check as it ends (`close_old_connections`)."""
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close_if_unusable_or_obsolete()


def test_a_connection_that_just_answered_is_not_checked_again(health_checks):
    assert connection.health_check_enabled
    request()
    request()
    assert health_checks == []


def test_an_idle_connection_is_checked_before_its_next_query(health_checks, monkeypatch):
    request()
    monkeypatch.setattr(base, "ALIVE_BYPASS_SECONDS", 0)  # as if it had waited past the window
    request()
    request()
    assert len(health_checks) == 2


def test_a_connection_cut_just_after_it_answered_fails_one_request_then_is_replaced(health_checks):
    request()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (cut,) = cursor.fetchone()
    # Another session ends ours, as a PostgreSQL restart would.
    with connection.connection.__class__.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [cut])

    with pytest.raises(OperationalError):
        request()  # within the bypass window: no check, so this request meets the cut
    request("SELECT pg_backend_pid()")  # closed at the end of the failed one: connects again

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != cut
    assert len(health_checks) == 1  # the failed request's end found it unusable
