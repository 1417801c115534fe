"""Django's PostgreSQL backend, with health checks skipped for a connection that just answered.

`conn_health_checks` runs `SELECT 1` before a reused connection's first query in every
request. Under load that round trip was a tenth of a single POST's cost (its PostgreSQL and
psycopg work, and the wake-ups on both sides), to learn what the previous request on the same
connection had just shown. As connection pools do (HikariCP's `aliveBypassWindowMs`, 500 ms
by default), a connection that answered within the last `ALIVE_BYPASS_SECONDS` is trusted
without the check; an idle one is checked as before.

What it gives up: a connection cut within that half second (PostgreSQL restarted) fails its
next request instead of being replaced before it. That request answers 503 like any other that
meets a database outage (`supportanalytics.outage`), and Django closes the failed connection
at the end of it (`errors_occurred`), so the next request connects again.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

ALIVE_BYPASS_SECONDS = 0.5


class DatabaseWrapper(base.DatabaseWrapper):
    # When this connection last showed it worked: connected, passed a health check, or ended
    # a request in which it was used without a connection-level error.
    answered_at = float("-inf")

    def connect(self):
        super().connect()
        self.answered_at = time.monotonic()

    def close_if_unusable_or_obsolete(self):
        # Django calls this as each request starts and ends. `health_check_done` is still set
        # here at the end of a request that used the connection; `errors_occurred` is set by
        # any error but a DataError or an IntegrityError (the data's, not the connection's).
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self.answered_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and time.monotonic() - self.answered_at < ALIVE_BYPASS_SECONDS
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
        if self.connection is not None:
            self.answered_at = time.monotonic()
