"""Ingestion through a real server (gunicorn, production settings) into a throwaway cluster.

* 8 clients post overlapping session ids at once, in different orders, arrays and single
  objects mixed, with late CSAT updates: no 5xx, no deadlock, every session stored once with
  the content of its last acknowledged write, and the rollup-backed figures equal a recount.
* The server killed with SIGKILL (master and workers) under steady ingestion, then started
  again: every conversation acknowledged with a 2xx is in the database.

Helpers (the cluster, gunicorn, requests over its unix socket) come from the outage test.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.utils import timezone

from conversations.analytics import selectors
from conversations.analytics.metrics import Totals, full_scan_aggregates
from conversations.analytics.query import Filters, Period, conversations_in
from conversations.models import ApiKey, Conversation
from supportanalytics import localdb
from tests import test_health_and_outage as outage
from tests.scans import per_topic, topic_links
from tests.test_health_and_outage import App, database_at, wait_for

cluster = outage.cluster  # the fixture: a throwaway PostgreSQL cluster

CLIENTS = 8
SESSIONS = 60
ROUNDS = 3
TOPICS = ["billing", "refund", "login", "shipping", "returns", "api"]


@pytest.fixture
def keys(transactional_db) -> list[str]:
    """One all-scope key per client (committed: the cluster gets a copy of the test database)."""
    return [ApiKey.objects.create_key(name=f"client-{n}", scope=ApiKey.Scope.ALL)[1] for n in range(CLIENTS)]


@pytest.fixture
def served(cluster, keys, tmp_path, monkeypatch):
    """The cluster with a copy of the test database, and gunicorn serving it."""
    from django.db import connections

    # The limits are per key and tested elsewhere (tests/test_throttling.py); here they would
    # only turn part of the load into 429s.
    monkeypatch.setenv("API_THROTTLE_INGEST_RATE", "100000/second")
    cluster.create()
    cluster.copy_database(connections["default"].settings_dict)
    # 2 workers x 4 threads: all 8 clients' transactions can be open at once.
    app = App(database_url=cluster.url, folder=tmp_path, workers=2, threads=4)
    try:
        app.wait_until_serving()
        yield app
    finally:
        app.stop()


def deadlocks(cluster) -> int:
    with psycopg.connect(cluster.url) as db:
        return db.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [localdb.DB_NAME]
        ).fetchone()[0]


def version(session: int, round_number: int, ended: datetime) -> dict:
    """What every client posts for a session in a round: the same body, so concurrent writes
    of one session within a round agree, and the final state is the last round's."""
    return {
        "session_id": f"s-{session:03d}",
        "timestamp": (ended - timedelta(hours=session % 30, minutes=session)).isoformat(),
        "turns": 10 * round_number + session % 7 + 1,  # grows with the round
        "resolved_by_ai": (session + round_number) % 3 != 0,
        "topics": [TOPICS[(session + round_number) % 6], TOPICS[(session * 5 + round_number) % 6]],
        "response_times": [100 * (session % 9 + 1), 50 * (round_number + 1)],
        "channel": ["web", "email"][session % 2],
    }


def csat_of(session: int, round_number: int) -> int:
    return (session + round_number) % 5 + 1


def test_eight_clients_with_overlapping_sessions_store_each_once_with_its_last_write(served, cluster, keys):
    ended = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
    deadlocks_before = deadlocks(cluster)
    answers: list[tuple[str, int, bytes]] = []
    csat_acknowledged: dict[int, int] = {}  # session -> latest round whose CSAT got a 200
    round_acknowledged: dict[int, int] = {}  # session -> latest round whose body got a 2xx
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(number: int) -> None:
        bearer = {"Authorization": f"Bearer {keys[number]}"}
        rng = random.Random(number)  # each client its own, fixed order
        for round_number in range(ROUNDS):
            barrier.wait(timeout=60)  # round r's writes all come after round r-1's answers
            chunks = []
            sessions = list(range(SESSIONS))
            rng.shuffle(sessions)
            while sessions:
                size = rng.choice([1, 1, 3, 8, 20])
                chunks.append(sessions[:size])
                sessions = sessions[size:]
            for chunk in chunks:
                bodies = [version(s, round_number, ended) for s in chunk]
                body = bodies[0] if len(chunk) == 1 and rng.random() < 0.7 else bodies
                answer = served.request("POST", "/api/conversations/", body=json.dumps(body), headers=bearer)
                with lock:
                    answers.append(("ingest", answer.status, answer.body))
                    if answer.status in (200, 201):
                        for s in chunk:
                            round_acknowledged[s] = max(round_acknowledged.get(s, -1), round_number)
                if answer.status not in (200, 201):
                    continue
                # A late survey for some of the sessions just acknowledged.
                for s in chunk:
                    if rng.random() < 0.3:
                        rated = served.request(
                            "POST",
                            f"/api/conversations/s-{s:03d}/csat/",
                            body=json.dumps({"csat": csat_of(s, round_number)}),
                            headers=bearer,
                        )
                        with lock:
                            answers.append(("csat", rated.status, rated.body))
                            if rated.status == 200:
                                csat_acknowledged[s] = max(csat_acknowledged.get(s, -1), round_number)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    seconds = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "clients still running after 120 s"

    statuses = {}
    for _, status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"\n{len(answers)} requests from {CLIENTS} clients in {seconds:.1f} s: {statuses}")
    assert set(statuses) <= {200, 201}, [a for a in answers if a[1] not in (200, 201)][:5]
    assert deadlocks(cluster) == deadlocks_before
    assert "deadlock detected" not in (cluster.folder / "server.log").read_text()
    assert round_acknowledged == dict.fromkeys(range(SESSIONS), ROUNDS - 1)

    with psycopg.connect(cluster.url) as db:
        stored = db.execute(
            "SELECT c.session_id, c.turns, c.resolved_by_ai, c.csat, c.channel,"
            " array(SELECT t.name FROM conversations_topic t WHERE t.id = ANY(c.topic_ids) ORDER BY t.name)"
            " FROM conversations_conversation c"
        ).fetchall()
    assert len(stored) == len({row[0] for row in stored}) == SESSIONS
    expected = {}
    for s in range(SESSIONS):
        last = version(s, ROUNDS - 1, ended)
        csat = csat_of(s, csat_acknowledged[s]) if s in csat_acknowledged else None
        expected[last["session_id"]] = (
            last["turns"], last["resolved_by_ai"], csat, last["channel"], sorted(set(last["topics"]))
        )  # fmt: skip
    assert {row[0]: (*row[1:5], list(row[5])) for row in stored} == expected

    # The figures (read from the rollups the writes kept) equal a recount of the raw rows.
    all_time = Period(start=datetime(1900, 1, 1, tzinfo=UTC), end=timezone.now() + timedelta(days=1))
    everything = Filters()
    with database_at(HOST=str(cluster.folder), PORT="", NAME=localdb.DB_NAME, USER=localdb.DB_USER):
        recount = Totals.from_row(
            conversations_in(period=all_time, filters=everything).aggregate(**full_scan_aggregates())
        )
        summary = selectors.summary(period=all_time, filters=everything)
        assert selectors.window_totals(period=all_time, filters=everything) == recount
        assert summary.totals == recount
        assert recount.conversations == SESSIONS
        stored = Conversation.objects.all()
        topics_recount = {
            name: Totals.from_row(row)
            for name, row in per_topic(stored, full_scan_aggregates(with_histogram=False)).items()
        }
        breakdown = selectors.topic_breakdown(period=all_time, filters=everything)
        assert {topic.topic: topic.totals for topic in breakdown} == topics_recount
        assert topic_links() == sum(topic.totals.conversations for topic in breakdown)


class Ingestion(threading.Thread):
    """Posts new conversations (single objects and small arrays) until told to stop, keeping
    every answer; no answer (status 0) while the server is down, then on again."""

    def __init__(self, app_of, *, key: str, number: int):
        super().__init__(daemon=True)
        self.app_of, self.key, self.number = app_of, key, number
        self.acknowledged: set[str] = set()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        bearer = {"Authorization": f"Bearer {self.key}"}
        serial = 0
        while not self.done.is_set():
            ids = [f"crash-{self.number}-{serial + n}" for n in range(1 + serial % 5)]
            serial += len(ids)
            bodies = [
                {"session_id": session_id, "turns": 3, "resolved_by_ai": True, "topics": ["billing"]}
                for session_id in ids
            ]
            body = bodies[0] if len(bodies) == 1 else bodies
            try:
                status = (
                    self.app_of()
                    .request("POST", "/api/conversations/", body=json.dumps(body), headers=bearer)
                    .status
                )
            except http.client.HTTPException:
                status = 0  # the answer was cut off by the kill: not an acknowledgement
            self.sent += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status in (200, 201):
                self.acknowledged.update(ids)
            elif status == 0:
                time.sleep(0.05)  # the server is down: retry soon, as a bot would


def test_server_killed_with_sigkill_under_ingestion_loses_no_acknowledged_conversation(
    served, cluster, keys, tmp_path
):
    apps = [served]
    clients = [Ingestion(lambda: apps[-1], key=keys[n], number=n) for n in range(4)]
    for client in clients:
        client.start()
    try:
        wait_for(lambda: sum(len(c.acknowledged) for c in clients) >= 200, seconds=30, what="ingestion")
        # Master and workers at once, as a power cut or the OOM killer would leave them.
        victims = {served.process.pid, *served.workers()}
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        served.process.wait(timeout=10)
        acknowledged_before_kill = sum(len(c.acknowledged) for c in clients)
        restart = tmp_path / "restart"
        restart.mkdir()
        apps.append(App(database_url=cluster.url, folder=restart, workers=2, threads=4))
        apps[-1].wait_until_serving()
        restarted_with = sum(len(c.acknowledged) for c in clients)
        wait_for(
            lambda: sum(len(c.acknowledged) for c in clients) >= restarted_with + 200,
            seconds=30,
            what="ingestion after the restart",
        )
    finally:
        for client in clients:
            client.done.set()
        for client in clients:
            client.join(timeout=30)
        apps[-1].stop()

    acknowledged = set().union(*(c.acknowledged for c in clients))
    stored = cluster.session_ids()
    statuses: dict[int, int] = {}
    for client in clients:
        for status, count in client.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    print(
        f"\n{sum(c.sent for c in clients)} requests, {statuses}; {len(acknowledged)} conversations "
        f"acknowledged ({acknowledged_before_kill} before the kill of {len(victims)} processes), "
        f"{len(stored)} stored, {len(acknowledged - stored)} lost"
    )
    assert acknowledged - stored == set()
    assert set(statuses) <= {0, 200, 201}, statuses
