"""The client's spool and sender against a scripted stand-in for the server (tests/client_stub.py):
batching, retries and Retry-After, 413 splits, 400s narrowed to the items at fault (named, or
bisected), timestamps ahead of the server's clock, refused keys, late CSAT, the size cap,
several processes on one spool. The real server: tests/test_client_live.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from supportanalytics_client import AnalyticsTracker, SpoolFull, SupportAnalyticsError
from tests.client_stub import Request, StubServer, wait_for

CLIENT_SRC = Path(__file__).resolve().parent.parent / "client" / "src"
SECRET_CUSTOMER = "crm-secret-4711"


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def make_tracker(tmp_path):
    trackers = []

    def make(url: str, *, spool: Path | None = None, **settings) -> AnalyticsTracker:
        settings = {"linger": 0.05, "max_backoff": 0.5, **settings}
        tracker = AnalyticsTracker(url, "test-key", spool or tmp_path / "spool.sqlite3", **settings)
        trackers.append(tracker)
        return tracker

    yield make
    for tracker in trackers:
        tracker.close(timeout=0)


def log(tracker: AnalyticsTracker, session_id: str, turns: int = 3, **fields) -> None:
    tracker.log_conversation(session_id, turns, True, ["billing"], [800, 1200.5], **fields)


def spooled(path: Path, table: str = "pending") -> list[sqlite3.Row]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused


# --- Logging ---------------------------------------------------------------------------------


def test_a_logged_conversation_is_spooled_with_the_time_of_the_call(make_tracker, tmp_path):
    tracker = make_tracker(DOWN)
    before = datetime.now(UTC)
    tracker.log_conversation(
        "abc-123", 4, True, ("billing", "refund"), [820, 1140], channel="web", ai_cost=Decimal("0.05")
    )
    assert tracker.flush(0) == 1  # copies the journal into the spool
    (row,) = spooled(tmp_path / "spool.sqlite3")
    body = json.loads(row["body"])
    assert datetime.fromisoformat(body.pop("timestamp")) - before < timedelta(seconds=5)
    # csat=None is left out, so a score set earlier (log_csat) is kept by the server.
    assert body == {
        "session_id": "abc-123",
        "turns": 4,
        "resolved_by_ai": True,
        "topics": ["billing", "refund"],
        "response_times": [820, 1140],
        "channel": "web",
        "ai_cost": "0.05",
    }
    assert (row["session_id"], row["kind"]) == ("abc-123", "conversation")


def test_a_bad_value_raises_at_the_call_naming_the_field_and_stores_nothing(make_tracker, tmp_path):
    tracker = make_tracker(DOWN)
    with pytest.raises(ValueError, match=r"^csat: must be at most 5$"):
        log(tracker, "s-1", csat=6)
    with pytest.raises(ValueError, match=r"^customer_id: may not be empty$"):
        log(tracker, "s-1", customer_id="")
    with pytest.raises(ValueError, match=r"^timestamp: may not be more than 300 seconds in the future$"):
        log(tracker, "s-1", timestamp=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(TypeError, match="unexpected keyword arguments: chanel"):
        log(tracker, "s-1", chanel="web")
    assert spooled(tmp_path / "spool.sqlite3") == []


def test_the_tutorials_constructor_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SUPPORTANALYTICS_URL", DOWN + "/")
    monkeypatch.setenv("SUPPORTANALYTICS_API_KEY", "from-env")
    monkeypatch.setenv("SUPPORTANALYTICS_SPOOL_PATH", str(tmp_path / "env.sqlite3"))
    tracker = AnalyticsTracker(log_file="data/analytics.jsonl")  # accepted, ignored
    try:
        assert (tracker.url, tracker.spool_path) == (DOWN, str(tmp_path / "env.sqlite3"))
    finally:
        tracker.close(timeout=0)
    assert not Path("data/analytics.jsonl").exists()
    monkeypatch.delenv("SUPPORTANALYTICS_URL")
    with pytest.raises(SupportAnalyticsError, match="SUPPORTANALYTICS_URL"):
        AnalyticsTracker()
    with pytest.raises(SupportAnalyticsError, match="http"):
        AnalyticsTracker("data/analytics.jsonl")  # the tutorial's positional log_file


def test_a_full_spool_raises_spool_full_and_drops_nothing(make_tracker, tmp_path, stub):
    tracker = make_tracker(DOWN, spool_max_bytes=64 * 1024)
    logged = 0
    with pytest.raises(SpoolFull):
        for number in range(10_000):
            log(tracker, f"s-{number}", customer_id=SECRET_CUSTOMER)
            logged += 1
    assert 20 < logged < 10_000
    # Every call that returned is kept: in the spool, or in the journal for what did not fit.
    assert tracker.flush(0) == logged
    assert 20 < len(spooled(tmp_path / "spool.sqlite3")) <= logged
    tracker.close(timeout=0)
    # The next tracker on the same spool sends every one of them.
    assert make_tracker(stub.url).flush(60) == 0
    assert sorted(item["session_id"] for item in stub.conversations()) == sorted(
        f"s-{number}" for number in range(logged)
    )


# --- The journal: what a logging call writes to --------------------------------------------------


JOURNALED_BOT = """
import os, signal, sys
sys.path.insert(0, {src!r})
from supportanalytics_client import AnalyticsTracker
tracker = AnalyticsTracker({url!r}, "k", {spool!r}, journal_interval=3600)  # no copy to the spool
for number in range(2_000):
    tracker.log_conversation(f"s-{{number % 500}}", number // 500 + 1, True, ["billing"], [800])
os.kill(os.getpid(), signal.SIGKILL)  # the moment the last call returned
"""


def test_a_bot_killed_the_moment_its_calls_returned_loses_none_of_them(make_tracker, stub, tmp_path):
    spool = tmp_path / "spool.sqlite3"
    script = JOURNALED_BOT.format(src=str(CLIENT_SRC), url=DOWN, spool=str(spool))
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert spooled(spool) == []  # all of it in the journal only
    assert len(list((tmp_path / "spool.sqlite3.journals").glob("*.journal"))) == 1
    # The next tracker on the spool copies the dead process's journal, in the order logged.
    tracker = make_tracker(stub.url, spool=spool)
    assert tracker.flush(60) == 0
    assert [(item["session_id"], item["turns"]) for item in stub.conversations()] == [
        (f"s-{number % 500}", number // 500 + 1) for number in range(2_000)
    ]
    assert list((tmp_path / "spool.sqlite3.journals").iterdir()) == []


def test_a_record_cut_short_ends_the_journal_and_what_came_before_is_recovered(make_tracker, tmp_path):
    from supportanalytics_client import _journal

    path = tmp_path / "spool.sqlite3"
    tracker = make_tracker(DOWN, spool=path, journal_interval=3600)
    for number in range(3):
        log(tracker, f"s-{number}")
    journal = tracker._journals._local.journal
    entries = _journal.read_entries(journal.name, journal.map, 0, journal.end)
    assert [entry.session_id for entry in entries] == ["s-0", "s-1", "s-2"]
    # A kill in the middle of the third record's write: its header (written last) is torn.
    journal.map[entries[1].end + 2] ^= 0xFF
    assert [e.session_id for e in _journal.read_entries(journal.name, journal.map, 0, journal.end)] == [
        "s-0",
        "s-1",
    ]
    # A stale progress row (its journal deleted by a process that died before forgetting it).
    tracker._spool.add_moved([], [("gone-00000001", 99)])
    del tracker._journals._published[journal]  # as a kill would: the lock goes, the file stays
    journal.close()
    recovering = make_tracker(DOWN, spool=path)
    assert recovering.flush(0) == 2
    assert [row["session_id"] for row in spooled(path)] == ["s-0", "s-1"]
    assert spooled(path, "journals") == []
    assert list((tmp_path / "spool.sqlite3.journals").iterdir()) == []


def test_journals_a_thread_fills_faster_than_they_are_copied_stop_at_the_cap(
    make_tracker, monkeypatch, tmp_path
):
    from supportanalytics_client import _journal

    monkeypatch.setattr(_journal, "SEGMENT_BYTES", 4096)
    tracker = make_tracker(DOWN, spool_max_bytes=64 * 1024, journal_interval=3600)  # never copied
    logged = 0
    with pytest.raises(SpoolFull, match="bytes wait in this thread's journals"):
        for number in range(10_000):
            log(tracker, f"s-{number}")
            logged += 1
    journals = list((tmp_path / "spool.sqlite3.journals").glob("*.journal"))
    # At most a quarter of the spool's cap waits in a thread's journals.
    assert 16 * 1024 <= sum(path.stat().st_size for path in journals) <= 16 * 1024 + 2 * 4096
    assert tracker.flush(0) == logged  # copied now: every call that returned
    log(tracker, "after")  # and the calls go on
    assert tracker.flush(0) == logged + 1


def test_a_session_logged_by_one_thread_after_another_keeps_its_order(make_tracker, stub, monkeypatch):
    from supportanalytics_client import _journal

    monkeypatch.setattr(_journal, "SEGMENT_BYTES", 4096)  # a new journal every 20-odd calls
    tracker = make_tracker(stub.url, journal_interval=0.001)
    turns = iter(range(1, 401))
    baton = [threading.Event(), threading.Event()]

    def take_turns(mine: int) -> None:
        for _ in range(200):
            baton[mine].wait()
            baton[mine].clear()
            log(tracker, "shared", turns=next(turns))
            log(tracker, f"own-{mine}")
            baton[1 - mine].set()

    threads = [threading.Thread(target=take_turns, args=(mine,)) for mine in (0, 1)]
    for thread in threads:
        thread.start()
    baton[0].set()
    for thread in threads:
        thread.join()
    assert tracker.flush(60) == 0
    shared = [item["turns"] for item in stub.conversations() if item["session_id"] == "shared"]
    assert shared == list(range(1, 401))
    assert len(stub.conversations()) == 800
    # The journals of the threads that ended (and every full one) are gone, files and rows.
    assert list(Path(tracker.spool_path + ".journals").iterdir()) == []
    assert spooled(Path(tracker.spool_path), "journals") == []


# --- Batches ---------------------------------------------------------------------------------


def test_batches_hold_at_most_1000_conversations_and_go_out_in_the_order_logged(make_tracker, stub):
    tracker = make_tracker(stub.url)
    for number in range(2_500):
        log(tracker, f"s-{number % 700}", turns=number // 700)  # 4 versions of most sessions
    assert tracker.flush(60) == 0
    assert all(len(batch.body) <= 1000 for batch in stub.batches())
    sent = [(item["session_id"], item["turns"]) for item in stub.conversations()]
    assert sorted(sent) == sorted((f"s-{n % 700}", n // 700) for n in range(2_500))
    for session in range(700):  # every version of a session after the one before
        turns = [t for s, t in sent if s == f"s-{session}"]
        assert turns == sorted(turns)
    assert all(batch.headers["authorization"] == "Bearer test-key" for batch in stub.batches())


def test_a_batch_waits_a_second_for_company_unless_flushed(make_tracker, stub):
    tracker = make_tracker(stub.url, linger=1.0)
    log(tracker, "s-1")
    log(tracker, "s-2")
    wait_for(lambda: stub.batches(), what="the lingering batch")
    assert [item["session_id"] for item in stub.conversations()] == ["s-1", "s-2"]


def test_a_413_splits_the_batch_until_it_fits(make_tracker, stub):
    def answer(request: Request):
        if request.is_batch and len(request.body) > 40:
            return 413, {}, {"detail": "Request body too large: at most 2 MB."}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    tracker = make_tracker(stub.url)
    for number in range(100):
        log(tracker, f"s-{number}")
    assert tracker.flush(30) == 0
    assert [item["session_id"] for item in stub.conversations()] == [f"s-{n}" for n in range(100)]
    assert {len(batch.body) for batch in stub.batches(stored_only=False)} == {100, 50, 25}
    assert tracker.dead_letters() == []


# --- 400s: the item at fault, and only it ------------------------------------------------------


def refuse(bad: set[str], *, name_index: bool = True):
    """A server that refuses any array holding one of the `bad` session ids, with a 400 that
    names each one's index (as ours does), or names none."""

    def answer(request: Request):
        if request.is_batch:
            errors = [
                {"index": index, "field": "outcome", "message": "Contradicts resolved_by_ai."}
                for index, item in enumerate(request.body)
                if item["session_id"] in bad
            ]
            if errors:
                if not name_index:
                    return 400, {}, {"detail": "Invalid input."}
                return 400, {}, {"detail": f"{len(errors)} problems in the request.", "errors": errors}
            return 200, {}, {"created": len(request.body), "updated": 0}
        return 200, {}, {}

    return answer


@pytest.mark.parametrize("name_index", [True, False], ids=["named", "bisected"])
def test_a_400_dead_letters_the_items_at_fault_and_sends_the_rest(
    make_tracker, stub, tmp_path, caplog, name_index
):
    stub.answer = refuse({"s-7", "s-30"}, name_index=name_index)
    tracker = make_tracker(stub.url)
    caplog.set_level(logging.DEBUG, logger="supportanalytics_client")
    for number in range(50):
        log(tracker, f"s-{number}", customer_id=SECRET_CUSTOMER)
    assert tracker.flush(30) == 0
    assert [item["session_id"] for item in stub.conversations()] == [
        f"s-{n}" for n in range(50) if n not in (7, 30)
    ]
    dead = tracker.dead_letters()
    assert [(letter.session_id, letter.kind, letter.status) for letter in dead] == [
        ("s-7", "conversation", 400),
        ("s-30", "conversation", 400),
    ]
    assert dead[0].message == ("outcome: Contradicts resolved_by_ai." if name_index else "Invalid input.")
    assert json.loads(dead[0].body)["customer_id"] == SECRET_CUSTOMER  # kept whole, to fix and resend
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("s-7" in message for message in warnings) == 1
    assert not any(SECRET_CUSTOMER in r.getMessage() for r in caplog.records)
    if name_index:  # one refused array, then the rest at once
        assert len(stub.batches(stored_only=False)) == 2


def test_a_400_for_a_timestamp_ahead_of_the_servers_clock_is_retried_not_dead_lettered(make_tracker, stub):
    refused = []

    def answer(request: Request):
        if request.is_batch and not refused:
            refused.append(request)
            errors = [
                {"index": 1, "field": "timestamp", "message": "May not be more than 5 minutes in the future."}
            ]
            return 400, {}, {"detail": "item 1, timestamp: ...", "errors": errors}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    tracker = make_tracker(stub.url)
    for number, turns in ((0, 1), (1, 1), (2, 1), (1, 2)):  # s-1 twice: its versions stay in order
        log(tracker, f"s-{number}", turns=turns)
    assert tracker.flush(30) == 0
    assert tracker.dead_letters() == []
    sent = [(item["session_id"], item["turns"]) for item in stub.conversations()]
    assert sent.index(("s-1", 1)) < sent.index(("s-1", 2))
    assert sorted(sent) == [("s-0", 1), ("s-1", 1), ("s-1", 2), ("s-2", 1)]


# --- Retries -----------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(make_tracker, stub, caplog):
    throttled = []

    def answer(request: Request):
        if request.is_batch and not throttled:
            throttled.append(request)
            return (
                429,
                {"Retry-After": "2"},
                {"detail": "Request was throttled. Expected available in 2 seconds."},
            )
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    caplog.set_level(logging.DEBUG, logger="supportanalytics_client")
    tracker = make_tracker(stub.url)
    log(tracker, "s-1")
    assert tracker.flush(30) == 0
    first, *later = [r for r in stub.requests if r.path == "/api/conversations/"]
    assert first.status == 429
    # Nothing at all (not even the empty probe) before the 2 seconds are over.
    assert later and all(request.at - first.at >= 2.0 for request in later)
    (record,) = [r for r in caplog.records if getattr(r, "supportanalytics_status", None) == 429]
    assert record.supportanalytics_retry_after == 2.0
    assert record.supportanalytics_delay >= 2.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_until_it_answers(make_tracker, stub, status):
    failures = []

    def answer(request: Request):
        if request.path == "/api/conversations/" and len(failures) < 3:
            failures.append(request)
            return status, {}, {"detail": "The database is unavailable."}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    tracker = make_tracker(stub.url)
    log(tracker, "s-1")
    assert tracker.flush(30) == 0
    assert [item["session_id"] for item in stub.conversations()] == ["s-1"]


def test_an_unreachable_server_keeps_everything_and_flush_says_how_much_waits(make_tracker, tmp_path):
    tracker = make_tracker(DOWN)
    for number in range(5):
        log(tracker, f"s-{number}")
    tracker.log_csat("s-99", 4)
    assert tracker.flush(0.5) == 6
    assert len(spooled(tmp_path / "spool.sqlite3")) == 6


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_keeps_everything_spooled_and_logs_an_error(make_tracker, stub, caplog, status):
    refusing = [True]

    def answer(request: Request):
        if refusing[0]:
            return status, {}, {"detail": "Invalid API key."}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    caplog.set_level(logging.DEBUG, logger="supportanalytics_client")
    tracker = make_tracker(stub.url)
    for number in range(3):
        log(tracker, f"s-{number}")
    assert tracker.flush(1.5) == 3
    assert tracker.dead_letters() == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "SUPPORTANALYTICS_API_KEY" in errors[0].getMessage()
    refusing[0] = False  # the key fixed on the server's side
    assert tracker.flush(30) == 0
    assert [item["session_id"] for item in stub.conversations()] == ["s-0", "s-1", "s-2"]


def test_a_redirect_is_not_followed(make_tracker, stub, caplog):
    redirecting = [True]

    def answer(request: Request):
        if redirecting[0]:
            return 301, {"Location": "https://analytics.example.test/api/conversations/"}, {}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    caplog.set_level(logging.ERROR, logger="supportanalytics_client")
    tracker = make_tracker(stub.url)
    log(tracker, "s-1")
    assert tracker.flush(1.0) == 1
    assert any("https://analytics.example.test" in r.getMessage() for r in caplog.records)
    assert all(request.method == "POST" for request in stub.requests)  # never turned into a GET
    redirecting[0] = False
    assert tracker.flush(30) == 0


# --- Late CSAT ---------------------------------------------------------------------------------


def test_a_late_csat_is_merged_into_its_unsent_conversation(make_tracker, stub, tmp_path):
    tracker = make_tracker(DOWN)
    log(tracker, "s-1")
    log(tracker, "s-2")
    tracker.log_csat("s-1", 5)
    tracker.log_csat("s-1", 4)  # the newest score wins
    rows = spooled(tmp_path / "spool.sqlite3")
    assert [(row["kind"], json.loads(row["body"]).get("csat")) for row in rows] == [
        ("conversation", 4),
        ("conversation", None),
    ]
    tracker.close(timeout=0)
    assert make_tracker(stub.url).flush(30) == 0
    assert [(item["session_id"], item.get("csat")) for item in stub.conversations()] == [
        ("s-1", 4),
        ("s-2", None),
    ]
    assert [request for request in stub.requests if request.csat_session] == []


def test_a_late_csat_after_its_conversation_went_out_is_posted_to_the_csat_endpoint(make_tracker, stub):
    tracker = make_tracker(stub.url)
    log(tracker, "team/a b?1")  # a session id that needs quoting in a path
    assert tracker.flush(30) == 0
    tracker.log_csat("team/a b?1", 2)
    assert tracker.flush(30) == 0
    (request,) = [request for request in stub.requests if request.csat_session]
    assert request.path == "/api/conversations/team%2Fa%20b%3F1/csat/"
    assert (request.csat_session, request.body) == ("team/a b?1", {"csat": 2})


def test_a_csat_answered_404_is_retried_for_a_while_then_dead_lettered(make_tracker, stub):
    stored = set()

    def answer(request: Request):
        if request.csat_session is not None:
            if request.csat_session in stored:
                return 200, {}, {}
            return 404, {}, {"detail": f"No conversation with session_id {request.csat_session!r}."}
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = answer
    tracker = make_tracker(stub.url, csat_retry_seconds=3)
    tracker.log_csat("arrives-later", 5)
    tracker.log_csat("never-arrives", 1)
    wait_for(lambda: any(r.csat_session == "arrives-later" for r in stub.requests), what="a first try")
    stored.add("arrives-later")  # another process's spool delivered it meanwhile
    assert tracker.flush(60) == 0
    assert [r.status for r in stub.requests if r.csat_session == "arrives-later"][-1] == 200
    (letter,) = tracker.dead_letters()
    assert (letter.session_id, letter.kind, letter.status) == ("never-arrives", "csat", 404)
    assert len([r for r in stub.requests if r.csat_session == "never-arrives"]) >= 2


# --- Several processes on one spool ------------------------------------------------------------


def test_trackers_sharing_a_spool_never_send_a_row_twice_and_keep_each_sessions_order(
    make_tracker, stub, tmp_path
):
    def slow(request: Request):
        time.sleep(0.01)  # requests overlap: the other sender claims meanwhile
        return 200, {}, {"created": len(request.body or []), "updated": 0}

    stub.answer = slow
    # Two trackers with their own senders, locks and connections, as two gunicorn workers.
    first = make_tracker(stub.url, max_batch=50)
    second = make_tracker(stub.url, max_batch=50)
    for number in range(3_000):
        log(first if number % 2 else second, f"s-{number % 300}", turns=number // 300)
    assert first.flush(120) == 0
    sent = [(item["session_id"], item["turns"]) for item in stub.conversations()]
    assert len(sent) == len(set(sent)) == 3_000
    for session in range(300):
        turns = [t for s, t in sent if s == f"s-{session}"]
        assert turns == sorted(turns)


def test_rows_leased_by_a_process_that_died_are_sent_once_the_lease_runs_out(make_tracker, stub, tmp_path):
    path = tmp_path / "spool.sqlite3"
    make_tracker(DOWN, spool=path).close(timeout=0)  # creates the spool
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO pending (session_id, kind, body, enqueued_at, lease_owner, lease_until) "
            "VALUES (?, 'conversation', ?, ?, ?, ?)",
            [
                (f"s-{n}", json.dumps({"session_id": f"s-{n}", "turns": 1, "resolved_by_ai": True}),
                 time.time(), "dead-host:1:x/1", time.time() + 2)
                for n in range(3)
            ],
        )  # fmt: skip
    tracker = make_tracker(stub.url, spool=path)
    assert tracker.flush(0.5) == 3  # still leased by the dead process
    assert tracker.flush(30) == 0
    assert [item["session_id"] for item in stub.conversations()] == ["s-0", "s-1", "s-2"]


# --- Exit --------------------------------------------------------------------------------------


EXITING_BOT = """
import sys, time
sys.path.insert(0, {src!r})
from supportanalytics_client import AnalyticsTracker
tracker = AnalyticsTracker({url!r}, "k", {spool!r}, exit_timeout=1.0)
tracker.log_conversation("s-1", 3, True, ["billing"], [800])
print("logged", flush=True)
"""


def test_at_exit_the_flush_is_bounded_by_exit_timeout_and_the_spool_keeps_the_rest(tmp_path, stub):
    spool = tmp_path / "spool.sqlite3"
    run = subprocess.run(
        [sys.executable, "-c", EXITING_BOT.format(src=str(CLIENT_SRC), url=DOWN, spool=str(spool))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (run.returncode, run.stdout) == (0, "logged\n"), run.stderr
    assert "1 rows stay in the spool" in run.stderr
    assert [row["session_id"] for row in spooled(spool)] == ["s-1"]
    # With the server up, the exit flush delivers before the process ends.
    spool.unlink()
    run = subprocess.run(
        [sys.executable, "-c", EXITING_BOT.format(src=str(CLIENT_SRC), url=stub.url, spool=str(spool))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [item["session_id"] for item in stub.conversations()] == ["s-1"]
    assert spooled(spool) == []


FORKING_BOT = """
import os, sys
sys.path.insert(0, {src!r})
from supportanalytics_client import AnalyticsTracker
tracker = AnalyticsTracker({url!r}, "k", {spool!r}, linger=0.05)  # made before the fork (gunicorn --preload)
tracker.log_conversation("parent-1", 3, True, ["billing"], [800])
for number in range(5):  # forks while the parent's sender polls the spool
    child = os.fork()
    if child == 0:
        tracker.log_conversation(f"child-{{number}}", 3, True, ["billing"], [800])  # own connection, sender
        tracker.close(timeout=30)
        os._exit(0)
    os.waitpid(child, 0)
tracker.log_conversation("parent-2", 3, True, ["billing"], [800])
print(tracker.flush(30), flush=True)
"""


def test_a_tracker_made_before_a_fork_works_in_the_parent_and_the_child(tmp_path, stub):
    script = FORKING_BOT.format(src=str(CLIENT_SRC), url=stub.url, spool=str(tmp_path / "spool.sqlite3"))
    # A session of its own: a child stuck in a deadlock is ended with its parent, not left behind.
    bot = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = bot.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(bot.pid, signal.SIGKILL)
        bot.communicate()
        raise
    assert (bot.returncode, stdout) == (0, "0\n"), stderr
    assert sorted(item["session_id"] for item in stub.conversations()) == [
        *(f"child-{number}" for number in range(5)),
        "parent-1",
        "parent-2",
    ]
