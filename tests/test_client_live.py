"""The client against the real server: gunicorn (production settings) on a throwaway database
(benchmarks/throwaway_server.py, which bench.py's helpers start).

* 4 threads log 10,000 conversations while the server is stopped and started again twice (once
  gracefully, once with SIGKILL): each is stored exactly once, with its values.
* The bot process is killed with SIGKILL mid-stream and started again: everything it logged
  before, and everything after, is stored.
* A server that answers 429 with Retry-After (a low API_THROTTLE_INGEST_RATE) is honoured.
* A batch with one item the server refuses dead-letters that item only; late CSAT, the summary.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.throwaway_server import ThrowawayServer
from supportanalytics_client import AnalyticsTracker, SupportAnalyticsError

BASE_DIR = Path(__file__).resolve().parent.parent
CLIENT_SRC = BASE_DIR / "client" / "src"
SECRET_CUSTOMER = "crm-live-secret-99"

STORED = """
SELECT c.session_id, c.turns, c.resolved_by_ai, c.csat, c.channel, c.avg_response_ms, c.response_count,
       c.customer_hash IS NOT NULL, c.timestamp,
       array(SELECT t.name FROM conversations_topic t WHERE t.id = ANY(c.topic_ids) ORDER BY t.name)
FROM conversations_conversation c WHERE c.session_id LIKE %s
"""


@pytest.fixture(scope="module")
def live():
    server = ThrowawayServer(f"supportanalytics_client_test_{os.getpid()}")
    try:
        server.key = server.create_key("all")
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def tracker_at(live, tmp_path):
    trackers = []

    def make(**settings) -> AnalyticsTracker:
        settings = {"max_backoff": 1.0, **settings}
        tracker = AnalyticsTracker(live.base_url, live.key, tmp_path / "spool.sqlite3", **settings)
        trackers.append(tracker)
        return tracker

    yield make
    for tracker in trackers:
        tracker.close(timeout=0)


PHASES = (800, 1_600, 2_100, 2_500)  # each of the bot's threads logs up to these numbers, phase by phase


def wait_until(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the bot's threads stopped logging"
        time.sleep(0.01)


def stored(live, prefix: str) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in live.rows(STORED, (f"{prefix}%",))}


def values(thread: int, number: int) -> dict:
    return {
        "turns": number % 50,
        "resolved_by_ai": number % 3 != 0,
        "topics": [f"topic {number % 7}"],
        "response_times": [100 + number % 900, 250.5],
        "csat": 1 + number % 5 if number % 4 == 0 else None,
        "channel": ("web", "sms")[thread % 2],
        "customer_id": f"{SECRET_CUSTOMER}-{number % 300}",
    }


def test_four_threads_log_10000_while_the_server_is_stopped_and_restarted_twice(live, tracker_at):
    """The bot's threads log in phases the test steps through, so that each outage falls in
    the middle of the stream whatever the machine's speed: a graceful stop, logging while
    the server is down, a start; then a SIGKILL of the server while the sender is sending."""
    tracker = tracker_at()
    started = datetime.now(UTC)
    logged = [0] * 4
    go = [threading.Event() for _ in range(4)]  # phase n may start

    def bot(thread: int) -> None:
        for phase, (start, end) in enumerate(zip((0, *PHASES[:-1]), PHASES, strict=True)):
            go[phase].wait(timeout=300)
            for number in range(start, end):
                tracker.log_conversation(f"outage-{thread}-{number}", **values(thread, number))
                logged[thread] = number + 1
                time.sleep(0.001)

    def reached(count: int) -> bool:
        return min(logged) >= count

    threads = [threading.Thread(target=bot, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        go[0].set()
        wait_until(lambda: reached(PHASES[0]))
        live.stop()  # graceful: requests under way are answered
        go[1].set()  # logged while the server is down
        wait_until(lambda: reached(PHASES[1]))
        live.start()
        go[2].set()
        wait_until(lambda: reached(1_800))
        live.kill()  # SIGKILL mid-stream: requests under way get no answer
        wait_until(lambda: reached(PHASES[2]))
        live.start()
        go[3].set()
    finally:
        for event in go:
            event.set()
        for thread in threads:
            thread.join()
    assert tracker.flush(300) == 0
    rows = stored(live, "outage-")
    assert len(rows) == 10_000
    for thread in range(4):
        for number in range(2_500):
            fields = values(thread, number)
            times = fields["response_times"]
            row = rows[f"outage-{thread}-{number}"]
            assert row[:7] == (
                fields["turns"], fields["resolved_by_ai"], fields["csat"], fields["channel"],
                round(sum(times) / len(times), 3), len(times), True,
            )  # fmt: skip
            assert started <= row[7] <= datetime.now(UTC)
            assert list(row[8]) == fields["topics"]
    assert tracker.dead_letters() == []


KILLED_BOT = """
import sys, time
sys.path.insert(0, {src!r})
from supportanalytics_client import AnalyticsTracker
tracker = AnalyticsTracker({url!r}, {key!r}, {spool!r}, timeout=2, lease_seconds=5, max_backoff=1)
for number in range({first}, {last}):
    tracker.log_conversation(f"killed-{{number}}", number % 20, True, ["billing"], [500, 700])
    print(number, flush=True)
    time.sleep(0.002)
print("flush", tracker.flush(120), flush=True)
"""


def test_the_bot_killed_mid_stream_and_started_again_delivers_everything(live, tmp_path):
    spool = tmp_path / "bot.sqlite3"

    def bot(first: int, last: int) -> subprocess.Popen:
        script = KILLED_BOT.format(
            src=str(CLIENT_SRC), url=live.base_url, key=live.key, spool=str(spool), first=first, last=last
        )
        return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)

    first = bot(0, 3_000)
    last_logged = -1
    for line in first.stdout:
        last_logged = int(line)
        if last_logged >= 1_000:
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    with sqlite3.connect(spool) as connection:
        waiting = connection.execute("SELECT count(*) FROM pending").fetchone()[0]
    journals = list(spool.parent.glob("bot.sqlite3.journals/*.journal"))
    # The kill left logged conversations unsent: in the spool (some of them leased), and the
    # last ones in the dead process's journal.
    assert waiting > 0 or journals
    again = bot(last_logged + 1, 3_000)
    output, _ = again.communicate(timeout=300)
    assert output.splitlines()[-1] == "flush 0"
    assert set(stored(live, "killed-")) == {f"killed-{number}" for number in range(3_000)}


def test_a_server_answering_429_with_retry_after_is_honoured(live, tracker_at, caplog):
    live.stop()
    live.start(environment={"API_THROTTLE_INGEST_RATE": "2/second"})
    try:
        caplog.set_level(logging.DEBUG, logger="supportanalytics_client")
        tracker = tracker_at(max_batch=100)
        for number in range(1_000):
            tracker.log_conversation(f"throttled-{number}", 3, True, ["billing"], [500])
        assert tracker.flush(120) == 0
    finally:
        live.stop()
        live.start()
    assert len(stored(live, "throttled-")) == 1_000
    throttled = [r for r in caplog.records if getattr(r, "supportanalytics_status", None) == 429]
    assert throttled  # 10 batches at 2 requests a second: some were refused
    for record in throttled:
        assert record.supportanalytics_retry_after >= 1
        assert record.supportanalytics_delay >= record.supportanalytics_retry_after
    # Each wait ends in a new window of the limit, where the next request is taken: at most one
    # refusal per batch (a client retrying sooner would be refused again and again).
    assert len(throttled) <= 10


def test_one_bad_item_in_a_batch_is_dead_lettered_alone(live, tracker_at, caplog):
    caplog.set_level(logging.DEBUG, logger="supportanalytics_client")
    tracker = tracker_at()
    for number in range(50):
        # "escalated" contradicts resolved_by_ai=True: a rule between fields, the server's.
        outcome = "escalated" if number == 17 else "assumed"
        tracker.log_conversation(
            f"one-bad-{number}", 3, True, ["billing"], [500], outcome=outcome, customer_id=SECRET_CUSTOMER
        )
    assert tracker.flush(60) == 0
    assert set(stored(live, "one-bad-")) == {f"one-bad-{n}" for n in range(50) if n != 17}
    (letter,) = tracker.dead_letters()
    assert (letter.session_id, letter.status) == ("one-bad-17", 400)
    assert letter.message.startswith("outcome: Contradicts resolved_by_ai")
    assert [r.levelname for r in caplog.records if "one-bad-17" in r.getMessage()] == ["WARNING"]
    assert not any(SECRET_CUSTOMER in r.getMessage() for r in caplog.records)


def test_late_csat_and_the_summary_through_the_real_endpoints(live, tracker_at):
    tracker = tracker_at(csat_retry_seconds=2)
    tracker.log_conversation("late/csat 1", 3, True, ["billing"], [500])
    assert tracker.flush(60) == 0
    tracker.log_csat("late/csat 1", 4)  # after it went out: the CSAT endpoint
    tracker.log_csat("never-logged", 2)  # 404, retried for 2 s, then a dead letter
    assert tracker.flush(60) == 0
    assert stored(live, "late/csat 1")["late/csat 1"][2] == 4
    (letter,) = tracker.dead_letters()
    assert (letter.session_id, letter.kind, letter.status) == ("never-logged", "csat", 404)

    summary = tracker.get_summary(hours=24)
    assert summary["total_conversations"] >= 1
    assert {"ai_resolution_rate", "avg_csat", "top_topics", "avg_turns", "estimated_savings"} <= set(summary)

    ingest_only = AnalyticsTracker(live.base_url, live.create_key("ingest"), tracker.spool_path)
    try:
        with pytest.raises(SupportAnalyticsError, match="403"):
            ingest_only.get_summary()
    finally:
        ingest_only.close(timeout=0)
