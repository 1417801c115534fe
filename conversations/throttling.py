"""Per-API-key rate limits for the API, counted in PostgreSQL.

The counts live in the `conversations_ratelimitcounter` table (migration 0007), so every
gunicorn worker and every server sees the same number. Views name their scope
(`throttle_scope = "ingest"` or `"read"`); the rates come from `API_THROTTLE_INGEST_RATE` and
`API_THROTTLE_READ_RATE` (settings.py). A request over the limit answers 429 with `Retry-After`
and `{"detail": ...}` (DRF's `Throttled`, shaped by conversations.errors).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from django.db import ProgrammingError
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from conversations.db import raw_cursor
from conversations.models import ApiKey, RateLimitCounter

logger = logging.getLogger(__name__)
_missing_table_reported = False


# Count this request in its caller's row: a newer window starts again at 1. A request that
# read its clock in an older window than the row's (it raced across the boundary, or its
# server's clock is a little behind) counts in the row's window rather than resetting it. The
# row lock makes concurrent requests of one caller count one after the other, and lasts only
# as long as the statement: it runs in autocommit, before the view opens its transaction
# (ATOMIC_REQUESTS, which would hold it for the whole request, is off).
def counting_sql(rows: str) -> str:
    """The upsert that counts a request, from `rows` (a VALUES or SELECT of one row, or none:
    key, window start, 1), returning the count."""
    return f"""
    INSERT INTO {RateLimitCounter._meta.db_table} AS c (key, window_start, count)
    {rows}
    ON CONFLICT (key) DO UPDATE SET
        count = CASE WHEN EXCLUDED.window_start > c.window_start THEN 1 ELSE c.count + 1 END,
        window_start = greatest(c.window_start, EXCLUDED.window_start)
    RETURNING count
    """


COUNT_SQL = counting_sql("VALUES (%(counter)s, %(window_start)s, 1)")


class ApiKeyRateThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle, counted per API key (staff sessions per user), in fixed windows.

    Windows start at multiples of the period (a whole second, minute...). Each request is
    one upsert that adds itself to its window and returns the count: atomic, so callers
    racing in the same instant are each counted, and one round trip instead of DRF's cache
    get + set (SimpleRateThrottle also keeps one timestamp per request in its cache entry:
    at 600 requests/s every request would rewrite ~600 floats). Refused requests count too.
    Rate parsing, the scope lookup, `Retry-After` and the 429 are DRF's.

    A request with an API key is counted by the key lookup itself, in the same statement
    (`for_key`, conversations.auth): one round trip fewer on every API request. So a key
    that lacks the view's scope (403) is counted too.
    """

    # Read at request time (not frozen at import as DRF's THROTTLE_RATES is), so a changed
    # REST_FRAMEWORK setting (tests) applies at once.
    @property
    def THROTTLE_RATES(self):  # DRF's attribute name
        return api_settings.DEFAULT_THROTTLE_RATES

    count: int | None = None  # this request's number in its window, once counted

    @classmethod
    def for_key(cls, view, prefix: str) -> ApiKeyRateThrottle | None:
        """The throttle a request by the API key of this prefix meets at this view, with its
        counter worked out (`key`, `window_start`) but not counted; None if no limit applies
        (nor if the view's throttles are not exactly this class)."""
        if cls not in getattr(view, "throttle_classes", ()):
            return None
        throttle = cls()
        return throttle if throttle._start(view, f"key:{prefix}") else None

    @staticmethod
    def _ident(request) -> str | None:
        """Whose requests these are: "key:<prefix>" or "user:<id>" (the counter is
        "<scope>:<ident>")."""
        if isinstance(request.auth, ApiKey):
            # The prefix is the key's public, unique part; its primary key holds the hash.
            return f"key:{request.auth.prefix}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return None  # refused by the permissions before any throttle runs

    def _start(self, view, ident: str | None) -> bool:
        """Work out this request's counter; False if no limit applies."""
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return False
        self.rate = self.get_rate()
        if self.rate is None:
            return False
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if ident is None:
            return False
        self.key = f"{self.scope}:{ident}"
        self.now = self.timer()
        window_start = self.now - self.now % self.duration
        self.window_start = datetime.fromtimestamp(window_start, UTC)
        self.window_end = window_start + self.duration
        return True

    @property
    def count_params(self) -> dict:
        """The parameters of `COUNT_SQL`, for this request's counter."""
        return {"counter": self.key, "window_start": self.window_start}

    def allow_request(self, request, view) -> bool:
        counted = getattr(request, "counted_throttle", None)  # set by the key lookup
        if type(counted) is type(self) and counted.count is not None:
            self.__dict__.update(counted.__dict__)
            return self.count <= self.num_requests
        if not self._start(view, self._ident(request)):
            return True
        try:
            with raw_cursor() as cursor:
                cursor.execute(COUNT_SQL, self.count_params, prepare=True)
                (self.count,) = cursor.fetchone()
        except ProgrammingError:
            # No counter table (a deployment that skipped `migrate`): serve unthrottled rather
            # than fail every API request. (A database that is down still answers 503.) Said
            # once per process, not once per request.
            global _missing_table_reported
            if not _missing_table_reported:
                _missing_table_reported = True
                logger.exception("API throttling is off: its table is missing; run `manage.py migrate`.")
            return True
        return self.count <= self.num_requests

    def wait(self) -> float:
        return self.window_end - self.now
