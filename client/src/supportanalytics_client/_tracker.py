"""AnalyticsTracker: the tutorial's tracker, with the conversations going to Support Analytics."""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
import weakref
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from supportanalytics_client import _http, _journal, _rules
from supportanalytics_client._sender import Sender
from supportanalytics_client._spool import CONVERSATION, DeadLetter, Spool
from supportanalytics_client.errors import SpoolFull, SupportAnalyticsError

logger = logging.getLogger("supportanalytics_client")

DEFAULT_SPOOL_PATH = os.path.join("data", "supportanalytics-spool.sqlite3")
# The tutorial's own arguments, in its order; every other property of the API's schema is an
# optional keyword (timestamp, channel, bot_version, ai_cost, outcome, escalation_reason, ...).
POSITIONAL = ("session_id", "turns", "resolved_by_ai", "topics", "response_times", "csat")
OPTIONAL_FIELDS = frozenset(_rules.CONVERSATION.fields) - frozenset(POSITIONAL)
# Built once: json.dumps with any argument builds a new encoder on every call.
_to_json = json.JSONEncoder(separators=(",", ":")).encode


class AnalyticsTracker:
    """Logs finished conversations to Support Analytics without ever waiting for the network.

    `log_conversation` checks the fields against the server's rules, stamps the time, writes
    the conversation to its thread's journal (a memory-mapped file: no lock, no system call)
    and returns; a background thread copies the journals into a local SQLite spool every
    `journal_interval` seconds, another sends the spool in batches and removes what the server
    stored. A conversation logged is never lost to an outage, a rate limit or a crash of the
    bot: it stays in the spool until the server has it (or refuses it for good: the spool's
    dead_letters table keeps it, with the server's words).

    Configured by arguments or the environment: SUPPORTANALYTICS_URL (the server's base URL),
    SUPPORTANALYTICS_API_KEY (a key with the `ingest` or `all` scope), and optionally
    SUPPORTANALYTICS_READ_API_KEY (for `get_summary` when the main key is ingest-only) and
    SUPPORTANALYTICS_SPOOL_PATH. `log_file` (the tutorial's argument) is accepted and ignored.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        spool_path: str | os.PathLike | None = None,
        *,
        read_api_key: str | None = None,
        log_file: str | os.PathLike | None = None,
        exit_timeout: float = 5.0,
        spool_max_bytes: int = 1024**3,
        timeout: float = 10.0,
        max_batch: int = _rules.LIMITS["max_batch"],
        linger: float = 1.0,
        max_backoff: float = 60.0,
        lease_seconds: float = 60.0,
        csat_retry_seconds: float = 600.0,
        journal_interval: float = 0.1,
    ):
        del log_file  # the tutorial's JSONL file: nothing is written there any more
        url = url or os.environ.get("SUPPORTANALYTICS_URL")
        api_key = api_key or os.environ.get("SUPPORTANALYTICS_API_KEY")
        if not url:
            raise SupportAnalyticsError("No server: pass url= or set SUPPORTANALYTICS_URL.")
        if not url.startswith(("http://", "https://")):
            raise SupportAnalyticsError(
                f"url must start with http:// or https://, got {url!r} (the tutorial's log_file is "
                "now the keyword log_file=, and ignored)."
            )
        if not api_key:
            raise SupportAnalyticsError("No API key: pass api_key= or set SUPPORTANALYTICS_API_KEY.")
        if not 1 <= max_batch <= _rules.LIMITS["max_batch"]:
            raise ValueError(f"max_batch must be 1 to {_rules.LIMITS['max_batch']}")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self._read_api_key = read_api_key or os.environ.get("SUPPORTANALYTICS_READ_API_KEY") or api_key
        self.spool_path = os.fspath(
            spool_path or os.environ.get("SUPPORTANALYTICS_SPOOL_PATH") or DEFAULT_SPOOL_PATH
        )
        self.exit_timeout = exit_timeout
        self.timeout = timeout
        self._sender_settings = {
            "base_url": self.url,
            "api_key": api_key,
            "timeout": timeout,
            "lease_seconds": lease_seconds,
            "max_batch": max_batch,
            "max_body_bytes": _rules.LIMITS["max_body_bytes"],
            "linger": linger,
            "poll_interval": min(0.1, linger) if linger > 0 else 0.05,
            "base_backoff": 0.5,
            "max_backoff": max_backoff,
            "csat_retry_seconds": csat_retry_seconds,
        }
        self._spool = Spool(self.spool_path, max_bytes=spool_max_bytes, full_error=SpoolFull)
        # Without flock (Windows) each call writes to the spool itself (slower; as safe).
        self._journals = (
            _journal.Journals(
                self._spool, backlog_bytes=min(spool_max_bytes // 4, 64 * 1024**2), full_error=SpoolFull
            )
            if _journal.AVAILABLE
            else None
        )
        self._journal_interval = journal_interval
        self._closed = False
        self._forked = False
        self._start_threads()
        atexit.register(self._at_exit)
        # gunicorn's --preload and multiprocessing fork a process that has a tracker: the
        # child gets new connections and its own sender on its first call.
        reference = weakref.ref(self)
        os.register_at_fork(
            before=lambda: _call(reference, "_before_fork"),
            after_in_parent=lambda: _call(reference, "_after_fork_in_parent"),
            after_in_child=lambda: _call(reference, "_after_fork"),
        )

    def _start_threads(self) -> None:
        self._mover = None
        if self._journals is not None:
            self._mover = _journal.Mover(self._journals, interval=self._journal_interval)
            self._mover.start()
        self._sender = Sender(spool=self._spool, **self._sender_settings)
        self._sender.start()

    def _before_fork(self) -> None:
        self._spool.quiesce()

    def _after_fork_in_parent(self) -> None:
        self._spool.resume()

    def _after_fork(self) -> None:
        self._spool.after_fork()
        if self._journals is not None:
            self._journals.after_fork()
        self._forked = True

    def _restart_after_fork(self) -> None:
        self._forked = False
        self._start_threads()

    # --- Logging ----------------------------------------------------------------------------------

    def log_conversation(
        self,
        session_id: str,
        turns: int,
        resolved_by_ai: bool,
        topics: Sequence[str] | None,
        response_times: Sequence[float] | None,
        csat: int | None = None,
        **fields: Any,
    ) -> None:
        """Spool one finished conversation; returns once it is in the journal's file (see
        _journal.py: a kill -9 of the bot from then on loses nothing).

        The tutorial's arguments, plus the API's optional fields as keywords (`timestamp`,
        `channel`, `bot_version`, `ai_cost`, `outcome`, `escalation_reason`, `customer_id`,
        `avg_response_ms` with `response_times=None`, ...). A value the server's rules refuse
        raises ValueError naming the field; an unknown keyword raises TypeError. `csat=None`
        leaves the field out, so a score set earlier (`log_csat`) is kept. `timestamp`
        defaults to the time of this call. Raises SpoolFull when the spool is at its cap.
        """
        if self._forked:
            self._restart_after_fork()
        if self._closed:
            raise SupportAnalyticsError("This tracker is closed.")
        item: dict[str, Any] = {
            "session_id": session_id,
            "turns": turns,
            "resolved_by_ai": resolved_by_ai,
            "topics": topics,
        }
        if response_times is not None:
            item["response_times"] = response_times
        if csat is not None:
            item["csat"] = csat
        if fields:
            unknown = fields.keys() - OPTIONAL_FIELDS
            if unknown:
                raise TypeError(
                    f"log_conversation() got unexpected keyword arguments: {', '.join(sorted(unknown))}"
                )
            item.update(fields)
        body = _rules.CONVERSATION.check(item)
        if self._journals is not None:
            called_at = time.time()
            self._journals.append(session_id, _to_json(body), called_at, stamp="timestamp" not in body)
        else:
            if "timestamp" not in body:
                body["timestamp"] = datetime.now(timezone.utc).isoformat()
            self._spool.add(session_id, CONVERSATION, _to_json(body))

    def log_csat(self, session_id: str, csat: int | None) -> None:
        """A late survey's score (1-5; None clears it). Written into the spooled conversation
        while that is unsent, else posted to the server's CSAT endpoint after it; a 404 (the
        conversation not there yet) is retried for `csat_retry_seconds`, then dead-lettered."""
        if self._forked:
            self._restart_after_fork()
        if self._closed:
            raise SupportAnalyticsError("This tracker is closed.")
        checked = _rules.CONVERSATION.fields["session_id"](session_id)
        _rules.CSAT.check({"csat": csat})
        if self._journals is not None:
            self._journals.move()  # the session's conversation may still be in a journal
        self._spool.add_csat(checked, csat)

    # --- Reading ----------------------------------------------------------------------------------

    def get_summary(self, hours: int = 24) -> dict[str, Any]:
        """The server's summary of the last `hours` (GET /api/analytics), as it answers it: the
        tutorial's keys and more (nulls, not zeros, for an empty window). Raises
        SupportAnalyticsError when the server cannot answer."""
        url = f"{self.url}{_rules.PATHS['summary']}?{urlencode({'hours': hours})}"
        answer = _http.request("GET", url, key=self._read_api_key, timeout=self.timeout)
        if not answer.ok:
            raise SupportAnalyticsError(f"The summary could not be read: {answer.problem}")
        data = answer.json()
        if not isinstance(data, dict):
            raise SupportAnalyticsError("The summary could not be read: the answer is not a JSON object.")
        return data

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """What the server refused for good, oldest first, with its HTTP status and message."""
        return self._spool.dead_letters(limit)

    # --- Flushing and closing ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> int:
        """Wait until the spool is empty or `timeout` seconds have passed (None: no limit);
        returns how many rows (conversations, and late CSAT scores) are still waiting. Dead
        letters are not counted. Batches go out without their 1-second linger meanwhile."""
        if self._forked:
            self._restart_after_fork()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._sender.flushing():
            while True:
                waiting = self._waiting()
                if not waiting or not self._sender.is_alive():
                    return waiting
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return waiting
                time.sleep(0.05 if left is None else min(0.05, left))

    def _waiting(self) -> int:
        """Rows in the spool, and conversations a journal holds that the spool could not take."""
        if self._journals is None:
            return self._spool.pending_count()
        if self._journals.orphans_waiting:
            self._journals.recover()
        self._journals.move()
        return self._spool.pending_count() + self._journals.waiting()

    def close(self, timeout: float | None = None) -> None:
        """Flush for at most `timeout` seconds (default: exit_timeout), then stop sending.
        What is left stays in the spool, and goes out when a tracker next runs on it."""
        if self._closed:
            return
        waiting = self.flush(self.exit_timeout if timeout is None else timeout)
        self._closed = True
        if self._mover is not None:
            self._mover.stop(timeout=1.0)
            self._journals.close()
        self._sender.stop(timeout=1.0)
        atexit.unregister(self._at_exit)
        if waiting:
            logger.warning(
                "Support Analytics: %d rows stay in the spool %s; they are sent when a tracker next uses it",
                waiting, self.spool_path,
            )  # fmt: skip
        self._spool.close_connection()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:  # never a traceback at interpreter exit for this
            logger.exception("Support Analytics: closing the tracker at exit failed")

    def __enter__(self) -> AnalyticsTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AnalyticsTracker {self.url} spool={self.spool_path!r}>"


def _call(reference: weakref.ref, method: str) -> None:
    tracker = reference()
    if tracker is not None:
        getattr(tracker, method)()
