"""Django's PostgreSQL backend, with health checks skipped for a connection that was just used.

`conn_health_checks` runs `SELECT 1` before a reused connection's first query in every
request. Under load that round trip was a sizeable part of a single POST's cost
(docs/benchmarks.md, "Health checks skipped for a busy connection"), to learn what the
previous request on the same connection had just shown. As connection pools do (HikariCP's
`aliveBypassWindowMs`, 500 ms by default), a connection that went to work less than
`ALIVE_BYPASS_SECONDS` ago, and has met no connection error since, is trusted without the
check; an idle one is checked as before.

What it gives up: a connection cut within that half second (PostgreSQL restarted) fails its
next request instead of being replaced before it. That request answers 503 like any other that
meets a database outage (`supportanalytics.outage`), and Django closes the failed connection
at the end of it (`errors_occurred`), so the next request connects again.
"""

from __future__ import annotations

from time import monotonic

from django.db.backends.postgresql import base

ALIVE_BYPASS_SECONDS = 0.5


class DatabaseWrapper(base.DatabaseWrapper):
    # When this connection was last connected or given a cursor (Django calls
    # close_if_health_check_failed for every cursor; so does conversations.db.raw_cursor).
    used_at = float("-inf")

    def connect(self):
        super().connect()
        self.used_at = monotonic()

    def close_if_health_check_failed(self):
        now = monotonic()
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            # Any error but a DataError or an IntegrityError (the data's, not the connection's).
            and not self.errors_occurred
            and now - self.used_at < ALIVE_BYPASS_SECONDS
        ):
            self.health_check_done = True
        else:
            super().close_if_health_check_failed()
        self.used_at = now
