"""The spool: one SQLite file where every logged conversation waits until the server has it.

A logging call writes to its thread's journal (_journal.py), which a mover copies here every
0.1 s; without a journal (no flock: Windows) the call inserts here itself (`add`).
WAL journal with `synchronous=NORMAL`: a commit is in the operating system's hands when it
returns, so a `kill -9` of the bot loses nothing committed; a power cut may lose the last
commits (only a checkpoint syncs to disk). Several processes may share one file: the
sender of each claims rows with a lease in one write transaction, so no two processes send
the same rows, rows whose lease ran out (their process died) are claimed again, and a session's
rows are claimed in the order they were logged (none while an earlier one of that session is
claimed elsewhere or waiting for a retry).

Writes of one process go through one lock: SQLite makes a writer that finds the file locked
sleep 1 ms or more before it tries again, where a Python lock hands over in microseconds. The
sender's reads go through another (the read gate). A fork takes both (`quiesce`), so that no
thread is inside SQLite when it happens: a child that opens the file while a thread of the
parent held one of SQLite's own mutexes at the fork would wait for it forever.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

CONVERSATION, CSAT = "conversation", "csat"
PAGE_SIZE = 4096
# SQLite builds before 3.32 allow at most 999 parameters in a statement.
CHUNK = 500

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS pending (
    -- The order things were logged in: a new row's id is above every row's still here (no
    -- AUTOINCREMENT: its counter is one more page to write on every insert).
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('{CONVERSATION}', '{CSAT}')),
    body TEXT NOT NULL,                    -- the JSON sent: a conversation, or {{"csat": n}}
    enqueued_at REAL NOT NULL,             -- Unix time of the call
    lease_owner TEXT,                      -- the sending process's batch that holds it
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0
);
-- No index on session_id: it would add a fifth of a logging call's time; a late CSAT
-- finds its session by reading back from the newest row (Spool.add_csat).
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    status INTEGER,                        -- the server's HTTP status (400, 404, 413)
    message TEXT NOT NULL                  -- the server's words: which field, what is wrong
);
-- How far each journal (_journal.py) has been copied into pending: written in the copy's own
-- transaction, so that the copy of a dead process's journal starts where the last one ended.
CREATE TABLE IF NOT EXISTS journals (
    name TEXT PRIMARY KEY,
    moved INTEGER NOT NULL
);
"""

INSERT = "INSERT INTO pending (session_id, kind, body, enqueued_at) VALUES (?, ?, ?, ?)"


class Row(NamedTuple):
    id: int
    session_id: str
    kind: str
    body: str
    enqueued_at: float
    attempts: int


class DeadLetter(NamedTuple):
    id: int
    session_id: str
    kind: str
    body: str
    enqueued_at: float
    failed_at: float
    attempts: int
    status: int | None
    message: str


def _is_full(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    return code == sqlite3.SQLITE_FULL if code is not None else "full" in str(error)  # type: ignore[attr-defined]


def _variable_limit(connection: sqlite3.Connection) -> int:
    """How many parameters a statement may have (999 before SQLite 3.32; asked on Python 3.11+)."""
    getlimit = getattr(connection, "getlimit", None)
    return getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit else 2 * CHUNK - 1  # type: ignore[attr-defined]


def _roll_back(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:  # (SQLite has rolled back itself after some errors, SQLITE_FULL's)
        connection.execute("ROLLBACK")


def _placeholders(chunk: Sequence) -> str:
    """`?,?,?` for an `IN (...)` of the chunk's values."""
    return ",".join("?" * len(chunk))


def _chunks(values: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Spool:
    def __init__(self, path: str | os.PathLike, *, max_bytes: int, full_error: type[Exception]):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self.max_pages = max(16, max_bytes // PAGE_SIZE)
        self._full_error = full_error
        self._local = threading.local()
        self._inherited: list[threading.local] = []
        self._write_lock = threading.Lock()
        self._read_gate = threading.Lock()
        connection = self.connection()
        with self._write_lock:
            connection.executescript(SCHEMA)

    def quiesce(self) -> None:
        """Before a fork: wait until no thread of ours is inside SQLite, and keep it so."""
        self._read_gate.acquire()
        self._write_lock.acquire()

    def resume(self) -> None:
        """After a fork, in the parent."""
        self._write_lock.release()
        self._read_gate.release()

    def after_fork(self) -> None:
        """In a forked child: the parent's connections and lock are not ours to use. Its
        connections are kept, never closed here: SQLite must not close a connection that
        crossed a fork (its close could checkpoint or unlock what the parent holds)."""
        self._inherited.append(self._local)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._read_gate = threading.Lock()

    # --- Connections --------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on its first use: about a millisecond)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            with self._write_lock:  # opening a file is inside SQLite too (see quiesce)
                # Autocommit (isolation_level None): each statement commits unless in a BEGIN.
                connection = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
            connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # a new file's only
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            # The cap: an insert that would grow the file past it fails with SQLITE_FULL.
            connection.execute(f"PRAGMA max_page_count = {self.max_pages}")
            # No checkpoint inside a logging call (it syncs the disk): the sender does them.
            connection.execute("PRAGMA wal_autocheckpoint = 0")
            connection.execute("PRAGMA journal_size_limit = 67108864")
            self._local.connection = connection
        return connection

    def allow_headroom(self) -> None:
        """For the sender's connection: room past the cap (a 16th of it), so that leasing,
        releasing and deleting rows (an UPDATE may need a new page) work in a full spool.
        (max_page_count is a setting of the connection, not of the file.)"""
        extra = max(16, self.max_pages // 16)
        self.connection().execute(f"PRAGMA max_page_count = {self.max_pages + extra}")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Reads outside the logging calls (the sender's, flush's, a late CSAT's look-up)."""
        with self._read_gate:
            yield self.connection()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE: the file's write lock from the start)."""
        connection = self.connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                _roll_back(connection)
                raise
            connection.execute("COMMIT")

    def close_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # --- The calls ----------------------------------------------------------------------

    def add(self, session_id: str, kind: str, body: str) -> None:
        """One row, committed before it returns (a logging call's write when there is no journal)."""
        connection = self.connection()
        try:
            with self._write_lock:
                connection.execute(INSERT, (session_id, kind, body, time.time()))
        except sqlite3.OperationalError as error:
            if _is_full(error):
                raise self._full_error(
                    f"The spool {self.path} is full ({self.max_pages * PAGE_SIZE:,} bytes): nothing "
                    "was dropped; this call's conversation was not stored."
                ) from None
            raise

    def add_moved(
        self, rows: Sequence[tuple[str, str, str, float]], progress: Sequence[tuple[str, int]]
    ) -> None:
        """Rows copied from journals, in order, with how far each journal is copied now: one
        transaction, and one multi-row INSERT per 4,000 rows (fewer where SQLite allows fewer
        parameters): each statement gives the interpreter lock away while SQLite works, and
        the logging threads should not have to win it back once per row."""
        try:
            with self._writing() as connection:
                per_statement = min(_variable_limit(connection) // 4, 4000)
                for chunk in _chunks(rows, per_statement):
                    values = ",".join(["(?,?,?,?)"] * len(chunk))
                    connection.execute(
                        f"INSERT INTO pending (session_id, kind, body, enqueued_at) VALUES {values}",
                        [value for row in chunk for value in row],
                    )
                for chunk in _chunks(progress, CHUNK // 2):
                    values = ",".join(["(?,?)"] * len(chunk))
                    connection.execute(
                        f"INSERT INTO journals (name, moved) VALUES {values} "
                        "ON CONFLICT (name) DO UPDATE SET moved = excluded.moved",
                        [value for pair in chunk for value in pair],
                    )
        except sqlite3.OperationalError as error:
            if _is_full(error):
                raise self._full_error(f"The spool {self.path} is full.") from None
            raise

    def journal_progress(self, names: Sequence[str]) -> dict[str, int]:
        with self._reading() as connection:
            found: dict[str, int] = {}
            for chunk in _chunks(names):
                marks = _placeholders(chunk)
                found.update(
                    connection.execute(f"SELECT name, moved FROM journals WHERE name IN ({marks})", chunk)
                )
            return found

    def journal_names(self) -> list[str]:
        with self._reading() as connection:
            return [name for (name,) in connection.execute("SELECT name FROM journals")]

    def forget_journals(self, names: Sequence[str]) -> None:
        with self._writing() as connection:
            for chunk in _chunks(names):
                marks = _placeholders(chunk)
                connection.execute(f"DELETE FROM journals WHERE name IN ({marks})", chunk)

    def add_csat(self, session_id: str, csat: int | None) -> None:
        """A late CSAT: written into the session's newest row while that one is unsent (no
        lease), else a row of its own that goes to the CSAT endpoint after it.

        The session's newest row is looked for outside the write lock (a read from the newest
        row back: quick while the spool holds what the last seconds logged, a scan of the
        spool during a long outage), then checked again, from where the read ended, inside
        the write transaction."""
        with self._reading() as connection:
            connection.execute("BEGIN")  # one snapshot for both reads
            try:
                found = connection.execute(
                    "SELECT id FROM pending WHERE session_id = ? ORDER BY id DESC LIMIT 1", (session_id,)
                ).fetchone()
                horizon = (
                    found[0] if found else connection.execute("SELECT max(id) FROM pending").fetchone()[0]
                )
            finally:
                connection.execute("COMMIT")
        try:
            with self._writing() as connection:
                newest = connection.execute(
                    "SELECT id, lease_owner, body FROM pending WHERE id >= ? AND session_id = ? "
                    "ORDER BY id DESC LIMIT 1",
                    (horizon or 0, session_id),
                ).fetchone()
                if newest is not None and newest[1] is None:
                    merged = json.loads(newest[2])
                    merged["csat"] = csat
                    connection.execute(
                        "UPDATE pending SET body = ? WHERE id = ?",
                        (json.dumps(merged, separators=(",", ":")), newest[0]),
                    )
                else:
                    body = json.dumps({"csat": csat}, separators=(",", ":"))
                    connection.execute(INSERT, (session_id, CSAT, body, time.time()))
        except sqlite3.OperationalError as error:
            if _is_full(error):
                raise self._full_error(f"The spool {self.path} is full: this CSAT was not stored.") from None
            raise

    # --- The sender's side ----------------------------------------------------------------

    def due(self, now: float, limit: int) -> tuple[int, float | None]:
        """How many rows (up to `limit`) could be claimed now, and when the oldest was logged."""
        with self._reading() as connection:
            count, oldest = connection.execute(
                "SELECT count(*), min(enqueued_at) FROM (SELECT enqueued_at FROM pending WHERE "
                "(lease_until IS NULL OR lease_until <= ?) AND next_attempt_at <= ? ORDER BY id LIMIT ?)",
                (now, now, limit),
            ).fetchone()
        return count, oldest

    def claim(self, *, owner: str, now: float, lease_seconds: float, limit: int, max_bytes: int) -> list[Row]:
        """Lease up to `limit` rows whose bodies fit in `max_bytes` as one JSON array, in the
        order they were logged. A session's row is skipped, with every later row of that
        session, when it is leased by another batch or waiting for a retry; after a CSAT row
        the session's later rows wait for the next batch (the CSAT goes after the array).

        Chosen by a read outside the write lock, then leased in a short write transaction that
        checks nobody took them meanwhile (else chosen again)."""
        for _ in range(10):
            chosen = self._choose(now=now, limit=limit, max_bytes=max_bytes)
            if not chosen:
                return []
            ids = [row.id for row in chosen]
            connection = self.connection()
            with self._write_lock:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    leased = 0
                    for chunk in _chunks(ids):
                        marks = _placeholders(chunk)
                        leased += connection.execute(
                            f"UPDATE pending SET lease_owner = ?, lease_until = ? WHERE id IN ({marks}) "
                            "AND (lease_until IS NULL OR lease_until <= ?) AND next_attempt_at <= ?",
                            (owner, now + lease_seconds, *chunk, now, now),
                        ).rowcount
                except BaseException:
                    _roll_back(connection)
                    raise
                if leased == len(ids):
                    connection.execute("COMMIT")
                    return chosen
                connection.execute("ROLLBACK")  # another process took some: choose again
            now = time.time()
        return []

    def _choose(self, *, now: float, limit: int, max_bytes: int) -> list[Row]:
        with self._reading() as connection:
            return self._choose_with(connection, now=now, limit=limit, max_bytes=max_bytes)

    def _choose_with(
        self, connection: sqlite3.Connection, *, now: float, limit: int, max_bytes: int
    ) -> list[Row]:
        chosen: list[Row] = []
        waiting: set[str] = set()  # sessions whose next row may not go in this batch
        size, after = 2, 0  # "[" and "]"
        while True:
            page = connection.execute(
                "SELECT id, session_id, kind, body, enqueued_at, attempts, lease_until, next_attempt_at "
                "FROM pending WHERE id > ? ORDER BY id LIMIT 2000",
                (after,),
            ).fetchall()
            if not page:
                return chosen
            for row_id, session_id, kind, body, enqueued_at, attempts, lease_until, next_attempt_at in page:
                after = row_id
                if session_id in waiting:
                    continue
                if (lease_until is not None and lease_until > now) or next_attempt_at > now:
                    waiting.add(session_id)
                    continue
                if kind == CONVERSATION:
                    size += len(body.encode()) + 1
                    if size > max_bytes and chosen:
                        return chosen
                else:
                    waiting.add(session_id)
                chosen.append(Row(row_id, session_id, kind, body, enqueued_at, attempts))
                if len(chosen) >= limit:
                    return chosen

    def extend(self, owner: str, first: int, last: int, until: float) -> None:
        """A batch's lease, made longer (its rows lie between `first` and `last`)."""
        with self._writing() as connection:
            connection.execute(
                "UPDATE pending SET lease_until = ? WHERE id BETWEEN ? AND ? AND lease_owner = ?",
                (until, first, last, owner),
            )

    def delete(self, rows: Iterable[Row], owner: str) -> None:
        """Rows the server has: gone (unless a lease ran out and another batch holds them now:
        it sends them again, which the server takes as the same conversation)."""
        ids = [row.id for row in rows]
        with self._writing() as connection:
            for chunk in _chunks(ids):
                marks = _placeholders(chunk)
                connection.execute(
                    f"DELETE FROM pending WHERE id IN ({marks}) AND lease_owner = ?", (*chunk, owner)
                )

    def release(
        self, rows: Iterable[Row], owner: str, *, retry_at: float, count_attempt: bool = True
    ) -> None:
        """Rows to send again, not before `retry_at`."""
        ids = [row.id for row in rows]
        with self._writing() as connection:
            for chunk in _chunks(ids):
                marks = _placeholders(chunk)
                connection.execute(
                    "UPDATE pending SET lease_owner = NULL, lease_until = NULL, next_attempt_at = ?, "
                    f"attempts = attempts + ? WHERE id IN ({marks}) AND lease_owner = ?",
                    (retry_at, int(count_attempt), *chunk, owner),
                )

    def dead_letter(self, row: Row, owner: str, *, status: int | None, message: str) -> None:
        """A row the server refuses for good: kept, with the server's words, out of the queue."""
        with self._writing() as connection:
            moved = connection.execute(
                "INSERT INTO dead_letters (session_id, kind, body, enqueued_at, failed_at, attempts, status, "
                "message) SELECT session_id, kind, body, enqueued_at, ?, attempts + 1, ?, ? FROM pending "
                "WHERE id = ? AND lease_owner = ?",
                (time.time(), status, message, row.id, owner),
            ).rowcount
            if moved:
                connection.execute("DELETE FROM pending WHERE id = ?", (row.id,))

    # --- Reading ------------------------------------------------------------------------

    def pending_count(self) -> int:
        with self._reading() as connection:
            return connection.execute("SELECT count(*) FROM pending").fetchone()[0]

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        with self._reading() as connection:
            rows = connection.execute(
                "SELECT id, session_id, kind, body, enqueued_at, failed_at, attempts, status, message "
                "FROM dead_letters ORDER BY id LIMIT ?",
                (-1 if limit is None else limit,),
            ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def checkpoint(self) -> None:
        """Copy the WAL into the database file (without waiting for readers or writers)."""
        with self._reading() as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
