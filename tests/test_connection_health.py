"""The health check of reused connections (supportanalytics/postgresql/base.py)."""

from __future__ import annotations

import pytest
from django.db import OperationalError, ProgrammingError, connection

from supportanalytics.postgresql import base


class Clock:
    """The backend's clock, moved by hand."""

    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(base, "monotonic", clock)
    return clock


@pytest.fixture
def health_checks(transactional_db, clock, monkeypatch):
    """Counts the `SELECT 1` checks, on a fresh connection, outside a test transaction (as a
    request would be)."""
    connection.close()
    checks = []
    is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or is_usable())
    yield checks
    connection.close()  # the next test starts on a connection of the real clock


def request(statement: str = "SELECT 1") -> None:
    """What a request does with the connection: Django's check as it starts, one query, and
    its check as it ends (`close_old_connections`)."""
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close_if_unusable_or_obsolete()


def test_a_connection_used_just_before_is_not_checked_again(health_checks, clock):
    assert connection.health_check_enabled
    request()
    clock.wait(0.4)
    request()
    clock.wait(0.4)
    request()
    assert health_checks == []


def test_an_idle_connection_is_checked_before_its_next_query(health_checks, clock):
    request()
    clock.wait(0.6)
    request()
    request()
    assert len(health_checks) == 1


def test_after_an_error_an_idle_connection_is_checked_again(health_checks, clock):
    with pytest.raises(ProgrammingError):
        request("SELECT * FROM no_such_table")
    assert len(health_checks) == 1  # Django's own check, at the end of the failed request
    clock.wait(0.6)
    request()
    assert len(health_checks) == 2


def test_a_connection_cut_just_after_it_was_used_fails_one_request_then_is_replaced(health_checks):
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
