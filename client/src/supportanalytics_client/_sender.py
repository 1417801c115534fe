"""The background sender: claims batches from the spool, posts them, and removes a row only
once the server has it (a 2xx), or once the server refused it for good (a dead letter).

    up to 1,000 conversations, under the server's body limit, or whatever waited 1 s
    network error, 5xx, 503, 429  -> the batch is released; wait (Retry-After, else exponential
                                     backoff with jitter), then claim again
    413                           -> the batch is split in two, each sent alone
    400 naming items (`index`)    -> those are dead-lettered (the server's message, a warning),
                                     the rest sent; a timestamp ahead of the server's clock is
                                     retried later instead
    400 naming none               -> bisected down to the item at fault
    401, 403 (and any other answer that says the set-up is wrong: 3xx, 404, 405...)
                                  -> everything stays spooled; an error is logged; retried
    CSAT rows                     -> POST .../<session_id>/csat/ after the batch's array; a 404
                                     (the conversation not there yet) is retried for a while

Log lines name session ids, fields and the server's messages, never a body: a raw customer
id never reaches the log.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote

from supportanalytics_client import _http, _rules
from supportanalytics_client._spool import CONVERSATION, Row, Spool

logger = logging.getLogger("supportanalytics_client")

CHECKPOINT_SECONDS = 5.0


class _Retry(Exception):
    """The whole batch waits: the server is unreachable, busy, or refuses the key."""

    def __init__(self, answer: _http.Answer):
        super().__init__(answer.problem)
        self.answer = answer


class Sender(threading.Thread):
    def __init__(
        self,
        *,
        spool: Spool,
        base_url: str,
        api_key: str,
        timeout: float,
        lease_seconds: float,
        max_batch: int,
        max_body_bytes: int,
        linger: float,
        poll_interval: float,
        base_backoff: float,
        max_backoff: float,
        csat_retry_seconds: float,
    ):
        super().__init__(name="supportanalytics-sender", daemon=True)
        self.spool = spool
        self.ingest_url = base_url + _rules.PATHS["ingest"]
        self.csat_url = base_url + _rules.PATHS["csat"]
        self.api_key = api_key
        self.timeout = timeout
        # The lease is made longer before a request once half of it is gone: that half must
        # outlast the request.
        self.lease_seconds = max(lease_seconds, 2 * timeout + 1)
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.linger = linger
        self.poll_interval = poll_interval
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.csat_retry_seconds = csat_retry_seconds
        # Who holds a lease: host, process and this sender, then a batch number.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._batches = itertools.count(1)
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._flushers = 0
        self._flushers_lock = threading.Lock()
        self._failures = 0  # consecutive failed attempts
        self._not_before = 0.0
        self._last_checkpoint = time.monotonic()
        self._lease: tuple[str, int, int, float] = ("", 0, 0, 0.0)  # batch, first and last id, until
        self.delivered = 0
        self.dead_lettered = 0

    # --- Control from other threads ---------------------------------------------------------

    def stop(self, timeout: float | None = None) -> None:
        self._stop_requested.set()
        self._wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def flushing(self) -> _Flushing:
        return _Flushing(self)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()

    # --- The loop -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.spool.allow_headroom()
            while not self._stop_requested.is_set():
                try:
                    self._step()
                    if time.monotonic() - self._last_checkpoint > CHECKPOINT_SECONDS:
                        self._last_checkpoint = time.monotonic()
                        self.spool.checkpoint()
                except Exception:  # a bug or a broken spool file: say so, keep the thread alive
                    logger.exception("Support Analytics: the sender failed; trying again in 1 s")
                    self._sleep(1.0)
        finally:
            self.spool.close_connection()

    def _step(self) -> None:
        now = time.time()
        if now < self._not_before:
            self._sleep(min(self._not_before - now, self.poll_interval * 10))
            return
        count, oldest = self.spool.due(now, self.max_batch)
        if not count:
            self._sleep(self.poll_interval)
            return
        if count < self.max_batch and not self._flushers and oldest is not None:
            waited = now - oldest
            if waited < self.linger:
                self._sleep(min(self.poll_interval, self.linger - waited))
                return
        if self._failures:
            # In a streak of failures, ask before claiming: an empty array is the cheapest
            # request that meets the key check, the rate limit and the database, and an
            # outage then costs the spool nothing (no leases taken and released every retry).
            answer = _http.request(
                "POST", self.ingest_url, key=self.api_key, body=b"[]", timeout=self.timeout
            )
            if not answer.ok:
                self._back_off(answer)
                return
        owner = f"{self.owner}/{next(self._batches)}"
        rows = self.spool.claim(
            owner=owner,
            now=now,
            lease_seconds=self.lease_seconds,
            limit=self.max_batch,
            max_bytes=self.max_body_bytes,
        )
        if not rows:  # all claimable rows wait behind an earlier row of their session
            self._sleep(self.poll_interval)
            return
        self._send(rows, owner)

    def _send(self, rows: list[Row], owner: str) -> None:
        self._lease = (owner, rows[0].id, rows[-1].id, time.time() + self.lease_seconds)
        try:
            conversations = [row for row in rows if row.kind == CONVERSATION]
            if conversations:
                self._post_conversations(conversations, owner)
            for row in rows:
                if row.kind != CONVERSATION:
                    self._post_csat(row, owner)
        except _Retry as retry:
            delay = self._back_off(retry.answer)
            self.spool.release(rows, owner, retry_at=time.time() + delay)
            return
        if self._failures:
            logger.info(
                "Support Analytics: delivering again after %d failed attempts", self._failures,
                extra={"supportanalytics_failures": self._failures},
            )  # fmt: skip
            self._failures = 0

    # --- Conversations ---------------------------------------------------------------------------

    def _post(self, url: str, body: bytes, owner: str) -> _http.Answer:
        # A request may take up to `timeout`: the lease must outlast it, or another process
        # could claim the rows and send them while these are still on their way.
        _, first, last, until = self._lease
        now = time.time()
        if until - now < self.lease_seconds / 2:
            until = now + self.lease_seconds
            self.spool.extend(owner, first, last, until)
            self._lease = (owner, first, last, until)
        return _http.request("POST", url, key=self.api_key, body=body, timeout=self.timeout)

    def _post_conversations(self, rows: list[Row], owner: str) -> None:
        body = ("[" + ",".join(row.body for row in rows) + "]").encode()
        answer = self._post(self.ingest_url, body, owner)
        if answer.ok:
            self.spool.delete(rows, owner)
            self.delivered += len(rows)
            return
        if answer.status == 413:
            if len(rows) == 1:
                self._dead_letter(rows[0], owner, answer.status, answer.detail())
            else:
                self._in_halves(rows, owner)
            return
        if answer.status != 400:
            raise _Retry(answer)
        problems = _problems_by_index(answer, len(rows))
        if problems is None:  # the server named no item: find it by halves
            if len(rows) == 1:
                self._dead_letter(rows[0], owner, answer.status, _message(answer, []))
            else:
                self._in_halves(rows, owner)
            return
        held: set[str] = set()
        for index, errors in sorted(problems.items()):
            row = rows[index]
            if _clock_ahead(row, errors):
                # The server's clock is behind ours: not the conversation's fault. It waits (and
                # with it its session's later rows), then goes again.
                delay = self._backoff_for(row.attempts + 1)
                logger.warning(
                    "Support Analytics: session %s has a timestamp ahead of the server's clock; "
                    "retrying in %.0f s", row.session_id, delay,
                )  # fmt: skip
                self.spool.release([row], owner, retry_at=time.time() + delay)
                held.add(row.session_id)
            else:
                self._dead_letter(row, owner, answer.status, _message(answer, errors))
        rest = [row for index, row in enumerate(rows) if index not in problems]
        later = [row for row in rest if row.session_id in held]
        if later:
            self.spool.release(later, owner, retry_at=time.time(), count_attempt=False)
        rest = [row for row in rest if row.session_id not in held]
        if rest:
            self._post_conversations(rest, owner)

    def _in_halves(self, rows: list[Row], owner: str) -> None:
        middle = len(rows) // 2
        self._post_conversations(rows[:middle], owner)
        self._post_conversations(rows[middle:], owner)

    def _dead_letter(self, row: Row, owner: str, status: int, message: str) -> None:
        self.spool.dead_letter(row, owner, status=status, message=message)
        self.dead_lettered += 1
        logger.warning(
            "Support Analytics refused %s %s for good (HTTP %d: %s); kept in the spool's dead_letters table",
            row.kind, row.session_id, status, message,
            extra={"supportanalytics_session_id": row.session_id, "supportanalytics_status": status},
        )  # fmt: skip

    # --- Late CSAT ----------------------------------------------------------------------------------

    def _post_csat(self, row: Row, owner: str) -> None:
        url = self.csat_url.replace("{session_id}", quote(row.session_id, safe=""))
        answer = self._post(url, row.body.encode(), owner)
        if answer.ok:
            self.spool.delete([row], owner)
            self.delivered += 1
        elif answer.status == 404 and time.time() - row.enqueued_at < self.csat_retry_seconds:
            # The conversation may still be on its way (another process's spool, a retry).
            delay = self._backoff_for(row.attempts + 1)
            logger.debug("Support Analytics: no conversation %s yet for its CSAT; retrying in %.0f s",
                         row.session_id, delay)  # fmt: skip
            self.spool.release([row], owner, retry_at=time.time() + delay)
        elif answer.status in (400, 404):
            self._dead_letter(row, owner, answer.status, answer.detail())
        else:
            raise _Retry(answer)

    # --- Waiting ------------------------------------------------------------------------------------

    def _backoff_for(self, failures: int) -> float:
        """Exponential backoff with jitter: base × 2^(n-1), at most max_backoff, times 0.5-1."""
        ceiling = min(self.max_backoff, self.base_backoff * 2 ** min(failures - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    def _back_off(self, answer: _http.Answer) -> float:
        self._failures += 1
        retry_after = answer.retry_after()
        if retry_after is not None:
            # Honoured, plus a little jitter so that several workers do not return together.
            delay = retry_after + random.uniform(0, 0.1 * retry_after + 0.1)
        else:
            delay = self._backoff_for(self._failures)
        self._not_before = time.time() + delay
        extra = {
            "supportanalytics_status": answer.status,
            "supportanalytics_retry_after": retry_after,
            "supportanalytics_delay": delay,
        }
        status = answer.status
        if status in (401, 403):
            level, what = logging.ERROR, "refuses the API key (check SUPPORTANALYTICS_API_KEY)"
        elif status == _http.NETWORK or status == 429 or status >= 500 or status == 408:
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            what = "rate limit reached" if status == 429 else "unavailable"
        else:
            level, what = logging.ERROR, "answered unexpectedly (check SUPPORTANALYTICS_URL)"
        if logger.isEnabledFor(level):
            waiting = self.spool.pending_count() if level >= logging.WARNING else "rows"
            logger.log(
                level, "Support Analytics %s: %s; %s kept in the spool, retrying in %.1f s",
                what, answer.problem, waiting, delay, extra=extra,
            )  # fmt: skip
        return delay


class _Flushing:
    """While a flush waits, batches go out without waiting for the 1-second linger."""

    def __init__(self, sender: Sender):
        self.sender = sender

    def __enter__(self) -> None:
        with self.sender._flushers_lock:
            self.sender._flushers += 1
        self.sender._wake.set()

    def __exit__(self, *exc: object) -> None:
        with self.sender._flushers_lock:
            self.sender._flushers -= 1


def _problems_by_index(answer: _http.Answer, count: int) -> dict[int, list[dict[str, Any]]] | None:
    """The 400's errors by the index of the item they name; None if they name none."""
    data = answer.json()
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return None
    problems: dict[int, list[dict[str, Any]]] = {}
    for error in errors:
        index = error.get("index") if isinstance(error, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
            problems.setdefault(index, []).append(error)
    return problems or None


def _message(answer: _http.Answer, errors: list[dict[str, Any]]) -> str:
    if errors:
        return "; ".join(f"{error.get('field') or 'item'}: {error.get('message')}" for error in errors)
    return answer.detail()


def _clock_ahead(row: Row, errors: list[dict[str, Any]]) -> bool:
    """Whether the server refused only the item's timestamp although it is a valid time: then
    the server thinks it lies in the future (its clock is behind the one that stamped it)."""
    if not all(error.get("field") == "timestamp" for error in errors):
        return False
    timestamp = json.loads(row.body).get("timestamp")
    if not isinstance(timestamp, str):
        return False
    parsed = _rules._parse_timestamp(timestamp)
    first_year, last_year = _rules.LIMITS["timestamp_years"]
    return parsed is not None and first_year <= parsed.year <= last_year
