"""`make bench`: load N synthetic conversations into a database of its own, serve the app with
gunicorn (2 workers) and measure it over HTTP from separate processes.

    .venv/bin/python benchmarks/bench.py --size 1000000 [--output docs/benchmarks.md]

The database `supportanalytics_bench_<size>` lives in the private cluster (or beside the
database of DATABASE_URL); it is loaded once and reused by later runs of the same size.
Results: a table of medians and p95s against the issues' targets, printed and written
to docs/benchmarks.md with the date and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "benchmarks"))  # when imported by path (tests)

import load_clients  # noqa: E402

WORKERS = 2
# Threads per worker (gunicorn's gthread worker): a request waiting on PostgreSQL (a commit's
# WAL flush, say) leaves its worker free for the next one. THREADS=1 runs sync workers.
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
READ_REPEATS = 30
WARMUP = 5
INGEST_SECONDS = 10.0
# Ingestion runs per measure: the median is reported, with every run beside it.
INGEST_RUNS = 3
# Ingestion targets on a quiet machine (the issues): arrays of 1,000 in conversations per
# second, single POSTs in requests per second.
INGEST_ARRAYS_TARGET = 20_000
INGEST_SINGLES_TARGET = 500

# (name, path, target in ms at 1M, target rule at 10M)
READS = [
    ("analytics 1 h", "/api/analytics?hours=1"),
    ("analytics 24 h", "/api/analytics?hours=24"),
    ("analytics 7 d", "/api/analytics?hours=168"),
    ("analytics 30 d", "/api/analytics?hours=720"),
    ("analytics 90 d", "/api/analytics?hours=2160"),
    # Both periods in one read, and every change's test (issue 17).
    ("analytics 24 h, compare=previous", "/api/analytics?hours=24&compare=previous"),
    ("analytics 30 d, compare=previous", "/api/analytics?hours=720&compare=previous"),
    # Two bot versions' summaries and topics, and every change's test (issue 17: ≤ 60 ms at 10M).
    (
        "compare 30 d, two bot versions",
        "/api/analytics/compare/?hours=720&a_bot_version=2.4.0&b_bot_version=2.5.0",
    ),
    ("timeseries daily 90 d", "/api/analytics/timeseries/?hours=2160&granularity=day"),
    # Local days that start half an hour off a UTC hour: made of quarter-hour rows.
    (
        "timeseries daily 90 d, Asia/Kolkata",
        "/api/analytics/timeseries/?hours=2160&granularity=day&tz=Asia/Kolkata",
    ),
    ("dashboard 30 d", "/dashboard/?range=30d"),
    ("dashboard 90 d", "/dashboard/?range=90d"),
]


def worst_edge_reads(now: datetime) -> list[tuple[str, str]]:
    """Windows in the past whose edges take the most raw conversations a read takes
    (conversations.analytics.planner): 7.5 minutes at each end (half a quarter hour); filtered by
    channel, which reads no quarter-hour rows, 30 minutes (half an hour). A window ending now
    (`hours=N`) takes 0 to 7.5 minutes at its start, depending on the minute it is asked at, so
    its time varies through the hour; these do not."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    reads = []
    for label, hours, past_the_hour, query in (
        ("1 h, 7.5-minute edges", 1, timedelta(minutes=7, seconds=30), ""),
        ("24 h, 7.5-minute edges", 24, timedelta(minutes=7, seconds=30), ""),
        ("24 h by channel, 30-minute edges", 24, timedelta(minutes=30), "&channel=web"),
    ):
        end = hour + past_the_hour
        start = end - timedelta(hours=hours)
        window = f"start={start:%Y-%m-%dT%H:%M:%SZ}&end={end:%Y-%m-%dT%H:%M:%SZ}"
        reads.append((f"analytics {label}", f"/api/analytics?{window}{query}"))
    return reads


def target_ms(name: str) -> int:
    if name.startswith("compare"):
        return 60
    return 30 if name.startswith("analytics") else 150


def database_urls(size: int, *, name: str | None = None) -> tuple[str, str]:
    """(admin URL to create databases with, the bench database's URL); `name` instead of
    the size's name for a database of another purpose (the client's tests and bench)."""
    from supportanalytics import localdb

    base = os.environ.get("DATABASE_URL") or localdb.ensure_running()
    parts = urlsplit(base)
    name = name or f"supportanalytics_bench_{size}"
    return (
        urlunsplit(parts._replace(path="/postgres")),
        urlunsplit(parts._replace(path=f"/{name}")),
    )


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("CUSTOMER_ID_HASH_KEY", "bench-" + uuid.uuid4().hex)
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ["DJANGO_SETTINGS_MODULE"] = "supportanalytics.settings"
    import django

    django.setup()


def create_database(admin_url: str, url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


TOPICS_SQL = """
INSERT INTO conversations_topic (name, created_at)
SELECT 'topic ' || lpad(i::text, 2, '0'), now() FROM generate_series(1, 20) AS i
ON CONFLICT DO NOTHING
"""
# The columns LOAD_SQL fills; the rows go to a staging table first, then to the conversations
# with their follow-up flags (FOLLOW_UPS_SQL): one sort, where setting the flags afterwards
# (rollups.refollow) rewrote half the table and every index entry of it.
LOADED_COLUMNS = (
    "session_id, timestamp, turns, resolved_by_ai, avg_response_ms, response_ms_bucket, response_count,"
    " csat, channel, bot_version, ai_cost, topic_ids, outcome, escalation_reason, customer_hash, received_at"
)
STAGING_SQL = f"""
DROP TABLE IF EXISTS bench_staging;
CREATE UNLOGGED TABLE bench_staging AS SELECT {LOADED_COLUMNS} FROM conversations_conversation WITH NO DATA
"""
FOLLOW_UPS_SQL = f"""
INSERT INTO conversations_conversation ({LOADED_COLUMNS}, followed_up)
SELECT {LOADED_COLUMNS},
       customer_hash IS NOT NULL AND count(*) OVER (
           PARTITION BY customer_hash ORDER BY timestamp
           RANGE BETWEEN interval '1 microsecond' FOLLOWING AND %(window)s FOLLOWING
       ) > 0
FROM bench_staging
ORDER BY timestamp  -- arrival order, as a bot posts them
"""
LOAD_SQL = """
INSERT INTO bench_staging
  (session_id, timestamp, turns, resolved_by_ai, avg_response_ms, response_ms_bucket, response_count,
   csat, channel, bot_version, ai_cost, topic_ids, outcome, escalation_reason, customer_hash, received_at)
SELECT 'bench-' || i,
       -- In arrival order, as a bot posts them (rows of an hour lie together on disk).
       now() - interval '90 days' * (1 - i::float8 / %(size)s) + random() * interval '1 minute',
       1 + (random() * 14)::int,
       resolved,
       ms,
       {bucket},
       1 + (random() * 6)::int,
       CASE WHEN random() < 0.3 THEN 1 + (random() * 4)::int END,
       (ARRAY['web', 'email', 'mobile', 'sms'])[1 + (random() * 3)::int],
       (ARRAY['2.3.0', '2.4.0', '2.5.0'])[1 + (random() * 2)::int],
       CASE WHEN random() < 0.5 THEN round((random() * 0.12)::numeric, 4) END,
       CASE WHEN second IS NULL OR first = second THEN ARRAY[first]
            ELSE ARRAY[least(first, second), greatest(first, second)] END,
       -- An outcome on every conversation: of the resolved, 40%% confirmed; of the others,
       -- a quarter abandoned; a reason on 90%% of the escalated ones, 8 reasons, skewed.
       CASE WHEN resolved THEN (CASE WHEN draw < 0.4 THEN 'confirmed' ELSE 'assumed' END)
            ELSE (CASE WHEN draw < 0.25 THEN 'abandoned' ELSE 'escalated' END) END,
       CASE WHEN NOT resolved AND draw < 0.9 THEN 'reason ' || (1 + (draw * draw * 8)::int %% 8) ELSE '' END,
       -- A customer id on 80%%: most come back within days (groups of about three
       -- conversations close together in time), the rest are spread over the whole 90 days.
       -- A plain SHA-256 stands in for the keyed hash: nothing here is looked up by a raw id.
       CASE WHEN customer_draw < 0.55
                THEN sha256(('near-' || (i + (random() * %(size)s * 0.02)::bigint) / 3)::bytea)
            WHEN customer_draw < 0.8
                THEN sha256(('far-' || (random() * %(size)s * 0.3)::bigint)::bytea)
       END,
       now()
FROM (
  -- Every conversation has one topic, a third of them a second one; the topics are skewed
  -- (squares modulo 20 repeat some values more than others).
  SELECT i, round((150 + random() * random() * 6000)::numeric, 3)::float8 AS ms,
         topic[1 + (i %% 97) * (i %% 97) %% 20] AS first,
         CASE WHEN i %% 3 = 0 THEN topic[1 + (i * 7 + 3) %% 20] END AS second,
         random() < 0.65 AS resolved, random() AS draw, random() AS customer_draw
  FROM generate_series(%(first)s, %(last)s) AS i,
       (SELECT array_agg(id ORDER BY name) AS topic FROM conversations_topic
        WHERE name IN (SELECT 'topic ' || lpad(n::text, 2, '0') FROM generate_series(1, 20) AS n)) AS topics
) AS generated
"""


def load(size: int) -> dict:
    """Fill the bench database with `size` conversations unless it already holds them."""
    from django.core.management import call_command
    from django.db import connection

    from conversations import histogram, rollups
    from conversations.analytics import figures
    from conversations.models import Conversation

    call_command("migrate", verbosity=0)
    # Its own rows. A run removes what it ingests (remove_unloaded) and imports elsewhere.
    # Reused unless loaded by a version of this bench without outcomes and customers.
    stored = Conversation.objects.filter(session_id__startswith="bench-").count()
    if stored == size and Conversation.objects.filter(customer_hash__isnull=False).exists():
        return {"loaded": 0, "seconds": 0.0}
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE conversations_conversation CASCADE")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute(TOPICS_SQL)
        cursor.execute(STAGING_SQL)
        chunk = 1_000_000
        for first in range(1, size + 1, chunk):
            last = min(size, first + chunk - 1)
            cursor.execute(
                LOAD_SQL.replace("{bucket}", histogram.SQL_BUCKET.format(x="ms")),
                {"first": first, "last": last, "size": size},
            )
            print(f"  generated {last:,} conversations ({time.monotonic() - started:.0f} s)", flush=True)
        cursor.execute("SET work_mem = '256MB'")  # the follow-ups' sort, in memory
        cursor.execute(FOLLOW_UPS_SQL, {"window": figures.repeat_contact_window()})
        cursor.execute("DROP TABLE bench_staging")
        print(f"  stored them with their follow-ups ({time.monotonic() - started:.0f} s)", flush=True)
    from django.db import transaction

    with transaction.atomic():
        rollups.rebuild()  # (its rollups.refollow finds every flag right)
    print(f"  follow-ups and rollups built ({time.monotonic() - started:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return {"loaded": size, "seconds": time.monotonic() - started}


def staff_session() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True})
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def api_key() -> str:
    from conversations.models import ApiKey

    return ApiKey.objects.create_key(name="bench", scope=ApiKey.Scope.ALL)[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(url: str) -> dict[str, str]:
    """The environment the app is measured in: production settings on this database."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        # Plain HTTP on loopback: no redirect to HTTPS (production settings otherwise).
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        # One key posts far more than the production rate limits allow: lift them so the bench
        # measures the app (every request is still counted, in the key lookup's statement).
        "API_THROTTLE_INGEST_RATE": os.environ.get("API_THROTTLE_INGEST_RATE", "1000000/second"),
        "API_THROTTLE_READ_RATE": os.environ.get("API_THROTTLE_READ_RATE", "1000000/second"),
    }


def start_server(
    url: str, port: int, base_dir: Path = BASE_DIR, *, environment: dict[str, str] | None = None
) -> subprocess.Popen:
    """gunicorn serving the checkout `base_dir` (its own .venv) on `url`, once it answers;
    `environment`: variables to set on top of `server_environment`'s."""
    env = {**server_environment(url), **(environment or {})}
    # Production settings serve hashed static files from a manifest: collect them first, as
    # a deployment does (README), or the dashboard fails on a fresh checkout.
    python = str(base_dir / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=base_dir, env=env, check=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [
            str(base_dir / ".venv" / "bin" / "gunicorn"),
            "supportanalytics.wsgi",
            "--workers",
            str(WORKERS),
            "--threads",
            str(THREADS),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            # Not ~/.gunicorn/gunicorn.ctl, which another gunicorn (a test's) may hold.
            "--no-control-socket",
        ],
        cwd=base_dir,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/", timeout=2)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def stop_servers(servers: list[subprocess.Popen], connections=()) -> None:
    """Close the clients' kept-alive connections, then stop each gunicorn and wait for it."""
    for connection in connections:
        connection.close()
    for server in servers:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def worker_pids(server: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- Load clients (separate processes): benchmarks/load_clients.py ---------------------------

# Session ids of the conversations the ingestion runs post (timestamped now).
INGEST_PREFIX = "ingested-"


def ingest_rate(port: int, key: str, *, clients: int, batch: int, path: str = "/api/conversations/") -> float:
    """Conversations stored per second by `clients` processes posting batches of `batch` (a
    single object when 1) to `path` for INGEST_SECONDS."""
    return load_clients.ingest_rate(
        port, key, clients=clients, batch=batch, path=path, seconds=INGEST_SECONDS, prefix=INGEST_PREFIX
    )


def remove_unloaded() -> int:
    """Delete every conversation that `load` did not put there (what the ingestion runs
    posted, and what older versions of this bench left), rollups included, so that the next
    run reads the same database: left in place, 100,000+ conversations in the current hour
    would sit in the raw edge of the next run's short windows, and the table would grow run
    by run."""
    from conversations import rollups, services
    from conversations.models import Conversation

    others = Conversation.objects.exclude(session_id__startswith="bench-").values_list(
        "session_id", flat=True
    )
    removed = 0
    while ids := list(others[:5_000]):
        removed += services.conversations_delete(session_ids=ids)
    # And the rollup deltas of the last quarter second of single POSTs, which the server
    # folds only after its next write: the next run's reads start without any.
    rollups.fold()
    return removed


def _runs(rates: list[float]) -> str:
    return "runs " + ", ".join(f"{rate:,.0f}" for rate in rates)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def settle(url: str) -> None:
    """Vacuum and checkpoint before a measurement, so that it does not pay for the previous
    phase's dead rows (autovacuum starting mid-run) or dirty buffers (a checkpoint)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
        # An external server's user may not be allowed to checkpoint: measure without.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            connection.execute("CHECKPOINT")


def time_import(lines: int, admin_url: str, url: str, base_dir: Path = BASE_DIR) -> float:
    """Seconds for `manage.py import_jsonl` of a tutorial-format file of `lines` lines into an
    empty database (a tutorial user's first import): the file's 90 days of conversations, in
    the order the tracker appended them. `base_dir`: the checkout whose code imports."""
    path = Path(tempfile.mkdtemp()) / "analytics.jsonl"
    end = datetime.now(UTC).replace(tzinfo=None)
    with path.open("w") as file:
        for i in range(lines):
            entry = {
                "timestamp": (end - timedelta(days=90) * (1 - i / lines)).isoformat(),
                "session_id": f"import-{i}",
                "turns": 1 + i % 12,
                "resolved_by_ai": i % 3 != 0,
                "topics": [f"topic {1 + i % 20:02d}"]
                + ([f"topic {1 + i * 7 % 20:02d}"] if i % 3 == 0 else []),
                "avg_response_ms": 300.0 + i % 1700,
                "csat": None if i % 3 else 1 + i % 5,
                **load_clients.honest_fields(i),
            }
            file.write(json.dumps(entry) + "\n")
    name = urlsplit(url).path.lstrip("/")
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    environment = {**os.environ, "DATABASE_URL": url}
    python = str(base_dir / ".venv" / "bin" / "python")
    try:
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=base_dir, env=environment, check=True)
        started = time.monotonic()
        subprocess.run(
            [python, "manage.py", "import_jsonl", str(path), "--no-progress"],
            cwd=base_dir,
            env=environment,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.monotonic() - started
    finally:
        path.unlink()
        path.parent.rmdir()
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB RAM, Python {platform.python_version()}"


ALERT_RULES = 100
ALERT_PASSES = 9
ALERT_TARGET_MS = 2000  # one pass over 100 rules at 10M (issue 18)


def alert_rules_mix(count: int) -> list[dict]:
    """A realistic mix of rules (issue 18's bench): every metric, windows from 15 minutes to a
    week, a third unfiltered and the rest by channel, bot version, topic or escalation reason,
    and 40% drop/rise rules (each reads its window and 4 baseline weeks)."""
    from decimal import Decimal

    from conversations.alert_rules import ALERT_METRICS, CHANGE_METRICS

    # Lengths and filters of coprime counts (7 and 11), so that few rules share a read.
    windows = [15, 30, 60, 120, 240, 1440, 10080]
    filters = [
        {},
        {},
        {},
        {"channel": "web"},
        {"channel": "mobile"},
        {"bot_version": "2.5.0"},
        {"bot_version": "2.4.0"},
        {"topic": "topic 03"},
        {"topic": "topic 11"},
        {"channel": "email", "bot_version": "2.4.0"},
        {"channel": "web", "topic": "topic 05"},
    ]
    thresholds = {"percent": "55", "score": "3.1", "count": "10", "milliseconds": "3000"}
    metrics = list(ALERT_METRICS)
    rules = []
    for index in range(count):
        metric = metrics[index % len(metrics)]
        values = {
            "name": f"bench alert {index:03d}",
            "metric": metric,
            "window_minutes": windows[index % len(windows)],
            "min_sample_size": 30,
            **filters[index % len(filters)],
        }
        if index % 5 in (1, 3) and metric in CHANGE_METRICS:  # 40%, where a test exists
            unit = ALERT_METRICS[metric].unit.value[0]
            change = {"score": "0.3", "count": "20"}.get(unit, "5")  # CSAT points, percent, rate points
            values.update(condition="drop" if index % 2 else "rise", min_change=Decimal(change))
        else:
            unit = ALERT_METRICS[metric].unit.value[0]
            values.update(condition="below" if index % 2 else "above", threshold=Decimal(thresholds[unit]))
        if metric == "total_conversations" and index % 3 == 0:
            values["escalation_reason"] = "reason 2"
        rules.append(values)
    return rules


def time_alert_pass() -> tuple[list[float], int, int]:
    """Median of ALERT_PASSES evaluation passes over ALERT_RULES rules, as of the newest
    conversation (the bench's data ends when it was loaded). The rules have no recipients:
    sending is the receivers' time, not the database's. Removed afterwards."""
    from django.db.models import Max

    from conversations import alerts
    from conversations.alert_evaluation import evaluate_alerts
    from conversations.models import AlertEvent, AlertRule, Conversation

    AlertRule.objects.filter(name__startswith="bench alert").delete()
    mix = alert_rules_mix(ALERT_RULES)
    for values in mix:
        alerts.alert_rule_create(values=values)
    newest = Conversation.objects.aggregate(newest=Max("timestamp"))["newest"]
    changes = sum(values["condition"] in ("drop", "rise") for values in mix)
    timings, events = [], 0
    try:
        for index in range(ALERT_PASSES):
            started = time.perf_counter()
            result = evaluate_alerts(now=newest + timedelta(minutes=index))
            timings.append((time.perf_counter() - started) * 1000)
            events += len(result.events)
    finally:
        AlertEvent.objects.filter(rule_name__startswith="bench alert").delete()
        AlertRule.objects.filter(name__startswith="bench alert").delete()
    return timings, changes, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--output", type=Path, default=BASE_DIR / "docs" / "benchmarks.md")
    parser.add_argument("--import-lines", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="few repeats, short ingestion runs (smoke test)")
    parser.add_argument("--load-only", action="store_true", help="load the database and stop")
    args = parser.parse_args()
    global READ_REPEATS, INGEST_SECONDS, INGEST_RUNS
    if args.quick:
        READ_REPEATS, INGEST_SECONDS, INGEST_RUNS = 5, 2.0, 1

    admin_url, url = database_urls(args.size)
    create_database(admin_url, url)
    setup_django(url)
    print(
        f"Database {urlsplit(url).path.lstrip('/')}: loading {args.size:,} conversations if needed",
        flush=True,
    )
    loaded = load(args.size)
    if args.load_only:
        print(f"Loaded in {loaded['seconds']:.0f} s")
        return 0
    remove_unloaded()  # left by an interrupted run
    settle(url)
    timings, changes, events = time_alert_pass()
    alert_median = statistics.median(timings)
    alert_row = (f"alerts: one pass over {ALERT_RULES} rules ({changes} drop/rise)", f"{alert_median:.0f} ms",
                 f"{max(timings):.0f} ms (slowest of {ALERT_PASSES})", f"≤ {ALERT_TARGET_MS:,} ms",
                 "yes" if alert_median <= ALERT_TARGET_MS else "NO")  # fmt: skip
    print(f"  alerts: one pass over {ALERT_RULES} rules: median {alert_median:.0f} ms "
          f"({', '.join(f'{t:.0f}' for t in timings)}; {events} notifications)", flush=True)  # fmt: skip
    session, key = staff_session(), api_key()
    from django.db import connections

    connections.close_all()

    port = free_port()
    server = start_server(url, port)
    rows, results = [alert_row], {}
    try:
        for name, path in READS + worst_edge_reads(datetime.now(UTC)):
            headers = (
                {"Cookie": f"sessionid={session}"}
                if path.startswith("/dashboard")
                else {"Authorization": f"Bearer {key}"}
            )
            timings = load_clients.time_reads(port, path, headers, READ_REPEATS, warmup=WARMUP)
            median, p95 = statistics.median(timings), percentile(timings, 0.95)
            results[name] = median
            rows.append((name, f"{median:.1f} ms", f"{p95:.1f} ms", f"≤ {target_ms(name)} ms",
                         "yes" if median <= target_ms(name) else "NO"))  # fmt: skip
            print(f"  {name}: median {median:.1f} ms, p95 {p95:.1f} ms", flush=True)
        memory = [rss_mb(pid) for pid in worker_pids(server)]
        runs = [ingest_rate(port, key, clients=2, batch=1000) for _ in range(INGEST_RUNS)]
        batches = statistics.median(runs)
        rows.append(("ingest arrays of 1,000 (2 clients)", f"{batches:,.0f} conv/s", _runs(runs),
                     f"≥ {INGEST_ARRAYS_TARGET:,} conv/s",
                     "yes" if batches >= INGEST_ARRAYS_TARGET else "NO"))  # fmt: skip
        print(f"  ingest arrays: {batches:,.0f} conversations/s ({_runs(runs)})", flush=True)
        settle(url)  # not autovacuum of the arrays' rows during the next runs
        runs = [ingest_rate(port, key, clients=8, batch=1) for _ in range(INGEST_RUNS)]
        singles = statistics.median(runs)
        rows.append(("ingest single POSTs (8 clients)", f"{singles:,.0f} req/s", _runs(runs),
                     f"≥ {INGEST_SINGLES_TARGET:,} req/s",
                     "yes" if singles >= INGEST_SINGLES_TARGET else "NO"))  # fmt: skip
        print(f"  ingest singles: {singles:,.0f} requests/s ({_runs(runs)})", flush=True)
        rows.append(
            ("worker memory after the reads", " / ".join(f"{m:.0f} MB" for m in memory), "", "flat", "")
        )
    finally:
        stop_servers([server])
        print(f"  removed the {remove_unloaded():,} conversations the ingestion runs posted", flush=True)
        settle(url)
    if args.import_lines:
        import_url = urlunsplit(urlsplit(url)._replace(path="/supportanalytics_bench_import"))
        seconds = time_import(args.import_lines, admin_url, import_url)
        rows.append((f"import_jsonl {args.import_lines:,} lines (empty database)", f"{seconds:.1f} s", "",
                     "< 60 s (1M)",
                     "yes" if seconds < 60 * args.import_lines / 1_000_000 else "NO"))  # fmt: skip
        print(f"  import_jsonl: {seconds:.1f} s", flush=True)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = ["| measure | median | p95 (reads), runs (ingestion) | target | met |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    section = (
        f"## {args.size:,} conversations — {stamp}\n\n"
        f"Machine: {machine()}. Server: gunicorn, {WORKERS} workers"
        + (f" × {THREADS} threads (gthread). " if THREADS > 1 else " (sync). ")
        + f"Reads: {WARMUP} warm-up + {READ_REPEATS} timed requests each, one client. "
        f"Ingestion: median of {INGEST_RUNS} runs of {INGEST_SECONDS:.0f} s, clients in separate processes.\n"
        + (f"Data load: {loaded['seconds']:.0f} s.\n" if loaded["loaded"] else "")
        + "\n"
        + "\n".join(table)
        + "\n"
    )
    print("\n" + section)
    if not args.quick:
        add_to_results(args.output, section)
    return 0


def add_to_results(output: Path, section: str) -> None:
    """Put a section at the top of the results file (docs/benchmarks.md), newest first."""
    header = "# Benchmarks\n\nWritten by `make bench` (benchmarks/bench.py); newest first.\n\n"
    previous = output.read_text().removeprefix(header) if output.exists() else ""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(header + section + "\n" + previous)


if __name__ == "__main__":
    sys.exit(main())
