"""The scheduled work of alerts and digests (issue 18), run by procrastinate's worker
(`manage.py procrastinate worker`; `make run` starts one beside the server).

The worker's periodic deferrer puts a job in the queue at each tick of a task's cron (several
workers agree in PostgreSQL on one job per tick) and passes the tick as `timestamp` (Unix
seconds). The work itself lives elsewhere and is imported inside the task bodies, so that
loading this module (the Django app autodiscovers it at start-up) loads none of it:
`conversations.alert_evaluation.evaluate_alerts` and `conversations.digests.send_digests`.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django import app

EVALUATION_CRON = "* * * * *"
EVALUATION_INTERVAL = timedelta(minutes=1)
# Procrastinate's cron is read in UTC, whatever the machine's zone, and 3.10 takes no time
# zone (procrastinate issue #1472), so "08:00" cannot be written in ANALYTICS_TIME_ZONE, and
# no fixed UTC hour is 08:00 local on both sides of a DST change. The digest task therefore
# runs every quarter hour (zone offsets are whole quarter hours: India's +05:30 and Nepal's
# +05:45 included) and sends only when its tick is in the local hour DIGEST_HOUR: 08:00
# exactly, then 08:15, 08:30 and 08:45 as catch-ups (a worker that was down at 08:00, a mail
# server that failed), harmless because send_digests sends once per period and subscriber.
DIGEST_CRON = "*/15 * * * *"
DIGEST_HOUR = 8
MONDAY = 0
# The digests and their day: "daily" every day, "weekly" on Mondays (datetime.weekday()).
DIGEST_DAYS: dict[str, int | None] = {"daily": None, "weekly": MONDAY}


@contextlib.contextmanager
def _connection_closed_after():
    """A synchronous task runs on a thread of the worker's pool, with a Django connection of
    that thread's own, which nothing else closes (no request ends there): closed when the task
    ends, so none is left behind idle, or broken for the next task on the thread."""
    try:
        yield
    finally:
        connection.close()


def tick_time(timestamp: int) -> datetime:
    """The tick a periodic job was deferred for, as an aware UTC datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC)


def evaluation_time(*, scheduled: datetime, started: datetime) -> datetime:
    """The moment a pass evaluates: the latest minute tick that has begun when it starts.

    On time (the usual case: a job starts a fraction of a second after its tick) that is the
    tick itself, so the windows end on the minute whatever the worker's lag, and two workers
    evaluate the same moment. A job that waited behind a long pass stands in for the ticks the
    queueing lock skipped meanwhile: it evaluates the latest of them, not a minute already gone.
    """
    if started <= scheduled:
        return scheduled
    return scheduled + (started - scheduled) // EVALUATION_INTERVAL * EVALUATION_INTERVAL


def digest_due(frequency: str, *, at: datetime, tz: ZoneInfo) -> bool:
    """Whether a digest goes out at the tick `at`: in the local hour DIGEST_HOUR (08:00-08:59
    in `tz`), on its day (Mondays for the weekly one)."""
    local = at.astimezone(tz)
    day = DIGEST_DAYS[frequency]
    return local.hour == DIGEST_HOUR and (day is None or local.weekday() == day)


# Every minute, never piling up: the queueing lock lets one job wait in the queue ("todo")
# and the deferrer skips a tick while one does, so a slow pass is followed by one pass, not by
# a job per minute it took. No procrastinate `lock` besides: a worker killed mid-pass leaves
# its job "doing" for good, and that lock would then hold back every later pass; two passes at
# once (two workers) are safe anyway, each takes PostgreSQL's advisory lock (released with
# its connection). No retries: a failed pass is followed by the next minute's, which
# evaluates the current window (a retry would evaluate one already gone); deliveries keep
# their own retries (AlertDelivery).
@app.periodic(cron=EVALUATION_CRON)
@app.task(name="conversations.evaluate_alerts", queueing_lock="conversations.evaluate_alerts", retry=False)
def evaluate_alerts_task(timestamp: int) -> None:
    from conversations.alert_evaluation import evaluate_alerts

    with _connection_closed_after():
        evaluate_alerts(now=evaluation_time(scheduled=tick_time(timestamp), started=timezone.now()))


# One job per digest and tick (periodic_id); each with its queueing lock, so that ticks do not
# pile up behind a busy worker either. No retries: the later ticks of the hour are the retries.
@app.periodic(
    cron=DIGEST_CRON,
    periodic_id="daily",
    task_kwargs={"frequency": "daily"},
    queueing_lock="conversations.send_digests.daily",
)
@app.periodic(
    cron=DIGEST_CRON,
    periodic_id="weekly",
    task_kwargs={"frequency": "weekly"},
    queueing_lock="conversations.send_digests.weekly",
)
@app.task(name="conversations.send_digests", retry=False)
def send_digests_task(timestamp: int, frequency: str) -> None:
    # `now` is the tick, not the clock: a job that started late still sends the digest of the
    # period its tick belongs to (the day before, the week before), and only if it was due.
    at = tick_time(timestamp)
    if not digest_due(frequency, at=at, tz=ZoneInfo(settings.ANALYTICS_TIME_ZONE)):
        return
    from conversations.digests import send_digests

    with _connection_closed_after():
        send_digests(frequency=frequency, now=at)
