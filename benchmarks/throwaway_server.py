"""The app served by gunicorn (bench.start_server) on a database of its own, created and
migrated here and dropped at the end: what the client's tests (tests/test_client_live.py) and
its benchmark (benchmarks/client_bench.py) talk to. It can be stopped, killed and started
again on the same port, as an outage looks to a bot."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR / "benchmarks"))

import bench  # noqa: E402

# Production settings need these; the values only have to hold for this database's life.
SECRETS = {
    "DJANGO_SECRET_KEY": "throwaway-" + uuid.uuid4().hex,
    "CUSTOMER_ID_HASH_KEY": "throwaway-" + uuid.uuid4().hex,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
}


class ThrowawayServer:
    def __init__(self, name: str, *, environment: dict[str, str] | None = None):
        self.admin_url, self.url = bench.database_urls(0, name=name)
        self.name = name
        self.environment = {**SECRETS, **(environment or {})}
        self._drop()
        bench.create_database(self.admin_url, self.url)
        self.manage("migrate", "--no-input", "-v0")
        self.port = bench.free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def manage(self, *args: str) -> str:
        """A manage.py command on this database; its output."""
        env = {**bench.server_environment(self.url), **self.environment}
        run = subprocess.run(
            [str(BASE_DIR / ".venv" / "bin" / "python"), "manage.py", *args],
            cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)}: {run.stderr[-2000:]}")
        return run.stdout

    def create_key(self, scope: str = "all") -> str:
        return self.manage("create_api_token", f"client-{uuid.uuid4().hex[:8]}", "--scope", scope).split()[-1]

    def start(self, environment: dict[str, str] | None = None) -> None:
        self.process = bench.start_server(
            self.url, self.port, environment={**self.environment, **(environment or {})}
        )

    def stop(self) -> None:
        """gunicorn's graceful stop: requests under way are answered first."""
        if self.process is not None:
            bench.stop_servers([self.process])
            self.process = None

    def kill(self) -> None:
        """SIGKILL to the workers and the master: requests under way get no answer."""
        if self.process is not None:
            for pid in bench.worker_pids(self.process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
            self.process = None

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url) as connection:
            return connection.execute(sql, params).fetchall()

    def close(self) -> None:
        self.kill()
        self._drop()

    def _drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
