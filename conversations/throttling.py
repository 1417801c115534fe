"""Per-API-key rate limits for the API, counted in Django's database cache.

The count lives in PostgreSQL (the `django_cache` table, created by migration 0006), so every
gunicorn worker and every server sees the same number. Views name their scope
(`throttle_scope = "ingest"` or `"read"`); the rates come from `API_THROTTLE_INGEST_RATE` and
`API_THROTTLE_READ_RATE` (settings.py). A request over the limit answers 429 with `Retry-After`
and `{"detail": ...}` (DRF's `Throttled`, shaped by conversations.errors).
"""

from __future__ import annotations

import logging

from django.db import ProgrammingError
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from conversations.models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle, counted per API key (staff sessions per user), in fixed windows.

    Why not DRF's own counting: SimpleRateThrottle keeps one timestamp per request in the cache
    entry, so at 600 requests/s every request would unpickle, rewrite and log ~600 floats
    (~7 kB a row in PostgreSQL). Here the entry is `(window start, count)`, a few bytes, and
    windows start at multiples of the period (a whole second, minute...). Rate parsing, the
    scope lookup, `Retry-After` and the 429 are DRF's.

    The read-then-write is not atomic (no cache backend's `incr` is, for the database cache):
    requests of one key racing in the same instant may each count once for several; the
    limit is a guard against a runaway client, not a billing quota.
    """

    # Read at request time (not frozen at import as DRF's THROTTLE_RATES is), so a changed
    # REST_FRAMEWORK setting (tests) applies at once.
    @property
    def THROTTLE_RATES(self):  # DRF's attribute name
        return api_settings.DEFAULT_THROTTLE_RATES

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiKey):
            # The prefix is the key's public, unique part; its primary key holds the hash.
            ident = f"key:{request.auth.prefix}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None  # refused by the permissions before any throttle runs
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window_start = self.now - self.now % self.duration
        self.window_end = window_start + self.duration
        try:
            started, count = self.cache.get(self.key, (window_start, 0))
            if started != window_start:
                count = 0
            if count >= self.num_requests:
                return False
            # Kept past its window so the next window updates the row instead of deleting
            # and inserting it (the database cache drops expired rows on read).
            self.cache.set(self.key, (window_start, count + 1), self.duration + 60)
        except ProgrammingError:
            # No cache table (a deployment that skipped `migrate`): serve unthrottled rather
            # than fail every API request. (A database that is down still answers 503.)
            logger.exception("API throttling is off: the cache table is missing; run `manage.py migrate`.")
        return True

    def wait(self) -> float:
        return self.window_end - self.now
