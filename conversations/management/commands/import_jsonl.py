import contextlib
import gc
import itertools
import json
import queue
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone
from tqdm import tqdm

from conversations import rollups, services
from conversations.ingest_rules import IngestInvalid, conversation_from_item
from conversations.services import ConversationIn

# Conversations per transaction. Each holds an advisory lock per session id until it commits,
# and live ingestion shares PostgreSQL's lock table (max_locks_per_transaction × connections:
# 6,400 entries by default): the writers together hold at most WRITERS × BATCH_SIZE = 3,000.
BATCH_SIZE = 1_000
# A batch also ends where the file's lines pass into the next UTC hour, once it holds at least
# this many: consecutive batches then share no hour or quarter-hour rollup rows (only the
# day's), so each of those rows is inserted once instead of inserted and updated, and a writer
# does not wait on the hour rows of the batch before its own.
HOUR_BATCH_MIN = BATCH_SIZE // 2
# Parsed batches waiting for each writer, at most.
QUEUED_BATCHES = 4


# The clock for the 5-minute future limit is read every this many lines (reading it costs
# more than the rest of a line's checks; a few thousand lines take well under a second).
CLOCK_LINES = 1_000

# orjson reads an integer beyond 64 bits as a float, so "turns": 18446744073709551616 would be
# "not an integer" instead of "too large", and "session_id": 18446744073709551616 would be
# stored as "1.8446744073709552e+19". A line with 19 digits in a row is read by the json
# module instead, numbers as written: its digits all made "0", it holds 19 zeros in a row
# (cheaper than a regular expression; docs/benchmarks.md, "Import: 19-digit numbers").
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19
_UNREAD = object()


# Writer threads, each with its own connection: PostgreSQL writes several batches at once.
# Consecutive batches share rollup rows (their day, the hour between them), so a writer often
# waits for another's commit; a third writer keeps the cores busy meanwhile
# (docs/benchmarks.md, "Import: three writers"). Each batch holds up to BATCH_SIZE advisory
# locks, well within PostgreSQL's lock table (64 × max_connections by default).
WRITERS = 3
# How long the parsing thread may keep the GIL while a writer waits for it (Python's default
# is 5 ms). A writer needs the GIL for a moment several times per batch (to send it, read
# the result, commit); with the default its connection sat idle twice as long waiting for the
# parser to let go (docs/benchmarks.md, "Import: GIL switch interval").
SWITCH_INTERVAL = 0.001
_TOTALS_LOCK = threading.Lock()


def _commit_without_waiting() -> None:
    """Let this thread's connection commit without waiting for its WAL to reach the disk.

    A writer then starts its next batch (and releases the rows and locks of this one) without
    waiting on the disk. Safe for an import: a crash of the database server can only lose the
    last batches committed before it, whole (a batch's conversations and its rollup changes are
    one transaction), never leave them half written; the import then fails, and running it
    again stores them (it is idempotent by session id: a line stored already is replaced by
    itself). `_flush_commits` makes a finished import as durable as before. For this
    connection only (the writer's own, closed when it ends), not for the API's writes.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")


def _flush_commits() -> None:
    """Wait until every batch committed so far is on disk: a transaction that commits
    synchronously flushes the WAL up to its commit, and so every earlier commit with it.
    (It needs a transaction id, or its commit writes nothing to flush.)"""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()")


class _Stopped(Exception):
    """A writer stopped: parsing ends."""


@dataclass(frozen=True)
class _Batch:
    """A prepared batch, numbered in file order, and the earlier batches (of other writers)
    that hold some of its session ids: its writer waits until those are committed."""

    number: int
    prepared: services.PreparedIngest
    after: frozenset[int]


class _InFlight:
    """The batches handed to writers and not committed yet, with their session ids.

    Batches go to the writers in turn, so each writer gets whole stretches of the file: they
    write different hours (a file is in time order), and do not update the same rollup
    rows one after the other (as they did with the sessions shared out by hash, each batch
    spanning twice the hours;
    docs/benchmarks.md, "Import: stretches of the file per writer"). A session whose lines
    fall in two stretches must still be written in file order: a batch that shares a session
    id with an uncommitted batch of another writer waits for it (a batch only ever waits for
    earlier ones: no cycle).
    """

    def __init__(self):
        self._changed = threading.Condition()
        self._batches: dict[int, tuple[int, frozenset[str]]] = {}  # number: (writer, session ids)

    def add(self, number: int, writer: int, prepared: services.PreparedIngest) -> _Batch:
        session_ids = frozenset(prepared.items)
        with self._changed:
            after = frozenset(
                earlier
                for earlier, (other, ids) in self._batches.items()
                if other != writer and not ids.isdisjoint(session_ids)
            )
            self._batches[number] = (writer, session_ids)
        return _Batch(number=number, prepared=prepared, after=after)

    def wait_for(self, batch: _Batch, stop: threading.Event) -> None:
        with self._changed:
            while any(number in self._batches for number in batch.after):
                if stop.is_set():
                    raise _Stopped
                self._changed.wait(0.1)

    def done(self, batch: _Batch) -> None:
        with self._changed:
            del self._batches[batch.number]
            self._changed.notify_all()


class Command(BaseCommand):
    help = (
        "Import the tutorial tracker's analytics.jsonl files. Idempotent by session_id (a re-import "
        "replaces, never duplicates). Bad lines are reported with their line number and skipped; the "
        "command then exits with status 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument("--no-progress", action="store_true", help="Do not show the progress bar.")

    def handle(self, *args, paths: list[Path], no_progress: bool, **options):
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        totals = {"lines": 0, "created": 0, "updated": 0, "bad": 0, "blank": 0}
        for path in paths:
            self._import(path, totals, show_progress=not no_progress and sys.stderr.isatty())
        rollups.fold()  # a last batch of up to 10 lines leaves its rollup changes as deltas
        _flush_commits()
        stored = totals["created"] + totals["updated"]
        self.stdout.write(
            f"Imported {stored:,} conversations from {totals['lines']:,} lines "
            f"in {len(paths)} file(s): {totals['created']:,} new, {totals['updated']:,} replaced, "
            f"{totals['bad']:,} bad line(s) skipped."
        )
        if totals["bad"]:
            sys.exit(1)

    def _import(self, path: Path, totals: dict, *, show_progress: bool) -> None:
        """Parse in this thread while WRITERS threads write, each on its own connection.

        Parsing is Python; a write mostly waits on PostgreSQL (the driver lets go of the
        GIL), so on two cores PostgreSQL works on two batches while the next ones are parsed
        (they wait for each other only on the rollup rows both touch, briefly, in key order).
        Batches of consecutive lines go to the writers in turn (`_InFlight` keeps each
        session's lines in file order, so the last line still wins). This thread also builds
        each batch's statement parameters (`conversations_ingest_prepare`), so a writer only
        sends them: its connection starts the next batch as soon as the last ends.
        """
        queues = [queue.Queue(maxsize=QUEUED_BATCHES) for _ in range(WRITERS)]  # bound memory
        stop = threading.Event()  # set when a writer gives up (a database error)
        errors: list[BaseException] = []
        in_flight = _InFlight()
        writers = [
            threading.Thread(
                target=self._write,
                args=(batches, in_flight, totals, stop, errors),
                name=f"import-jsonl-writer-{number}",
                daemon=True,
            )
            for number, batches in enumerate(queues)
        ]
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        # No cyclic garbage collection while importing: a line's objects (its dict, its
        # ConversationIn, a batch's lists) form no cycles and go with their last reference,
        # but the collector still ran every few hundred new objects, and at times walked every
        # object alive: about a sixth of this process's CPU in a profile of a 1M-line import.
        collecting = gc.isenabled()
        gc.disable()
        for writer in writers:
            writer.start()
        try:
            with tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                desc=path.name,
                disable=not show_progress,
            ) as progress:
                self._parse_file(path, totals, progress, queues, in_flight, stop)
        except _Stopped:
            pass  # a writer failed: its error is raised below
        except BaseException:
            stop.set()  # the writers drop what they have not started
            raise
        finally:
            for writer in writers:
                writer.join()
            sys.setswitchinterval(switch_interval)
            if collecting:
                gc.enable()
        if errors:
            raise errors[0]

    def _write(
        self,
        batches: queue.Queue,
        in_flight: _InFlight,
        totals: dict,
        stop: threading.Event,
        errors: list[BaseException],
    ) -> None:
        """A writer thread: stores batches until None, or until any thread stops."""
        try:
            _commit_without_waiting()
            while not stop.is_set():
                try:
                    batch = batches.get(timeout=0.1)
                except queue.Empty:
                    continue
                if batch is None:
                    return
                in_flight.wait_for(batch, stop)
                result = services.conversations_ingest_write(batch.prepared)
                in_flight.done(batch)
                with _TOTALS_LOCK:
                    totals["created"] += result.created
                    totals["updated"] += result.updated
        except _Stopped:
            pass  # another thread failed
        except BaseException as error:  # raised by the command once every thread has stopped
            errors.append(error)
            stop.set()
        finally:
            connection.close()  # this thread's own connection

    def _parse_file(
        self,
        path: Path,
        totals: dict,
        progress: tqdm,
        queues: list[queue.Queue],
        in_flight: _InFlight,
        stop: threading.Event,
    ) -> None:
        """Batches of valid conversations onto the writers' queues in turn, then None to each."""

        def put(writer: int, item) -> None:
            while not stop.is_set():
                try:
                    queues[writer].put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            raise _Stopped

        numbers = itertools.count()

        def hand_over(items: list[ConversationIn]) -> None:
            number = next(numbers)
            writer = number % len(queues)
            put(writer, in_flight.add(number, writer, services.conversations_ingest_prepare(items=items)))

        batch: list[ConversationIn] = []
        batch_hour = None  # the UTC hour of the batch's last line (seconds // 3600)
        received_at = now = timezone.now()
        with path.open("rb") as file:
            for number, raw in enumerate(file, start=1):
                if number % CLOCK_LINES == 0:
                    now = timezone.now()
                progress.update(len(raw))
                totals["lines"] += 1
                if not raw.strip():
                    totals["blank"] += 1
                    continue
                conversation, reason = self._parse(raw, received_at=received_at, now=now)
                if reason:
                    totals["bad"] += 1
                    progress.write(f"{path}:{number}: {reason}", file=self.stderr._out)
                    continue
                hour = conversation.timestamp.timestamp() // 3600
                if hour != batch_hour:
                    if len(batch) >= HOUR_BATCH_MIN:
                        hand_over(batch)
                        batch = []
                    batch_hour = hour
                batch.append(conversation)
                if len(batch) >= BATCH_SIZE:
                    hand_over(batch)
                    batch = []
        if batch:
            hand_over(batch)
        for writer in range(len(queues)):
            put(writer, None)

    @staticmethod
    def _parse(
        raw: bytes, *, received_at: datetime, now: datetime
    ) -> tuple[ConversationIn | None, str | None]:
        data = _UNREAD
        if _LONG_NUMBER not in raw.translate(_DIGITS_TO_ZERO):
            with contextlib.suppress(orjson.JSONDecodeError):
                data = orjson.loads(raw)
        if data is _UNREAD:
            # The standard library decides (and words the error): it also reads what orjson
            # refuses or bends but the tracker may have written (NaN, Infinity, long integers).
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as error:
                return None, f"not valid JSON ({error})"
        if not isinstance(data, dict):
            return None, "not a JSON object"
        try:
            conversation = conversation_from_item(data, received_at=received_at, now=now)
        except IngestInvalid as invalid:
            return None, "; ".join(
                f"{error['field'] or 'line'}: {error['message']}" for error in invalid.errors
            )
        return conversation, None
