"""The scheduler (conversations/tasks.py): which tasks procrastinate runs when, the local 08:00
of the digests across DST changes, and a real worker, in this process, on the test database.

Most are wiring tests: a fake module stands in (in sys.modules) for the work the tasks call
(conversations.alert_evaluation.evaluate_alerts, conversations.digests.send_digests) and
records its calls; the last worker test runs the real work end to end.
"""

import asyncio
import sys
import types
from datetime import UTC, datetime, timedelta

import croniter
import pytest
import time_machine
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from procrastinate.contrib.django import app, procrastinate_app
from procrastinate.contrib.django.models import ProcrastinateJob
from procrastinate.periodic import PeriodicDeferrer

from conversations import tasks
from tests.conftest import T0

EVALUATE = "conversations.evaluate_alerts"
DIGESTS = "conversations.send_digests"


def test_the_periodic_tasks_and_their_schedules():
    registered = {
        key: (
            periodic.cron,
            # The deferrer adds the tick's `timestamp` to these at each defer.
            {k: v for k, v in periodic.configure_kwargs.get("task_kwargs", {}).items() if k != "timestamp"},
            periodic.configure_kwargs.get("queueing_lock", periodic.task.queueing_lock),
            periodic.task.retry_strategy,
        )
        for key, periodic in app.periodic_registry.periodic_tasks.items()
    }

    assert registered == {
        (EVALUATE, ""): ("* * * * *", {}, EVALUATE, None),
        (DIGESTS, "daily"): ("*/15 * * * *", {"frequency": "daily"}, f"{DIGESTS}.daily", None),
        (DIGESTS, "weekly"): ("*/15 * * * *", {"frequency": "weekly"}, f"{DIGESTS}.weekly", None),
    }
    # No procrastinate lock: a worker killed mid-pass would leave it held (tasks.py).
    assert app.tasks[EVALUATE].lock is None


# --- Evaluation time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "started_after, evaluates",
    [
        (timedelta(0), timedelta(0)),  # exactly on its tick
        (timedelta(seconds=0.4), timedelta(0)),  # the usual start
        (timedelta(seconds=59.999), timedelta(0)),
        (timedelta(minutes=1), timedelta(minutes=1)),  # the next tick has begun: it stands in for it
        (timedelta(minutes=5, seconds=30), timedelta(minutes=5)),
        (timedelta(seconds=-2), timedelta(0)),  # a worker's clock behind the deferrer's
    ],
)
def test_a_pass_evaluates_the_latest_tick_that_has_begun(started_after, evaluates):
    assert tasks.evaluation_time(scheduled=T0, started=T0 + started_after) == T0 + evaluates


# --- Digests at 08:00 local ----------------------------------------------------------------


@pytest.fixture
def digests_sent(monkeypatch) -> list[tuple[str, datetime]]:
    """conversations.digests stood in for by a fake: the (frequency, now) of each call."""
    calls = []
    fake = types.ModuleType("conversations.digests")
    fake.send_digests = lambda *, frequency, now=None: calls.append((frequency, now))
    monkeypatch.setitem(sys.modules, "conversations.digests", fake)
    return calls


@pytest.fixture
def evaluations(monkeypatch) -> list[datetime | None]:
    """conversations.alert_evaluation stood in for by a fake: the `now` of each pass."""
    calls = []
    fake = types.ModuleType("conversations.alert_evaluation")
    fake.evaluate_alerts = lambda *, now=None: calls.append(now)
    monkeypatch.setitem(sys.modules, "conversations.alert_evaluation", fake)
    return calls


def ticks(cron: str, *, start: datetime, end: datetime) -> list[datetime]:
    """A cron's ticks in [start, end), as procrastinate's deferrer computes them (in UTC)."""
    found = []
    schedule = croniter.croniter(cron, start - timedelta(seconds=1))
    while (tick := schedule.get_next(datetime)) < end:
        found.append(tick)
    return found


def hour_of_ticks(first: datetime) -> list[datetime]:
    """08:00, 08:15, 08:30 and 08:45 local: the due ticks of one day, from the first (in UTC)."""
    return [first + timedelta(minutes=minutes) for minutes in (0, 15, 30, 45)]


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "zone, start, daily, weekly",
    [
        # Europe/Berlin springs forward on Sunday 2026-03-29 (02:00 CET -> 03:00 CEST): 08:00 is
        # 07:00 UTC until the Saturday, 06:00 UTC from the Sunday; the weekly digest on Monday
        # the 30th follows the new offset.
        (
            "Europe/Berlin",
            utc(2026, 3, 27),
            [utc(2026, 3, 27, 7), utc(2026, 3, 28, 7), utc(2026, 3, 29, 6), utc(2026, 3, 30, 6)],
            [utc(2026, 3, 30, 6)],
        ),
        # ...and falls back on Sunday 2026-10-25 (03:00 CEST -> 02:00 CET).
        (
            "Europe/Berlin",
            utc(2026, 10, 23),
            [utc(2026, 10, 23, 6), utc(2026, 10, 24, 6), utc(2026, 10, 25, 7), utc(2026, 10, 26, 7)],
            [utc(2026, 10, 26, 7)],
        ),
        # Half an hour off UTC (+05:30): 08:00 is 02:30 UTC, which an hourly tick would miss.
        (
            "Asia/Kolkata",
            utc(2026, 3, 13),
            [utc(2026, 3, day, 2, 30) for day in (13, 14, 15, 16)],
            [utc(2026, 3, 16, 2, 30)],
        ),
    ],
)
def test_digests_go_out_at_08_00_local_on_both_sides_of_a_dst_change(
    zone, start, daily, weekly, settings, digests_sent
):
    """Every tick of the registered digest schedules over four days, run through the task's
    body: send_digests is called in the local hour 08:00-08:59 only (08:00 first, then the
    catch-up ticks), with the tick as `now`."""
    settings.ANALYTICS_TIME_ZONE = zone
    end = start + timedelta(days=4)
    for (_, periodic_id), periodic in app.periodic_registry.periodic_tasks.items():
        if periodic.task.name != DIGESTS:
            continue
        for tick in ticks(periodic.cron, start=start, end=end):
            tasks.send_digests_task(timestamp=int(tick.timestamp()), frequency=periodic_id)

    assert sorted(digests_sent) == sorted(
        [("daily", tick) for first in daily for tick in hour_of_ticks(first)]
        + [("weekly", tick) for first in weekly for tick in hour_of_ticks(first)]
    )


# --- A real worker -------------------------------------------------------------------------


@pytest.fixture
def empty_queue(transactional_db):
    """procrastinate's tables are not Django-managed, so a transactional test's flush leaves
    them alone: emptied before and after."""

    def empty():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs,"
                " procrastinate_workers"
            )

    empty()
    yield
    empty()


@pytest.fixture
def worker(empty_queue, monkeypatch):
    """Runs a real worker in this process, on the test database, until the queue is empty
    (the connection procrastinate's command gives it: the same DATABASES settings).

    The worker's own periodic deferrer is kept out (no tick is younger than a max_delay of 0),
    so that the jobs are exactly those the test's `defer_ticks` queued."""
    monkeypatch.setattr(procrastinate_app.current_app, "periodic_defaults", {"max_delay": 0})

    def run() -> None:
        with app.replace_connector(app.connector.get_worker_connector()):
            app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)

    return run


def defer_ticks(deferrer: PeriodicDeferrer, *, at: datetime) -> None:
    """One round of procrastinate's periodic deferrer at `at`: each task's ticks since its
    last round (the latest tick, in a first round) are queued in the test database."""

    async def defer() -> None:
        async with app.open_async():
            await deferrer.defer_jobs(deferrer.get_previous_tasks(at=at.timestamp()))

    with app.replace_connector(app.connector.get_worker_connector()):
        asyncio.run(defer())


def queued() -> list[tuple[str, str, dict]]:
    return list(ProcrastinateJob.objects.order_by("id").values_list("task_name", "status", "args"))


def test_a_worker_runs_the_evaluation_of_the_minute_it_was_deferred_for(worker, evaluations, digests_sent):
    deferrer = PeriodicDeferrer(registry=app.periodic_registry)
    defer_ticks(deferrer, at=T0 + timedelta(seconds=0.5))
    assert queued() == [
        (EVALUATE, "todo", {"timestamp": int(T0.timestamp())}),
        (DIGESTS, "todo", {"frequency": "weekly", "timestamp": int(T0.timestamp())}),
        (DIGESTS, "todo", {"frequency": "daily", "timestamp": int(T0.timestamp())}),
    ]

    with time_machine.travel(T0 + timedelta(seconds=20), tick=False):  # a worker 20 s late
        worker()

    assert evaluations == [T0]
    assert digests_sent == []  # 12:00 UTC is not 08:00 in UTC
    assert queued() == []  # every job succeeded (successful jobs are deleted: settings)


def test_evaluations_do_not_pile_up_behind_a_busy_worker(worker, evaluations, digests_sent):
    """Four ticks while no worker takes a job: one evaluation waits, the others are skipped
    (the queueing lock), and that one evaluates the latest tick that has begun."""
    deferrer = PeriodicDeferrer(registry=app.periodic_registry)
    for minute in range(4):
        defer_ticks(deferrer, at=T0 + timedelta(minutes=minute, seconds=0.5))
    assert [(name, args) for name, _, args in queued() if name == EVALUATE] == [
        (EVALUATE, {"timestamp": int(T0.timestamp())})
    ]

    with time_machine.travel(T0 + timedelta(minutes=3, seconds=10), tick=False):
        worker()

    assert evaluations == [T0 + timedelta(minutes=3)]
    assert queued() == []


def test_a_worker_sends_the_digests_at_08_00_local(worker, settings, evaluations, digests_sent):
    settings.ANALYTICS_TIME_ZONE = "Europe/Berlin"
    monday_8am = utc(2026, 3, 16, 7)  # 08:00 CET
    defer_ticks(PeriodicDeferrer(registry=app.periodic_registry), at=monday_8am + timedelta(seconds=0.5))

    with time_machine.travel(monday_8am + timedelta(seconds=3), tick=False):
        worker()

    assert sorted(digests_sent) == [("daily", monday_8am), ("weekly", monday_8am)]
    assert evaluations == [monday_8am]
    assert queued() == []


def test_a_failed_evaluation_is_kept_and_not_retried(worker, monkeypatch):
    """A failed pass stays in procrastinate's table (and the admin), failed after one attempt:
    the next minute's pass is the retry."""
    fake = types.ModuleType("conversations.alert_evaluation")

    def evaluate_alerts(*, now=None):
        raise RuntimeError("the database went away")

    fake.evaluate_alerts = evaluate_alerts
    monkeypatch.setitem(sys.modules, "conversations.alert_evaluation", fake)
    tasks.evaluate_alerts_task.defer(timestamp=int(T0.timestamp()))

    with time_machine.travel(T0 + timedelta(seconds=1), tick=False):
        worker()

    assert list(ProcrastinateJob.objects.values_list("task_name", "status", "attempts")) == [
        (EVALUATE, "failed", 1)
    ]


def test_a_worker_runs_the_real_evaluation_and_digests_end_to_end(worker, settings, mailoutbox):
    """No fake: a rule fires through the worker's pass (its email sent), and the daily digest
    goes out at 08:00 local to its subscriber, once, however many ticks of the hour run."""
    from decimal import Decimal

    from conversations import alerts
    from conversations.models import AlertEvent, DigestSubscription
    from tests.test_alert_evaluation import add

    settings.ANALYTICS_TIME_ZONE = "Europe/Berlin"
    eight_am = utc(2026, 3, 16, 7)  # Monday 08:00 CET
    alerts.alert_rule_create(
        values={
            "name": "AI resolution",
            "metric": "ai_resolution_rate",
            "condition": "below",
            "threshold": Decimal("60"),
            "window_minutes": 60,
            "emails": ["lead@example.com"],
        }
    )
    DigestSubscription.objects.create(email="team@example.com", frequency="daily")
    add(100, 10, end=eight_am)
    deferrer = PeriodicDeferrer(registry=app.periodic_registry)
    for minutes in (0, 15):  # two due ticks of the digest's hour, with their evaluations
        tick = eight_am + timedelta(minutes=minutes)
        defer_ticks(deferrer, at=tick + timedelta(seconds=0.5))
        with time_machine.travel(tick + timedelta(seconds=2), tick=False):
            worker()

    assert list(AlertEvent.objects.values_list("rule_name", "state", "at")) == [
        ("AI resolution", "firing", eight_am)
    ]
    assert sorted(message.to[0] for message in mailoutbox) == ["lead@example.com", "team@example.com"]
    [digest] = [message for message in mailoutbox if message.to == ["team@example.com"]]
    assert digest.subject == "Support Analytics — daily digest for Sun 15 Mar 2026"
    assert queued() == []


# --- Migrations ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_migrate_applies_procrastinates_migrations():
    """The test database was built by `migrate`: nothing of procrastinate's is left to apply,
    and its tables are there."""
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()

    assert executor.migration_plan(leaves) == []
    assert ("procrastinate", "0001_initial") in executor.loader.applied_migrations
    assert {
        "procrastinate_jobs",
        "procrastinate_periodic_defers",
        "procrastinate_events",
        "procrastinate_workers",
    } <= set(connection.introspection.table_names())
