"""`manage.py import_jsonl PATH...`: the tutorial tracker's analytics.jsonl files."""

import gc
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from conversations.management.commands import import_jsonl
from conversations.models import Conversation
from tests.conftest import T0
from tests.scans import topic_links, topic_names

pytestmark = [
    # The writes run in writer threads with connections of their own: real commits, so the
    # test database is emptied after each test instead of rolled back.
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("frozen_now"),
]


def tracker_line(session_id: str, **overrides) -> str:
    """One line as the tutorial's tracker writes it: `json.dumps(entry)`, keys in its order."""
    entry = {
        "timestamp": "2026-03-14T11:00:00.123456",  # datetime.utcnow().isoformat(): naive, UTC
        "session_id": session_id,
        "turns": 4,
        "resolved_by_ai": True,
        "topics": ["billing"],
        "avg_response_ms": 850.5,
        "csat": None,
    }
    entry.update(overrides)
    return json.dumps(entry)


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


@dataclass(frozen=True)
class ImportRun:
    exit_code: int
    stdout: str
    stderr: str


def run_import(*paths: Path) -> ImportRun:
    """Run the command as `manage.py import_jsonl PATH...` would; a bad line ends in sys.exit(1)."""
    stdout, stderr = StringIO(), StringIO()
    try:
        call_command("import_jsonl", *map(str, paths), stdout=stdout, stderr=stderr)
    except SystemExit as exit_:
        return ImportRun(exit_code=exit_.code, stdout=stdout.getvalue(), stderr=stderr.getvalue())
    return ImportRun(exit_code=0, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def stored(session_id: str) -> dict:
    conversation = Conversation.objects.get(session_id=session_id)
    return {
        "timestamp": conversation.timestamp,
        "turns": conversation.turns,
        "resolved_by_ai": conversation.resolved_by_ai,
        "topics": topic_names(conversation),
        "avg_response_ms": conversation.avg_response_ms,
        "response_count": conversation.response_count,
        "csat": conversation.csat,
        "channel": conversation.channel,
        "bot_version": conversation.bot_version,
        "ai_cost": conversation.ai_cost,
        "received_at": conversation.received_at,
    }


def summary(*, lines: int, files: int = 1, new: int, replaced: int = 0, bad: int = 0) -> str:
    stored_count = new + replaced
    return (
        f"Imported {stored_count} conversations from {lines} lines in {files} file(s): "
        f"{new} new, {replaced} replaced, {bad} bad line(s) skipped.\n"
    )


def test_tracker_lines_are_stored_with_their_values(tmp_path):
    path = write_jsonl(
        tmp_path / "analytics.jsonl",
        [
            tracker_line(
                "abc-1",
                timestamp="2026-03-14T11:00:00.123456",
                turns=6,
                resolved_by_ai=False,
                topics=[" Billing  Issues", "REFUND", "refund "],
                avg_response_ms=1234.5,
                csat=2,
            ),
            tracker_line(
                "abc-2",
                timestamp="2026-03-13T23:59:59",
                turns=0,
                resolved_by_ai=True,
                topics=[],
                avg_response_ms=900,
                csat=None,
            ),
        ],
    )

    run = run_import(path)

    assert run == ImportRun(exit_code=0, stdout=summary(lines=2, new=2), stderr="")
    assert stored("abc-1") == {
        "timestamp": datetime(2026, 3, 14, 11, 0, 0, 123456, tzinfo=UTC),
        "turns": 6,
        "resolved_by_ai": False,
        "topics": ["billing issues", "refund"],
        "avg_response_ms": 1234.5,
        "response_count": None,
        "csat": 2,
        "channel": "",
        "bot_version": "",
        "ai_cost": None,
        "received_at": T0,
    }
    assert stored("abc-2") == {
        "timestamp": datetime(2026, 3, 13, 23, 59, 59, tzinfo=UTC),
        "turns": 0,
        "resolved_by_ai": True,
        "topics": [],
        "avg_response_ms": 900.0,
        "response_count": None,
        "csat": None,
        "channel": "",
        "bot_version": "",
        "ai_cost": None,
        "received_at": T0,
    }


def test_reimporting_the_same_file_replaces_and_never_duplicates(tmp_path):
    path = write_jsonl(
        tmp_path / "analytics.jsonl",
        [
            tracker_line("abc-1", topics=["billing", "refund"], csat=5),
            tracker_line("abc-2", topics=["shipping"]),
        ],
    )
    run_import(path)
    before = {session_id: stored(session_id) for session_id in ("abc-1", "abc-2")}

    run = run_import(path)

    assert run == ImportRun(exit_code=0, stdout=summary(lines=2, new=0, replaced=2), stderr="")
    assert Conversation.objects.count() == 2
    assert topic_links() == 3
    assert {session_id: stored(session_id) for session_id in ("abc-1", "abc-2")} == before


def test_a_changed_line_replaces_the_stored_conversation(tmp_path):
    run_import(write_jsonl(tmp_path / "first.jsonl", [tracker_line("abc-1", turns=3, topics=["billing"])]))

    run_import(write_jsonl(tmp_path / "second.jsonl", [tracker_line("abc-1", turns=7, topics=["refund"])]))

    assert Conversation.objects.count() == 1
    assert (stored("abc-1")["turns"], stored("abc-1")["topics"]) == (7, ["refund"])


def test_bad_lines_are_reported_skipped_and_make_the_command_fail(tmp_path):
    path = write_jsonl(
        tmp_path / "analytics.jsonl",
        [
            tracker_line("good-1"),
            '{"session_id": "broken", "turns": 4',
            "[1, 2, 3]",
            tracker_line("bad-turns", turns=-1),
            tracker_line("bad-resolved", resolved_by_ai="yes"),
            tracker_line("good-2"),
        ],
    )

    run = run_import(path)

    assert run.exit_code == 1
    errors = run.stderr.splitlines()
    assert len(errors) == 4
    # The rest of this message is the json module's wording.
    assert errors[0].startswith(f"{path}:2: not valid JSON (")
    assert errors[1:] == [
        f"{path}:3: not a JSON object",
        f"{path}:4: turns: Ensure this value is greater than or equal to 0.",
        f"{path}:5: resolved_by_ai: Must be a JSON boolean (true or false).",
    ]
    assert run.stdout == summary(lines=6, new=2, bad=4)
    assert set(Conversation.objects.values_list("session_id", flat=True)) == {"good-1", "good-2"}


def test_integers_beyond_64_bits_are_too_large_not_floats(tmp_path):
    # orjson would read these as floats ("not an integer"); such lines go to the json module.
    path = write_jsonl(
        tmp_path / "analytics.jsonl",
        [
            tracker_line("huge", turns=18446744073709551616),
            tracker_line("very-negative", turns=-9223372036854775809),
            tracker_line("long-id-digits-" + "1" * 30),
        ],
    )

    run = run_import(path)

    assert run.stderr.splitlines() == [
        f"{path}:1: turns: Ensure this value is less than or equal to 10000.",
        f"{path}:2: turns: Ensure this value is greater than or equal to 0.",
    ]
    assert list(Conversation.objects.values_list("session_id", flat=True)) == ["long-id-digits-" + "1" * 30]


def test_a_refused_line_too_deep_for_the_json_module_is_reported_not_fatal(tmp_path):
    # orjson reads up to 1,024 levels; the json module, asked again because of the 19 digits,
    # gives up near 1,000 (RecursionError).
    entry = json.loads(tracker_line("deep-1234567890123456789"))
    entry.pop("turns")  # refused: no turns
    line = json.dumps(entry)[:-1] + ', "extra": ' + "[" * 1020 + "]" * 1020 + "}"
    path = write_jsonl(tmp_path / "analytics.jsonl", [line, tracker_line("fine")])

    run = run_import(path)

    assert run.exit_code == 1
    [reason] = run.stderr.splitlines()
    assert reason.startswith(f"{path}:1: not valid JSON (maximum recursion depth exceeded")
    assert list(Conversation.objects.values_list("session_id", flat=True)) == ["fine"]


def test_timestamps_more_than_five_minutes_ahead_are_rejected(tmp_path):
    at_tolerance = (T0 + timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    past_tolerance = (T0 + timedelta(minutes=5, microseconds=1)).replace(tzinfo=None).isoformat()
    path = write_jsonl(
        tmp_path / "analytics.jsonl",
        [
            tracker_line("at-tolerance", timestamp=at_tolerance),
            tracker_line("past-tolerance", timestamp=past_tolerance),
        ],
    )

    run = run_import(path)

    assert run == ImportRun(
        exit_code=1,
        stdout=summary(lines=2, new=1, bad=1),
        stderr=f"{path}:2: timestamp: May not be more than 5 minutes in the future.\n",
    )
    assert list(Conversation.objects.values_list("session_id", "timestamp")) == [
        ("at-tolerance", T0 + timedelta(minutes=5))
    ]


def test_blank_lines_are_skipped_without_error(tmp_path):
    path = tmp_path / "analytics.jsonl"
    path.write_text(f"\n{tracker_line('abc-1')}\n   \n\t\n{tracker_line('abc-2')}\n\n")

    run = run_import(path)

    # Blank lines count as lines read, not as bad lines.
    assert run == ImportRun(exit_code=0, stdout=summary(lines=6, new=2), stderr="")
    assert Conversation.objects.count() == 2


def test_several_files_in_one_call_the_later_file_wins(tmp_path):
    first = write_jsonl(tmp_path / "monday.jsonl", [tracker_line("abc-1"), tracker_line("shared", turns=2)])
    second = write_jsonl(tmp_path / "tuesday.jsonl", [tracker_line("abc-2"), tracker_line("shared", turns=9)])

    run = run_import(first, second)

    assert run == ImportRun(exit_code=0, stdout=summary(lines=4, files=2, new=3, replaced=1), stderr="")
    assert dict(Conversation.objects.values_list("session_id", "turns")) == {
        "abc-1": 4,
        "abc-2": 4,
        "shared": 9,
    }


def test_a_bad_line_in_the_second_file_names_that_file(tmp_path):
    first = write_jsonl(tmp_path / "monday.jsonl", [tracker_line("abc-1")])
    second = write_jsonl(tmp_path / "tuesday.jsonl", [tracker_line("abc-2"), "[]"])

    run = run_import(first, second)

    assert run == ImportRun(
        exit_code=1,
        stdout=summary(lines=3, files=2, new=2, bad=1),
        stderr=f"{second}:2: not a JSON object\n",
    )
    assert Conversation.objects.count() == 2


def test_a_missing_file_is_an_error_and_nothing_is_imported(tmp_path):
    present = write_jsonl(tmp_path / "analytics.jsonl", [tracker_line("abc-1")])
    missing = tmp_path / "missing.jsonl"

    with pytest.raises(CommandError, match=f"^{re.escape(str(missing))}: no such file$"):
        run_import(present, missing)

    assert Conversation.objects.count() == 0


def test_files_larger_than_one_batch_are_stored_completely(tmp_path, monkeypatch):
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 2)
    # "abc-1" comes back in the last batch: the later line replaces the earlier one.
    lines = [tracker_line(f"abc-{number}", turns=number) for number in range(1, 5)]
    path = write_jsonl(tmp_path / "analytics.jsonl", [*lines, tracker_line("abc-1", turns=10)])

    run = run_import(path)

    assert run == ImportRun(exit_code=0, stdout=summary(lines=5, new=4, replaced=1), stderr="")
    assert dict(Conversation.objects.values_list("session_id", "turns")) == {
        "abc-1": 10,
        "abc-2": 2,
        "abc-3": 3,
        "abc-4": 4,
    }


def test_a_batch_ends_at_an_hour_once_it_holds_enough_lines(tmp_path, monkeypatch):
    # Batches that share no hour share no hour or quarter-hour rollup rows; a batch ends where
    # the lines pass into the next UTC hour once it holds HOUR_BATCH_MIN lines, and at
    # BATCH_SIZE lines whatever the hour.
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 4)
    monkeypatch.setattr(import_jsonl, "HOUR_BATCH_MIN", 2)
    real_write = import_jsonl.services.conversations_ingest_write
    batches = []
    lock = threading.Lock()

    def recording_write(prepared):
        with lock:
            batches.append(sorted(prepared.items))
        return real_write(prepared)

    monkeypatch.setattr(import_jsonl.services, "conversations_ingest_write", recording_write)
    # "b" at 11:59:59.999999+01:00 is 10:59:59.999999 UTC, "c" at 11:00 UTC: an hour's edge.
    timestamps = {
        "a": "2026-03-13T10:00:00",
        "b": "2026-03-13T11:59:59.999999+01:00",
        **dict.fromkeys("cdefg", "2026-03-13T11:00:00"),
        "h": "2026-03-13T12:30:00",
    }
    lines = [tracker_line(session, timestamp=timestamp) for session, timestamp in timestamps.items()]
    path = write_jsonl(tmp_path / "analytics.jsonl", lines)

    assert run_import(path).exit_code == 0

    # 10:00-10:59 ends at 11:00; "c"-"f" fill a batch; "g" alone is too few to end at 12:00.
    assert sorted(batches) == [["a", "b"], ["c", "d", "e", "f"], ["g", "h"]]
    assert Conversation.objects.count() == 8


def test_a_database_error_stops_the_import_and_every_writer_thread(tmp_path, monkeypatch):
    # Writes run in writer threads; when one fails, the command fails with that error, the
    # other writers stop too, and so does parsing, blocked on a full queue (no hang, no
    # stray thread). Batches written before the error stay (each is its own transaction).
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 2)
    monkeypatch.setattr(import_jsonl, "QUEUED_BATCHES", 1)
    real_write = import_jsonl.services.conversations_ingest_write
    calls = []
    lock = threading.Lock()

    def failing_write(prepared):
        with lock:
            calls.append(len(prepared.items))
            fail = len(calls) == 3
        if fail:
            raise RuntimeError("database went away")
        return real_write(prepared)

    monkeypatch.setattr(import_jsonl.services, "conversations_ingest_write", failing_write)
    path = write_jsonl(tmp_path / "analytics.jsonl", [tracker_line(f"abc-{n}") for n in range(400)])

    with pytest.raises(RuntimeError, match="database went away"):
        call_command("import_jsonl", str(path), "--no-progress", stdout=StringIO(), stderr=StringIO())

    # The third batch failed; each other writer may have had a batch or two in hand by then,
    # but no more were started (200 batches in the file), and every other batch was stored whole.
    assert 3 <= len(calls) <= 3 + 2 * (import_jsonl.WRITERS - 1)
    assert Conversation.objects.count() == 2 * (len(calls) - 1)
    assert not [t for t in threading.enumerate() if t.name.startswith("import-jsonl-")]


def test_the_lines_of_one_session_are_written_in_file_order_by_whichever_writer(tmp_path, monkeypatch):
    # Batches of consecutive lines go to the writers in turn, so one session's lines may go to
    # several; they must still be written in file order (the last one wins). The first batch is
    # written slowly: the other writers, with later lines of the same sessions, must wait.
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 3)
    real_write = import_jsonl.services.conversations_ingest_write
    written = []  # (writer thread, session id, turns), in the order the writes happened
    lock = threading.Lock()

    def recording_write(prepared):
        first = prepared.items.get("s-0")
        if first is not None and first.turns == 1:
            time.sleep(0.3)  # the file's first batch
        result = real_write(prepared)
        with lock:
            writer = threading.current_thread().name
            written.extend((writer, item.session_id, item.turns) for item in prepared.items.values())
        return result

    monkeypatch.setattr(import_jsonl.services, "conversations_ingest_write", recording_write)
    sessions = [f"s-{n}" for n in range(11)]
    lines = [tracker_line(session, turns=round_) for round_ in range(1, 6) for session in sessions]
    path = write_jsonl(tmp_path / "analytics.jsonl", lines)

    run = run_import(path)

    assert run.exit_code == 0
    assert dict(Conversation.objects.values_list("session_id", "turns")) == dict.fromkeys(sessions, 5)
    assert len({writer for writer, _, _ in written}) == import_jsonl.WRITERS  # all wrote
    for session in sessions:
        writes = [turns for _, session_id, turns in written if session_id == session]
        assert writes == [1, 2, 3, 4, 5], session
    # Some session was written by more than one writer (so the waiting was needed).
    assert any(len({w for w, session_id, _ in written if session_id == s}) > 1 for s in sessions)


def test_the_import_gives_back_pythons_switch_interval(tmp_path):
    # The import shortens it while its threads run (import_jsonl.SWITCH_INTERVAL), then
    # restores it, error or not.
    before = sys.getswitchinterval()
    assert before != import_jsonl.SWITCH_INTERVAL
    good = write_jsonl(tmp_path / "good.jsonl", [tracker_line("abc-1")])
    bad = write_jsonl(tmp_path / "bad.jsonl", [tracker_line("abc-2"), "{"])

    assert run_import(good).exit_code == 0
    assert sys.getswitchinterval() == before
    assert run_import(bad).exit_code == 1
    assert sys.getswitchinterval() == before
    assert Conversation.objects.count() == 2


def test_the_import_gives_back_the_garbage_collector(tmp_path):
    # Off while the import runs, on again afterwards, error or not.
    good = write_jsonl(tmp_path / "good.jsonl", [tracker_line("abc-1")])
    bad = write_jsonl(tmp_path / "bad.jsonl", [tracker_line("abc-2"), "{"])

    assert gc.isenabled()
    assert run_import(good).exit_code == 0
    assert gc.isenabled()
    assert run_import(bad).exit_code == 1
    assert gc.isenabled()


def test_only_the_writers_connections_commit_without_waiting(tmp_path, monkeypatch):
    # The writers' own connections commit asynchronously (safe: the import is idempotent);
    # the command's connection, like every other, keeps the server's setting.
    real_write = import_jsonl.services.conversations_ingest_write
    settings_seen = []

    def recording_write(prepared):
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            settings_seen.append(cursor.fetchone()[0])
        return real_write(prepared)

    monkeypatch.setattr(import_jsonl.services, "conversations_ingest_write", recording_write)
    monkeypatch.setattr(import_jsonl, "BATCH_SIZE", 1)
    path = write_jsonl(tmp_path / "analytics.jsonl", [tracker_line(f"abc-{n}") for n in range(6)])

    assert run_import(path).exit_code == 0

    assert settings_seen == ["off"] * 6
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert Conversation.objects.count() == 6


def test_an_error_while_parsing_reaches_the_command(tmp_path, monkeypatch):
    def broken_parse(*args, **kwargs):
        raise MemoryError("parser ran out")

    monkeypatch.setattr(import_jsonl.Command, "_parse", staticmethod(broken_parse))
    path = write_jsonl(tmp_path / "analytics.jsonl", [tracker_line("abc-1")])

    with pytest.raises(MemoryError, match="parser ran out"):
        call_command("import_jsonl", str(path), "--no-progress", stdout=StringIO(), stderr=StringIO())

    assert not Conversation.objects.exists()
    assert not [t for t in threading.enumerate() if t.name.startswith("import-jsonl-")]


def test_the_new_fields_are_imported_and_checked_like_posts(tmp_path):
    from conversations.customers import customer_hash

    day = timedelta(days=1)
    lines = [
        {"session_id": "a", "turns": 2, "outcome": "confirmed", "customer_id": "ann",
         "timestamp": (T0 - 2 * day).isoformat()},
        {"session_id": "b", "turns": 2, "outcome": "abandoned", "escalation_reason": "Too  Slow",
         "customer_id": "ann", "timestamp": (T0 - day).isoformat()},
        {"session_id": "c", "turns": 2, "resolved_by_ai": True, "escalation_reason": "no docs"},
        {"session_id": "d", "turns": 2, "resolved_by_ai": True, "customer_id": 42},
    ]  # fmt: skip
    result = run_import(write_jsonl(tmp_path / "analytics.jsonl", [json.dumps(line) for line in lines]))

    assert result.exit_code == 1
    assert ":3: escalation_reason: Only for conversations the AI did not resolve" in result.stderr
    assert ":4: customer_id: Not a valid string." in result.stderr
    stored_rows = {c.session_id: c for c in Conversation.objects.all()}
    assert sorted(stored_rows) == ["a", "b"]
    a, b = stored_rows["a"], stored_rows["b"]
    assert (a.outcome, a.resolved_by_ai, a.followed_up) == (
        "confirmed",
        True,
        True,
    )  # ann came back a day later
    assert (b.outcome, b.resolved_by_ai, b.escalation_reason) == ("abandoned", False, "too slow")
    assert bytes(a.customer_hash) == bytes(b.customer_hash) == customer_hash("ann")
