"""/healthz, and 503 + Retry-After (never a 500) while PostgreSQL is down, then recovery.

Two levels:

* In this process, against the test database, with the connection pointed elsewhere for a
  moment: at a folder with no PostgreSQL socket (refused at once) and at a TCP port that
  accepts but never answers (a host that is unreachable; bounded by connect_timeout).
* For real: a throwaway PostgreSQL cluster (initdb into a temp folder), a copy of the test
  database in it, the app served by gunicorn in production mode (a separate process with its
  persistent connections), traffic flowing while the cluster is killed with
  `pg_ctl stop -m immediate`, then started again; the same gunicorn worker serves again.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.test import Client, RequestFactory
from django.utils import timezone

from conversations import services
from conversations.errors import DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, api_exception_handler
from conversations.models import ApiKey
from conversations.services import ConversationIn
from supportanalytics import localdb
from supportanalytics.outage import server_error

HEALTHY = {"status": "ok", "database": "ok"}
UNHEALTHY = {"status": "error", "database": "unavailable"}
API_DOWN = {"detail": DATABASE_UNAVAILABLE}
RETRY_AFTER = str(RETRY_AFTER_SECONDS)
# A load balancer probes the instance by its address, over plain HTTP.
PROBE_HOST = "10.0.3.7:8000"


def conversation_body(session_id: str) -> str:
    return json.dumps({"session_id": session_id, "turns": 3, "resolved_by_ai": True, "topics": ["billing"]})


# --- In this process ----------------------------------------------------------------------


@contextlib.contextmanager
def database_at(**changes):
    """Point the default connection elsewhere (HOST, PORT, OPTIONS...), then back."""
    connection = connections["default"]
    saved = copy.deepcopy(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(changes)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db
def test_healthz_answers_without_host_check_redirect_session_or_auth(settings, django_assert_max_num_queries):
    # Production's HTTPS settings: everything else is redirected or refused, /healthz answers.
    settings.ALLOWED_HOSTS = ["analytics.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    client = Client()

    with django_assert_max_num_queries(4):  # savepoint, statement timeout, SELECT 1, release
        response = client.get("/healthz", HTTP_HOST=PROBE_HOST)

    assert (response.status_code, response.json()) == (200, HEALTHY)
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies
    assert client.head("/healthz/", HTTP_HOST=PROBE_HOST).status_code == 200
    assert client.post("/healthz", HTTP_HOST=PROBE_HOST).status_code == 405
    # The rest of the app keeps its checks: plain HTTP is redirected, an unknown host refused.
    redirect = client.get("/api/analytics", HTTP_HOST="analytics.example.com")
    assert (redirect.status_code, redirect["Location"]) == (
        301,
        "https://analytics.example.com/api/analytics",
    )
    assert client.get("/api/analytics", HTTP_HOST=PROBE_HOST).status_code == 400


def test_no_database_socket_gives_503s_and_the_next_request_reconnects(django_db_blocker, tmp_path):
    # A folder without PostgreSQL's socket: every connection attempt is refused at once.
    # Any session cookie makes the dashboard read the session from the database first.
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "x" * 32
    bearer = {"HTTP_AUTHORIZATION": "Bearer abcd1234.efgh5678"}
    with django_db_blocker.unblock():
        with database_at(HOST=str(tmp_path)):
            health = client.get("/healthz")
            api = [
                client.get("/api/analytics?hours=24", **bearer),
                client.get("/api/analytics/topics/", **bearer),
                client.get("/api/analytics/timeseries/", **bearer),
                client.post("/api/conversations/", conversation_body("down-1"), "application/json", **bearer),
                client.post("/api/conversations/down-1/csat/", '{"csat": 4}', "application/json", **bearer),
            ]
            pages = [client.get(path) for path in ("/dashboard/", "/dashboard/topics.csv", "/admin/")]
        # Settings back: the same process connects again, nothing to restart.
        health_after = client.get("/healthz")

    assert (health.status_code, health.json()) == (503, UNHEALTHY)
    for response in api:
        assert response.status_code == 503, response.request
        assert response.json() == API_DOWN
        assert response["Retry-After"] == RETRY_AFTER
    for response in pages:
        assert response.status_code == 503, response.request
        assert response["Content-Type"] == "text/html; charset=utf-8"
        assert response["Retry-After"] == RETRY_AFTER
        assert b"Temporarily unavailable" in response.content
    # Answered by the API's exception handler and the middleware, not by the handler500
    # backstop (which would log each request as an uncaught error, with its traceback).
    assert all(response.exc_info is None for response in [health, *api, *pages])
    assert (health_after.status_code, health_after.json()) == (200, HEALTHY)


def test_the_api_exception_handler_maps_database_errors_to_503():
    for error in (OperationalError("connection refused"), InterfaceError("connection already closed")):
        response = api_exception_handler(error, {})
        assert (response.status_code, response.data) == (503, API_DOWN)
        assert response["Retry-After"] == RETRY_AFTER


def test_healthz_gives_up_after_the_connect_timeout_when_the_database_host_never_answers(django_db_blocker):
    # A port that accepts connections (the kernel completes the handshake) but never says a
    # word, like a host behind a dead proxy: without connect_timeout this waits forever.
    silent = socket.create_server(("127.0.0.1", 0))
    result = {}

    def probe():
        started = time.monotonic()
        result["response"] = Client().get("/healthz")
        result["seconds"] = time.monotonic() - started

    # settings.DATABASES has 5 s (tests/test_deploy_settings.py); 2 s, libpq's least, is quicker.
    options = {**connections["default"].settings_dict["OPTIONS"], "connect_timeout": 2}
    try:
        with (
            django_db_blocker.unblock(),
            database_at(HOST="127.0.0.1", PORT=silent.getsockname()[1], OPTIONS=options),
        ):
            thread = threading.Thread(target=probe)
            thread.start()
            thread.join(timeout=15)
            hung = thread.is_alive()
            silent.close()  # resets the pending connection, so a hung probe ends too
            thread.join(timeout=15)
    finally:
        silent.close()

    assert not hung, "/healthz waited more than 15 s for a database that never answers"
    assert (result["response"].status_code, result["response"].json()) == (503, UNHEALTHY)
    assert 1.5 < result["seconds"] < 10


class FailingSessionSave:
    """A middleware whose response step meets the database error (as a session save would)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        self.get_response(request)
        raise OperationalError("server closed the connection unexpectedly")


@pytest.mark.django_db
def test_a_database_error_outside_any_view_is_a_503_too(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_health_and_outage.FailingSessionSave"]
    client = Client(raise_request_exception=False)

    page = client.get("/accounts/login/")
    api = client.get("/api/analytics")

    assert page.exc_info is not None  # uncaught: this is the handler500 backstop at work
    assert (page.status_code, page["Retry-After"]) == (503, RETRY_AFTER)
    assert b"Temporarily unavailable" in page.content
    assert (api.status_code, api.json(), api["Retry-After"]) == (503, API_DOWN, RETRY_AFTER)


def test_any_other_uncaught_error_stays_a_500():
    request = RequestFactory().get("/dashboard/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500


# --- For real: a PostgreSQL cluster killed under traffic -----------------------------------------


class ThrowawayCluster:
    """A PostgreSQL cluster of its own in a temp folder, on a unix socket inside it.

    initdb and postgres refuse to run as root: then, as localdb does, they run as the
    `postgres` user, and the folder goes where that user can reach it (its home; a pytest
    temp folder under a 0700 /tmp/pytest-of-root is out of its reach).
    """

    def __init__(self):
        self.bindir = localdb.find_bindir()
        if self.bindir is None:
            pytest.fail("PostgreSQL binaries not found (the private cluster needs them too)")
        if os.geteuid() == 0:
            self.folder = Path(tempfile.mkdtemp(prefix="sa-outage-", dir=localdb.fallback_parent()))
            shutil.chown(self.folder, localdb.SERVICE_USER, localdb.SERVICE_USER)
        else:
            self.folder = Path(tempfile.mkdtemp(prefix="sa-outage-"))
        self.folder.chmod(0o700)
        self.data = self.folder / "data"
        self.url = f"postgresql://{localdb.DB_USER}@{quote(str(self.folder), safe='')}/{localdb.DB_NAME}"

    def pg(self, binary: str, *args: str) -> None:
        # localdb's runner: as the postgres user when we are root.
        result = localdb._run_pg(self.bindir / binary, *args)
        assert result.returncode == 0, f"{binary} {' '.join(args)}: {result.stderr or result.stdout}"

    def create(self) -> None:
        self.pg("initdb", "--pgdata", str(self.data), "--username", localdb.DB_USER, "--auth", "trust",
                "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync")  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = ''\nunix_socket_directories = '{self.folder}'\n"
                "fsync = off\nshared_buffers = 16MB\nmax_connections = 20\n"
            )
        self.start()
        with psycopg.connect(
            host=str(self.folder), user=localdb.DB_USER, dbname="postgres", autocommit=True
        ) as db:
            db.execute(f'CREATE DATABASE "{localdb.DB_NAME}"')

    def start(self) -> None:
        self.pg("pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.folder / "server.log"),
                "--wait", "--timeout", "60")  # fmt: skip

    def kill(self) -> None:
        """What a crash or a pulled plug looks like to the app: every backend gone at once."""
        self.pg("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate", "--wait")

    def copy_database(self, settings_dict: dict) -> None:
        """The test database (schema, and the rows committed by the test) into this cluster."""
        source = [
            str(self.bindir / "pg_dump"), "--no-owner", "--no-privileges",
            "--host", settings_dict["HOST"] or "localhost", "--username", settings_dict["USER"],
            "--dbname", settings_dict["NAME"],
        ]  # fmt: skip
        if settings_dict.get("PORT"):
            source += ["--port", str(settings_dict["PORT"])]
        env = {**os.environ, "PGPASSWORD": settings_dict.get("PASSWORD") or ""}
        dump = subprocess.run(source, capture_output=True, env=env, check=False)
        assert dump.returncode == 0, dump.stderr.decode()
        restore = subprocess.run(
            [str(self.bindir / "psql"), "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
             "--host", str(self.folder), "--username", localdb.DB_USER, "--dbname", localdb.DB_NAME],
            input=dump.stdout, capture_output=True, check=False,
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr.decode()

    def session_ids(self) -> set[str]:
        with psycopg.connect(self.url) as db:
            return {row[0] for row in db.execute("SELECT session_id FROM conversations_conversation")}

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):
            self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Answer:
    path: str
    status: int  # 0: no HTTP answer at all (connection refused or reset, timeout)
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


class App:
    """The app as production runs it: gunicorn, DATABASE_URL, no DEBUG, HTTPS settings on,
    behind a TLS-terminating proxy (X-Forwarded-Proto trusted). Reached over a unix socket,
    so no TCP port can collide."""

    HOST = "analytics.example.test"

    def __init__(self, *, database_url: str, folder: Path, workers: int = 1, threads: int = 4):
        self.socket = folder / "app.sock"
        self.log = folder / "gunicorn.log"
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DJANGO_", "DATABASE_", "PG"))
        }
        env |= {
            "DATABASE_URL": database_url,
            # The test database's sessions and their auth hashes are signed with this key.
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "CUSTOMER_ID_HASH_KEY": settings.CUSTOMER_ID_HASH_KEY,
            "DJANGO_ALLOWED_HOSTS": self.HOST,
            "DJANGO_TRUST_X_FORWARDED_PROTO": "1",
            "DATABASE_CONN_MAX_AGE": "60",
            "LOG_LEVEL": "WARNING",
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "supportanalytics.wsgi", "--bind", f"unix:{self.socket}",
                 "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "2",
                 # Not ~/.gunicorn/gunicorn.ctl, which another gunicorn (make bench) may hold.
                 "--no-control-socket"],
                cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def request(
        self, method: str, path: str, *, body: str | None = None, headers=None, via_proxy=True
    ) -> Answer:
        headers = {"Host": self.HOST, **(headers or {})}
        if via_proxy:
            headers["X-Forwarded-Proto"] = "https"
        if body is not None:
            headers["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection("localhost", timeout=20)
        try:
            connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.sock.settimeout(20)
            connection.sock.connect(str(self.socket))
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(path, response.status, dict(response.headers), response.read(), time.monotonic())
        except OSError:
            return Answer(path, 0, {}, b"", time.monotonic())
        finally:
            connection.close()

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{self.log.read_text()}")
            if self.request("GET", "/healthz", via_proxy=False).status == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer /healthz within 60 s:\n{self.log.read_text()}")

    def workers(self) -> set[int]:
        """Process ids of gunicorn's workers (children of the master), from /proc."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                if int(stat.read_text().rpartition(")")[2].split()[1]) == self.process.pid:
                    children.add(int(stat.parent.name))
        return children

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Traffic(threading.Thread):
    """Keeps asking: /healthz, a summary, and a new conversation, round after round."""

    def __init__(self, app: App, *, key: str):
        super().__init__(daemon=True)
        self.app, self.key = app, key
        self.answers: list[Answer] = []
        self.posted: dict[str, Answer] = {}
        self.done = threading.Event()

    def run(self) -> None:
        bearer = {"Authorization": f"Bearer {self.key}"}
        number = 0
        while not self.done.is_set():
            number += 1
            session_id = f"traffic-{number}"
            post = self.app.request(
                "POST", "/api/conversations/", body=conversation_body(session_id), headers=bearer
            )
            self.posted[session_id] = post
            self.answers += [
                self.app.request("GET", "/healthz", via_proxy=False),
                self.app.request("GET", "/api/analytics?hours=24", headers=bearer),
                post,
            ]
            time.sleep(0.01)

    def successes_after(self, moment: float) -> int:
        return sum(1 for answer in list(self.answers) if answer.at > moment and answer.status in (200, 201))


def wait_for(condition, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {seconds} s for {what}")
        time.sleep(0.02)


@pytest.fixture
def cluster():
    cluster = ThrowawayCluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def outage_data(transactional_db, django_user_model):
    """Committed (copied into the throwaway cluster): a key, a staff session, one conversation."""
    _, key = ApiKey.objects.create_key(name="outage-test", scope=ApiKey.Scope.ALL)
    staff = django_user_model.objects.create_user(username="lead", password="pw-lead-123", is_staff=True)
    client = Client()
    client.force_login(staff)
    services.conversations_ingest(
        items=[
            ConversationIn(
                session_id="before-the-test", timestamp=timezone.now() - timedelta(hours=1),
                turns=2, resolved_by_ai=True, topics=("billing",),
            )
        ]
    )  # fmt: skip
    return {"key": key, "session_cookie": f"sessionid={client.cookies['sessionid'].value}"}


def test_postgres_killed_under_traffic_gives_503s_then_the_same_worker_serves_again(
    cluster, outage_data, tmp_path
):
    key, cookie = outage_data["key"], outage_data["session_cookie"]
    bearer = {"Authorization": f"Bearer {key}"}
    staff = {"Cookie": cookie}

    def post(session_id: str) -> Answer:
        return app.request("POST", "/api/conversations/", body=conversation_body(session_id), headers=bearer)

    # gunicorn boots (Django's imports: a second or so) while initdb runs.
    app = App(database_url=cluster.url, folder=tmp_path)
    traffic = Traffic(app, key=key)
    try:
        cluster.create()
        cluster.copy_database(connections["default"].settings_dict)
        app.wait_until_serving()
        workers = app.workers()
        assert len(workers) == 1, workers

        # Up: a probe over plain HTTP by IP, the API and the dashboard's export through the proxy.
        probe = app.request("GET", "/healthz", headers={"Host": PROBE_HOST}, via_proxy=False)
        assert (probe.status, probe.json()) == (200, HEALTHY)
        plain = app.request("GET", "/api/analytics", headers=bearer, via_proxy=False)
        assert (plain.status, plain.headers["Location"]) == (301, f"https://{App.HOST}/api/analytics")
        summary = app.request("GET", "/api/analytics?hours=24", headers=bearer)
        assert (summary.status, summary.json()["total_conversations"]) == (200, 1)
        assert "max-age=31536000" in summary.headers["Strict-Transport-Security"]
        created = post("before-the-outage")
        assert created.status == 201, created.body
        assert app.request("GET", "/dashboard/topics.csv", headers=staff).status == 200

        traffic.start()
        wait_for(lambda: traffic.successes_after(0) >= 6, seconds=20, what="traffic to flow")
        killed_at = time.monotonic()
        cluster.kill()

        # Down: every request that needs the database answers 503 with Retry-After, and
        # quickly (the socket is gone: refused at once). Twice each: gunicorn's threads first
        # meet their dead pooled connections, then fail to open new ones.
        down = []
        for _ in range(2):
            down += [
                app.request("GET", "/healthz", headers={"Host": PROBE_HOST}, via_proxy=False),
                app.request("GET", "/api/analytics?hours=24", headers=bearer),
                app.request("GET", "/api/analytics/topics/", headers=bearer),
                app.request("GET", "/api/analytics/timeseries/", headers=bearer),
                post("in-outage"),
                app.request("GET", "/dashboard/", headers=staff),
                app.request("GET", "/dashboard/topics.csv", headers=staff),
            ]
        for answer in down:
            assert answer.status == 503, (answer.path, answer.status, answer.body[:500])
            assert answer.headers.get("Retry-After") == RETRY_AFTER or answer.path == "/healthz", answer
            if answer.path == "/healthz":
                assert answer.json() == UNHEALTHY
            elif answer.path.startswith("/api/"):
                assert (answer.headers["Content-Type"], answer.json()) == ("application/json", API_DOWN)
            else:
                assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
                assert b"Temporarily unavailable" in answer.body
        assert down[-1].at - killed_at < 10

        # Back: no restart of the app; the first requests reconnect.
        cluster.start()
        restarted_at = time.monotonic()
        probe = app.request("GET", "/healthz", headers={"Host": PROBE_HOST}, via_proxy=False)
        assert (probe.status, probe.json()) == (200, HEALTHY)
        created = post("after-the-outage")
        assert created.status == 201, created.body
        for path in ("/api/analytics?hours=24", "/api/analytics/topics/", "/api/analytics/timeseries/"):
            assert app.request("GET", path, headers=bearer).status == 200, path
        assert app.request("GET", "/dashboard/topics.csv", headers=staff).status == 200
        wait_for(lambda: traffic.successes_after(restarted_at) >= 6, seconds=20, what="traffic to recover")
        traffic.done.set()
        traffic.join(timeout=30)
        # The figures read after the restart count exactly what the database holds.
        final = app.request("GET", "/api/analytics?hours=24", headers=bearer)
        assert final.json()["total_conversations"] == len(cluster.session_ids())
    finally:
        traffic.done.set()
        if traffic.is_alive():
            traffic.join(timeout=30)
        workers_after = app.workers()
        app.stop()
    log = app.log.read_text()

    assert workers_after == workers, f"the gunicorn worker was replaced:\n{log}"
    # Under traffic: only successes and 503s, never a 500 or a dropped connection.
    statuses = {answer.status for answer in traffic.answers}
    assert statuses <= {200, 201, 503}, (statuses, log)
    outage = [answer for answer in traffic.answers if answer.status == 503]
    assert outage and all(a.at > killed_at for a in outage), "503s only after the kill"
    for answer in outage:
        if answer.path == "/healthz":
            assert answer.json() == UNHEALTHY
        else:
            assert answer.json() == API_DOWN and answer.headers["Retry-After"] == RETRY_AFTER
    assert traffic.successes_after(restarted_at) >= 6
    # Every conversation acknowledged with 201 survived the crash; none answered 503 was
    # stored (but for one whose commit may have landed just as the server died: posting
    # again is safe, which is what Retry-After asks for).
    stored = cluster.session_ids()
    acknowledged = {session_id for session_id, answer in traffic.posted.items() if answer.status == 201}
    assert acknowledged <= stored
    assert "in-outage" not in stored
    assert {"before-the-test", "before-the-outage", "after-the-outage"} <= stored
    refused = {session_id for session_id, answer in traffic.posted.items() if answer.status == 503}
    assert len(refused & stored) <= 1, refused & stored
