"""Per-API-key rate limits, counted in PostgreSQL (shared by every worker and server)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import quote

import psycopg
import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection, connections
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle

from conversations import throttling
from conversations.models import ApiKey, Conversation, RateLimitCounter
from tests.conftest import T0


def conversation(session_id: str) -> dict:
    return {"session_id": session_id, "turns": 2, "resolved_by_ai": True}


@pytest.fixture
def rates(settings):
    """Low rates for these tests: REST_FRAMEWORK changes reach DRF (and the throttle) at once."""

    def set_rates(*, ingest: str = "600/second", read: str = "1200/minute") -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"ingest": ingest, "read": read},
        }

    return set_rates


def key_client(scope: str) -> APIClient:
    _, key = ApiKey.objects.create_key(name=f"throttle-{scope}", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.raw_key = key
    return client


@pytest.mark.django_db
def test_the_request_after_the_limit_gets_429_with_retry_after_and_other_keys_and_scopes_go_on(rates):
    rates(ingest="3/minute", read="2/minute")
    bot, other_bot, everything = key_client("ingest"), key_client("ingest"), key_client("all")
    # 30 s into a minute: the window (a whole minute) ends in 30 s.
    with time_machine.travel(T0.replace(second=30), tick=False):
        statuses = [
            bot.post("/api/conversations/", conversation(f"s-{n}"), format="json").status_code
            for n in range(3)
        ]
        refused = bot.post("/api/conversations/", conversation("s-3"), format="json")
        csat_refused = bot.post(
            "/api/conversations/s-0/csat/", {"csat": 4}, format="json"
        )  # the same "ingest" count
        other = other_bot.post("/api/conversations/", conversation("s-4"), format="json")
        # One key, two scopes, two counts.
        reads = [everything.get("/api/analytics").status_code for _ in range(3)]
        ingests = [
            everything.post("/api/conversations/", conversation("s-5"), format="json").status_code
            for _ in range(3)
        ]

    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert refused.json() == {"detail": "Request was throttled. Expected available in 30 seconds."}
    assert csat_refused.status_code == 429
    assert other.status_code == 201
    assert reads == [200, 200, 429]
    assert ingests == [201, 200, 200]


@pytest.mark.django_db
def test_the_next_window_serves_again(rates):
    rates(ingest="2/second")
    bot = key_client("ingest")
    with time_machine.travel(T0, tick=False) as clock:
        first = [
            bot.post("/api/conversations/", conversation("a"), format="json").status_code for _ in range(3)
        ]
        clock.shift(0.999)
        still = bot.post("/api/conversations/", conversation("a"), format="json")
        clock.shift(0.001)
        next_second = bot.post("/api/conversations/", conversation("a"), format="json")

    assert first == [201, 200, 429]
    assert (still.status_code, still["Retry-After"]) == (429, "1")
    assert next_second.status_code == 200


@pytest.mark.django_db
def test_a_request_from_an_older_window_does_not_reset_the_count(rates):
    # A server whose clock is a little behind (or a request that read the clock just before
    # the boundary) must not start the newer window's count again.
    rates(ingest="2/second")
    bot = key_client("ingest")
    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        newer = [
            bot.post("/api/conversations/", conversation("a"), format="json").status_code for _ in range(2)
        ]
    with time_machine.travel(T0 + timedelta(seconds=0.9), tick=False):
        late = bot.post("/api/conversations/", conversation("a"), format="json")
    with time_machine.travel(T0 + timedelta(seconds=1.5), tick=False):
        after = bot.post("/api/conversations/", conversation("a"), format="json")

    assert newer == [201, 200]
    assert late.status_code == 429  # counted in the newer window, which it fills
    assert after.status_code == 429  # that window is still full


def counted(scope: str, client: APIClient) -> int | None:
    prefix = client.raw_key.partition(".")[0]
    counter = RateLimitCounter.objects.filter(key=f"{scope}:key:{prefix}").first()
    return counter and counter.count


@pytest.mark.django_db
def test_the_key_lookup_counts_the_request_in_the_same_statement(monkeypatch):
    # One statement for both (conversations.auth): Django's query log does not see it (a raw
    # cursor), so the statements are caught where psycopg runs them.
    bot = key_client("ingest")
    statements = []
    execute = psycopg.Cursor.execute

    def recording_execute(cursor, query, *args, **kwargs):
        statements.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    response = bot.post("/api/conversations/", conversation("one-statement"), format="json")

    assert response.status_code == 201
    touching = [sql for sql in statements if "conversations_apikey" in sql or "ratelimitcounter" in sql]
    assert len(touching) == 1
    assert "conversations_apikey" in touching[0] and "conversations_ratelimitcounter" in touching[0]
    assert counted("ingest", bot) == 1


@pytest.mark.django_db
def test_a_wrong_secret_is_refused_and_not_counted_against_the_key(rates):
    # The key lookup counts the request in the same statement; it must count only the right
    # key, or anyone who learned a key's public prefix could use up its limit.
    rates(ingest="2/minute")
    bot = key_client("ingest")
    prefix = bot.raw_key.partition(".")[0]
    impostor = APIClient()
    impostor.credentials(HTTP_AUTHORIZATION=f"Bearer {prefix}.{'x' * 32}")
    with time_machine.travel(T0, tick=False):
        refused = [impostor.post("/api/conversations/", conversation("a"), format="json") for _ in range(3)]
        after = bot.post("/api/conversations/", conversation("a"), format="json")

    assert [response.status_code for response in refused] == [401] * 3
    assert refused[0].json() == {"detail": "Invalid or revoked API key."}
    assert after.status_code == 201
    assert counted("ingest", bot) == 1


@pytest.mark.django_db
def test_a_key_refused_for_its_scope_is_counted_in_that_scope(rates):
    # Counted by the key lookup, before DRF checks the permissions: a 403 costs the key a
    # request in the view's scope, as a 429 does, but nothing in its own scope.
    rates(ingest="5/minute", read="5/minute")
    reader = key_client("read")
    with time_machine.travel(T0, tick=False):
        forbidden = [reader.post("/api/conversations/", conversation("a"), format="json") for _ in range(2)]
        read = reader.get("/api/analytics")

    assert [response.status_code for response in forbidden] == [403, 403]
    assert read.status_code == 200
    assert (counted("ingest", reader), counted("read", reader)) == (2, 1)


@pytest.mark.django_db
def test_staff_sessions_are_counted_per_user(rates, staff_client, django_user_model):
    rates(read="2/minute")
    colleague = APIClient()
    colleague.force_login(django_user_model.objects.create_user(username="ann", is_staff=True))
    with time_machine.travel(T0, tick=False):
        lead = [staff_client.get("/api/analytics/topics/").status_code for _ in range(3)]
        other = colleague.get("/api/analytics/topics/")

    assert lead == [200, 200, 429]
    assert other.status_code == 200
    lead_id = django_user_model.objects.get(username="lead").pk
    assert RateLimitCounter.objects.get(key=f"read:user:{lead_id}").count == 3


def test_default_rates_are_generous():
    assert django_settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] == {
        "ingest": os.environ.get("API_THROTTLE_INGEST_RATE") or "600/second",
        "read": os.environ.get("API_THROTTLE_READ_RATE") or "1200/minute",
    }


# A second server process: its own Python, its own database connection, the same database.
OTHER_PROCESS = """
import json, os, django
django.setup()
from django.test import Client
client = Client(headers={"authorization": "Bearer " + os.environ["THROTTLE_TEST_KEY"]})
answers = []
for number in range(3):
    body = {"session_id": f"other-process-{number}", "turns": 1, "resolved_by_ai": True}
    response = client.post("/api/conversations/", body, content_type="application/json")
    answers.append([response.status_code, response.headers.get("Retry-After")])
print(json.dumps(answers))
"""


def test_two_processes_share_one_count_in_the_database(transactional_db, rates):
    # Per day: this test cannot straddle two windows (short of running over midnight UTC).
    rates(ingest="5/day")
    bot = key_client("ingest")
    here = [
        bot.post("/api/conversations/", conversation(f"here-{n}"), format="json").status_code
        for n in range(3)
    ]

    database = connection.settings_dict
    credentials = quote(database["USER"] or "", safe="")
    if database["PASSWORD"]:
        credentials += ":" + quote(database["PASSWORD"], safe="")
    host = quote(database["HOST"], safe="")  # a socket folder, percent-encoded, or a host name
    port = f":{database['PORT']}" if database["PORT"] else ""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DATABASE_", "API_THROTTLE_", "PG"))
    } | {
        "DATABASE_URL": f"postgresql://{credentials}@{host}{port}/{database['NAME']}",
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
        "CUSTOMER_ID_HASH_KEY": django_settings.CUSTOMER_ID_HASH_KEY,
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SETTINGS_MODULE": "supportanalytics.settings",
        "API_THROTTLE_INGEST_RATE": "5/day",
        "LOG_LEVEL": "WARNING",
        "THROTTLE_TEST_KEY": bot.raw_key,
    }
    other = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS],
        cwd=django_settings.BASE_DIR, env=environment, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    there = json.loads(other.stdout.splitlines()[-1])
    back_here = bot.post("/api/conversations/", conversation("here-3"), format="json")

    assert here == [201, 201, 201]
    # 3 here + 2 there = the 5 of the day; the 6th, in the other process, is refused.
    assert [status for status, _ in there] == [201, 201, 429]
    assert 0 < int(there[2][1]) <= 86_400
    assert back_here.status_code == 429
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count FROM conversations_ratelimitcounter WHERE key = %s",
            [f"ingest:key:{ApiKey.objects.get().prefix}"],
        )
        # One row for the key, which counted all 7 requests (refused ones too).
        assert cursor.fetchall() == [(7,)]


def test_without_the_counter_table_the_api_serves_unthrottled_and_logs_why_once(
    transactional_db, caplog, monkeypatch
):
    # Outside a test transaction (transactional_db), as in production: the failed count
    # does not spoil the request's later queries. (The table is put back for the next tests.)
    bot = key_client("ingest")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE conversations_ratelimitcounter RENAME TO ratelimitcounter_away")
    try:
        monkeypatch.setattr(throttling, "_missing_table_reported", False)
        with caplog.at_level(logging.ERROR, logger="conversations.throttling"):
            response = bot.post("/api/conversations/", conversation("no-table"), format="json")
            again = bot.post("/api/conversations/", conversation("no-table-2"), format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE ratelimitcounter_away RENAME TO conversations_ratelimitcounter")

    assert (response.status_code, again.status_code) == (201, 201)
    assert caplog.text.count("its table is missing") == 1


def test_simultaneous_requests_of_one_key_are_each_counted(transactional_db, rates):
    # 12 requests at once from 6 threads (each its own connection) against a limit of 5:
    # the upsert counts atomically, so exactly 5 pass. (A read-then-write count lets
    # several racing requests read the same number and all pass.)
    rates(ingest="5/day")  # a day: the requests cannot straddle two windows
    bot = key_client("ingest")
    start = threading.Barrier(6)

    def post_twice(number: int) -> list[int]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {bot.raw_key}")
        start.wait()
        try:
            return [
                client.post(
                    "/api/conversations/", conversation(f"race-{number}-{n}"), format="json"
                ).status_code
                for n in range(2)
            ]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        statuses = [status for answers in pool.map(post_twice, range(6)) for status in answers]

    assert sorted(statuses) == [201] * 5 + [429] * 7
    assert Conversation.objects.count() == 5


@pytest.mark.django_db
def test_the_counter_table_is_unlogged():
    # Counters need no WAL; a logged table made every API request wait for a flush at commit.
    with connection.cursor() as cursor:
        cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'conversations_ratelimitcounter'")
        assert cursor.fetchone() == ("u",)


def test_the_key_lookup_counts_only_for_views_that_use_this_throttle():
    class Scoped:
        throttle_scope = "ingest"
        throttle_classes = [throttling.ApiKeyRateThrottle]

    class OwnThrottles(Scoped):
        throttle_classes = [AnonRateThrottle]

    class Unscoped:
        throttle_classes = [throttling.ApiKeyRateThrottle]

    planned = throttling.ApiKeyRateThrottle.for_key(Scoped(), "abcd1234")
    assert (planned.key, planned.count) == ("ingest:key:abcd1234", None)
    assert throttling.ApiKeyRateThrottle.for_key(OwnThrottles(), "abcd1234") is None
    assert throttling.ApiKeyRateThrottle.for_key(Unscoped(), "abcd1234") is None
