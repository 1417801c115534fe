from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from conversations import services
from conversations.analytics import reads
from conversations.models import ApiKey

# A fixed "now" for every test that needs a clock (never random dates near a window edge).
T0 = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def _reader_connection_closed_at_the_end(django_db_setup):
    """A comparison made outside a transaction (a live server's, a transactional test's) reads
    one arm on the reader thread's own connection (analytics.reads.both), which stays open for
    the next: closed before the test database is dropped."""
    yield
    reads.close_reader_connection()


@pytest.fixture(autouse=True)
def _no_bot_version_seen_recorded():
    """Every test starts in a process that has seen no bot version recorded (services): a test
    that commits leaves its versions in the process's memory, and its database is emptied."""
    services.forget_recorded_versions()


@pytest.fixture
def frozen_now():
    """Freeze time at T0 (the clock does not tick)."""
    with time_machine.travel(T0, tick=False):
        yield T0


def _client_with_key(scope: str) -> APIClient:
    _, key = ApiKey.objects.create_key(name=f"test-{scope}", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.raw_key = key
    return client


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def ingest_client(db) -> APIClient:
    return _client_with_key(ApiKey.Scope.INGEST)


@pytest.fixture
def read_client(db) -> APIClient:
    return _client_with_key(ApiKey.Scope.READ)


@pytest.fixture
def all_client(db) -> APIClient:
    return _client_with_key(ApiKey.Scope.ALL)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(username="lead", password="pw-lead-123", is_staff=True)


@pytest.fixture
def staff_client(staff_user) -> APIClient:
    client = APIClient()
    client.force_login(staff_user)
    return client
