"""The journal: where a logging call puts a conversation, in memory that is a file.

Each thread that logs writes into a memory-mapped file of its own (`<spool>.journals/`): no
lock, no system call, so a call never waits for another thread, the disk or the interpreter
lock's hand-over. (A write to SQLite gives the interpreter lock away while SQLite works; from
4 threads logging at once, getting it back cost calls milliseconds.) The bytes are in the
operating system's page cache as soon as they are written, so a `kill -9` of the bot loses
nothing a call has returned from; a power cut may lose the last ones (as the spool's own WAL).

A mover thread copies what the journals hold into the SQLite spool every `interval` seconds,
in one transaction that also records how far it got in each journal (the `journals` table):
a crash between the copy and its record copies nothing twice. It deletes a journal once it
has it all and its thread has moved on to a new one (or ended). A journal whose process died
(nobody holds its flock) is copied by the next tracker on the spool, or by any running one
within `RECOVER_SECONDS`.

Order: a call takes a sequence number, writes its record, then publishes its journal's new
end in one dict store; the mover takes all ends with one `dict.copy()` (both atomic under
the interpreter lock) and inserts what they cover in sequence order. So a conversation
logged after another one returned is never inserted before it: a session's versions reach
the spool, and the server, in the order they were logged.

Record: length and CRC-32 of the rest (8 bytes, written last: a record cut short by a kill
has no valid header and ends the journal), then the time of the call, the sequence number,
the session id's length, the session id and the JSON body.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import mmap
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # Windows: no flock, so no journal; each call writes to SQLite itself
    fcntl = None  # type: ignore[assignment]

from supportanalytics_client._spool import CONVERSATION, Spool

logger = logging.getLogger("supportanalytics_client")

AVAILABLE = fcntl is not None
SEGMENT_BYTES = 1024 * 1024  # a new journal every 3,000-odd conversations of a thread
RECOVER_SECONDS = 30.0
_HEADER = struct.Struct("<II")  # the length of the rest, its CRC-32
_FIXED = struct.Struct("<dQI?")  # time of the call, sequence number, session id's length, stamp
SUFFIX, NEW_SUFFIX = ".journal", ".journal-new"


class Entry(NamedTuple):
    sequence: int
    session_id: str
    body: str
    enqueued_at: float
    journal: str  # its journal's name
    end: int  # where its record ends in the journal


class Journal:
    """One file, written by one thread."""

    __slots__ = ("end", "fd", "map", "moved", "name", "path", "retired", "size", "thread")

    def __init__(self, name: str, path: str, fd: int, size: int, thread: threading.Thread):
        self.name, self.path, self.fd, self.size, self.thread = name, path, fd, size, thread
        self.map = mmap.mmap(fd, size)
        self.end = 0  # where the next record goes (the owner's)
        self.moved = 0  # how far the spool has it (the mover's)
        self.retired = False  # its thread writes to a new one now

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)  # releases the flock


def read_entries(name: str, data: mmap.mmap | bytes, start: int, stop: int) -> list[Entry]:
    """The whole records of journal `name` between `start` and `stop`."""
    entries = []
    position = start
    while position + _HEADER.size <= stop:
        length, checksum = _HEADER.unpack_from(data, position)
        first = position + _HEADER.size
        if length < _FIXED.size or first + length > stop:
            break
        rest = data[first : first + length]
        if zlib.crc32(rest) != checksum:
            break
        enqueued_at, sequence, id_length, stamp = _FIXED.unpack_from(rest)
        split = _FIXED.size + id_length
        position = first + length
        body = rest[split:].decode()
        if stamp:  # the time of the call, as the body's last key (see Journals.append)
            moment = datetime.fromtimestamp(enqueued_at, timezone.utc).isoformat()
            body = f'{body[:-1]},"timestamp":"{moment}"}}'
        entries.append(Entry(sequence, rest[_FIXED.size : split].decode(), body, enqueued_at, name, position))
    return entries


class Journals:
    """The journals of one process, and the copying of them (and of dead processes' ones)
    into the spool."""

    def __init__(self, spool: Spool, *, backlog_bytes: int, full_error: type[Exception]):
        self.spool = spool
        self.directory = spool.path + ".journals"
        os.makedirs(self.directory, exist_ok=True)
        self.backlog_bytes = backlog_bytes
        self._full_error = full_error
        self.full = False  # the spool refused the last copy: calls raise until one succeeds
        self.orphans_waiting = 0  # what the last recovery left in dead processes' journals
        self._start_process()

    def _start_process(self) -> None:
        self._token = uuid.uuid4().hex[:12]  # this process's journals' names begin with it
        self._names = itertools.count(1)
        self._sequence = itertools.count(1)
        self._local = threading.local()
        self._published: dict[Journal, int] = {}  # journal -> its end, as its thread last wrote it
        self._move_lock = threading.Lock()

    # --- The logging call (any thread) --------------------------------------------------------------

    def append(self, session_id: str, body: str, enqueued_at: float, *, stamp: bool) -> None:
        """`body`: a conversation's JSON object; with `stamp`, `"timestamp"` is added to it,
        the time of the call (`enqueued_at`), when it is copied: the call does not spend its
        microseconds formatting a time (several times more on a CPU its thread just woke on)."""
        if self.full:
            raise self._full_error(
                f"The spool {self.spool.path} is full: nothing was dropped; this call's conversation "
                "was not stored."
            )
        identifier = session_id.encode()
        fixed = _FIXED.pack(enqueued_at, next(self._sequence), len(identifier), stamp)
        rest = fixed + identifier + body.encode()
        size = _HEADER.size + len(rest)
        journal: Journal | None = getattr(self._local, "journal", None)
        if journal is None or journal.end + size > journal.size:
            journal = self._next_journal(journal, size)
        start = journal.end
        if start - journal.moved > self.backlog_bytes:  # the mover is stuck (or the spool full)
            self._stuck(start - journal.moved)
        journal.map[start + _HEADER.size : start + size] = rest
        journal.map[start : start + _HEADER.size] = _HEADER.pack(len(rest), zlib.crc32(rest))
        journal.end = start + size
        self._published[journal] = journal.end

    def _stuck(self, waiting: int) -> None:
        raise self._full_error(
            f"The spool {self.spool.path} is not taking conversations ({waiting:,} bytes wait in "
            "this thread's journals): nothing was dropped; this call's conversation was not stored."
        )

    def _next_journal(self, previous: Journal | None, size: int) -> Journal:
        thread = threading.current_thread()
        if previous is not None:
            # What this thread's journals hold that the spool does not have: a thread writing
            # faster than the mover copies (or to a full spool) does not fill the disk.
            waiting = sum(end - j.moved for j, end in self._published.copy().items() if j.thread is thread)
            if waiting > self.backlog_bytes:
                self._stuck(waiting)
        journal = self._create(max(SEGMENT_BYTES, size), thread)
        if previous is not None:
            previous.retired = True  # after its last record was published (see move)
        self._local.journal = journal
        return journal

    def _create(self, size: int, thread: threading.Thread) -> Journal:
        """A new journal file, locked by this process before its name says it is a journal
        (a recovering process only looks at `*.journal` files it can lock)."""
        name = f"{self._token}-{next(self._names):08d}"
        path = os.path.join(self.directory, name + SUFFIX)
        new_path = path[: -len(SUFFIX)] + NEW_SUFFIX
        fd = os.open(new_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _allocate(fd, size)
            journal = Journal(name, path, fd, size, thread)
            os.rename(new_path, path)
        except OSError as error:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(new_path)
            raise self._full_error(
                f"The spool's journal {path} could not be made ({error}): this call's conversation "
                "was not stored."
            ) from None
        return journal

    def waiting(self) -> int:
        """How many conversations the journals hold that the spool does not have yet."""
        with self._move_lock:
            return self.orphans_waiting + sum(
                len(read_entries(journal.name, journal.map, journal.moved, end))
                for journal, end in self._published.copy().items()
            )

    # --- The mover's side --------------------------------------------------------------------------

    def move(self) -> int:
        """Copy what the journals hold into the spool, in the order it was logged; returns
        how many. One transaction; when the spool is full, as much as it takes (the rest
        stays in the journals, and logging calls raise SpoolFull until a copy succeeds)."""
        with self._move_lock:
            published = self._published.copy()
            by_name = {journal.name: journal for journal in published}
            batch = sorted(
                entry
                for journal, end in published.items()
                if end > journal.moved
                for entry in read_entries(journal.name, journal.map, journal.moved, end)
            )

            def copied(entries: list[Entry]) -> None:
                for entry in entries:  # (in each journal's order)
                    by_name[entry.journal].moved = entry.end

            try:
                self._copy(batch, copied)
            except self._full_error:
                if not self.full:
                    logger.error(
                        "Support Analytics: the spool %s is full; logging calls raise SpoolFull until "
                        "the sender has made room", self.spool.path,
                    )  # fmt: skip
                self.full = True
                return 0
            self.full = False
            for journal in published:
                # Whether its thread is done with it, then (in this order) its end as published
                # now: a thread publishes its last record before it retires the journal or ends.
                done = journal.retired or not journal.thread.is_alive()
                if done and journal.moved == self._published[journal]:
                    del self._published[journal]
                    self._remove(journal)
            return len(batch)

    def _copy(self, batch: list[Entry], copied: Callable[[list[Entry]], None]) -> None:
        """Insert `batch` (in sequence order) with each journal's progress, in one transaction;
        when the spool is full, its first half, then its second (a row alone that does not
        fit raises)."""
        if not batch:
            return
        progress = {entry.journal: entry.end for entry in batch}  # the last of each journal
        try:
            self.spool.add_moved(
                [(entry.session_id, CONVERSATION, entry.body, entry.enqueued_at) for entry in batch],
                list(progress.items()),
            )
        except self._full_error:
            if len(batch) == 1:
                raise
            middle = len(batch) // 2
            self._copy(batch[:middle], copied)
            self._copy(batch[middle:], copied)
            return
        copied(batch)

    def _remove(self, journal: Journal) -> None:
        """A journal the spool has all of: deleted (the file while its lock is held, so that no
        process recovers it afterwards), then its progress row, then closed."""
        os.unlink(journal.path)
        self.spool.forget_journals([journal.name])
        journal.close()

    def recover(self) -> int:
        """Copy the journals of processes that died into the spool (all of them, or as much as
        a full spool takes: `orphans_waiting` says how much is left); returns how many."""
        if fcntl is None:
            return 0
        recovered = 0
        with self._move_lock:
            own = {journal.name for journal in self._published}
            by_process: dict[str, list[tuple[str, int]]] = {}
            for file_name in sorted(os.listdir(self.directory)):
                path = os.path.join(self.directory, file_name)
                if file_name.endswith(NEW_SUFFIX) and not file_name.startswith(self._token):
                    _remove_if_unlocked(path)  # made by a process that died before using it
                    continue
                name = file_name[: -len(SUFFIX)]
                if not file_name.endswith(SUFFIX) or name in own:
                    continue
                fd = _lock_orphan(path)
                if fd is not None:
                    by_process.setdefault(name.split("-", 1)[0], []).append((name, fd))
            self.orphans_waiting = 0
            for orphans in by_process.values():
                recovered += self._recover_process(orphans)
            # Progress rows of journals deleted by a process that died before it forgot them.
            # The rows first, then the files: a row is written only once its file is there.
            names = self.spool.journal_names()
            files = set(os.listdir(self.directory))
            stale = [name for name in names if name + SUFFIX not in files]
            if stale:
                self.spool.forget_journals(stale)
        return recovered

    def _recover_process(self, orphans: list[tuple[str, int]]) -> int:
        """One dead process's journals (locked by us), in the order its calls were made."""
        try:
            progress = self.spool.journal_progress([name for name, _ in orphans])
            batch: list[Entry] = []
            for name, fd in orphans:
                size = os.fstat(fd).st_size
                if size:
                    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
                        batch += read_entries(name, data, progress.get(name, 0), size)
            batch.sort()
            done: list[Entry] = []
            try:
                self._copy(batch, done.extend)
            except self._full_error:
                self.orphans_waiting += len(batch) - len(done)
                return len(done)
            finally:
                if done:
                    logger.warning(
                        "Support Analytics: %d conversations logged by a process that ended without "
                        "closing its tracker were recovered from its journal", len(done),
                    )  # fmt: skip
            for name, _ in orphans:
                os.unlink(os.path.join(self.directory, name + SUFFIX))
            self.spool.forget_journals([name for name, _ in orphans])
            return len(done)
        finally:
            for _, fd in orphans:
                os.close(fd)

    # --- Fork and close ----------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: the parent's journals stay the parent's (their maps and files
        are closed here, which leaves the parent's own open and locked)."""
        for journal in list(self._published):
            journal.close()
        self._start_process()

    def close(self) -> None:
        """Copy what is left, and delete every journal the spool has all of. What the spool
        could not take stays in its journal, for the next tracker on the spool."""
        self.move()
        with self._move_lock:
            for journal in list(self._published):
                end = self._published.pop(journal)
                if journal.moved == end:
                    self._remove(journal)
                else:
                    journal.close()
            self._local = threading.local()


def _allocate(fd: int, size: int) -> None:
    """The file's blocks, taken now: a write into a map over a hole that finds the disk full
    kills the process (SIGBUS); this raises OSError instead, at the call."""
    try:
        os.posix_fallocate(fd, 0, size)  # (Linux; glibc writes zeros where the file system can't)
        return
    except AttributeError:  # macOS
        pass
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
    zeros = bytes(64 * 1024)
    for offset in range(0, size, len(zeros)):
        os.pwrite(fd, zeros[: size - offset], offset)


def _lock_orphan(path: str) -> int | None:
    """An open, exclusively locked descriptor of a journal nobody holds, or None."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None  # its process lives
    if os.fstat(fd).st_nlink == 0:  # recovered and deleted by another process meanwhile
        os.close(fd)
        return None
    return fd


def _remove_if_unlocked(path: str) -> None:
    fd = _lock_orphan(path)
    if fd is not None:
        os.unlink(path)
        os.close(fd)


class Mover(threading.Thread):
    """Copies the journals into the spool every `interval` seconds, and looks for the
    journals of processes that died now and then."""

    def __init__(self, journals: Journals, *, interval: float):
        super().__init__(name="supportanalytics-journal", daemon=True)
        self.journals = journals
        self.interval = interval
        self._stop_requested = threading.Event()

    def stop(self, timeout: float | None = None) -> None:
        self._stop_requested.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        next_recovery = 0.0
        try:
            while True:
                try:
                    if time.monotonic() >= next_recovery:
                        self.journals.recover()
                        # Again in a second while a full spool keeps some of it out.
                        wait = 1.0 if self.journals.orphans_waiting else RECOVER_SECONDS
                        next_recovery = time.monotonic() + wait
                    self.journals.move()
                except Exception:  # a bug or a broken spool file: say so, keep the thread alive
                    logger.exception("Support Analytics: copying the journal to the spool failed")
                    self._stop_requested.wait(1.0)
                if self._stop_requested.wait(self.interval):
                    return
        finally:
            self.journals.spool.close_connection()
