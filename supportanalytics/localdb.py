"""A private PostgreSQL cluster for development, tests and `make run`.

Used only when ``DATABASE_URL`` is not set. The cluster lives under ``var/postgres``
in the checkout, listens on a unix socket only (no TCP port to collide with) and keeps
PostgreSQL's durable defaults (fsync on).

``initdb`` and ``postgres`` refuse to run as root. When we are root, those two binaries run
as the ``postgres`` OS user, which then owns the data folder. If that user cannot reach the
checkout (a clone under ``/root`` or under a ``mktemp -d`` folder), or the socket path
would be longer than a unix socket allows, the cluster goes to a per-checkout folder under
the system temp folder instead, named after a hash of the checkout path so that every
command in the same checkout finds the same cluster.

Command line (used by the Makefile)::

    python -m supportanalytics.localdb start   # start if needed, print DATABASE_URL last
    python -m supportanalytics.localdb stop
    python -m supportanalytics.localdb url
    python -m supportanalytics.localdb bindir  # PostgreSQL's binaries, or exit 1 saying how to install them
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
DB_NAME = "supportanalytics"
DB_USER = "supportanalytics"
# What we tell people to run when PostgreSQL is missing (as root, `make db` runs it itself).
INSTALL_COMMAND = "sudo apt-get install postgresql"
SERVICE_USER = "postgres"
# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
SOCKET_NAME = ".s.PGSQL.5432"


class LocalDatabaseError(RuntimeError):
    """Raised with a one-line, user-facing explanation."""


def _running_as_root() -> bool:
    return os.geteuid() == 0


def find_bindir() -> Path | None:
    """Where initdb/pg_ctl live: $PG_BIN, Debian's versioned folders, or PATH."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def installed_bindir() -> Path:
    """find_bindir(), if PostgreSQL's server binaries are really there."""
    bindir = find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        raise LocalDatabaseError(
            f"PostgreSQL is not installed. Install it with: {INSTALL_COMMAND}"
            " (or set DATABASE_URL to an existing database)."
        )
    return bindir


def _service_user_can_reach(path: Path) -> bool:
    if not _running_as_root():
        return True
    result = subprocess.run(
        ["runuser", "-u", SERVICE_USER, "--", "test", "-x", str(path)],
        capture_output=True,
    )
    return result.returncode == 0


def var_dir() -> Path:
    """The checkout's git-ignored var/ folder, created 0755 whatever the umask.

    The service user must be able to pass through it to reach var/postgres; a root shell
    with umask 077 would otherwise create it 0700.
    """
    var = BASE_DIR / "var"
    if not var.exists():
        var.mkdir(parents=True, exist_ok=True)
        var.chmod(0o755)
    return var


def fallback_parent() -> Path:
    """Where clusters go that cannot live in the checkout.

    As root: the service user's home (Debian: /var/lib/postgresql), which that user owns
    and which, unlike /tmp, is neither cleaned nor in memory. Otherwise the temp folder.
    """
    if _running_as_root():
        try:
            home = Path(pwd.getpwnam(SERVICE_USER).pw_dir)
        except KeyError:
            home = None
        if home and home.is_dir():
            return home
    return Path(tempfile.gettempdir())


def data_dir() -> Path:
    """The cluster's folder; its unix socket sits inside it."""
    var = BASE_DIR / "var"
    in_checkout = var / "postgres"
    socket_fits = len(str(in_checkout / SOCKET_NAME).encode()) <= MAX_SOCKET_PATH
    if socket_fits and _service_user_can_reach(var if var.exists() else BASE_DIR):
        return in_checkout
    digest = hashlib.sha256(str(BASE_DIR).encode()).hexdigest()[:12]
    return fallback_parent() / f"supportanalytics-pg-{digest}"


def _check_owner(directory: Path) -> None:
    """Refuse a cluster folder that someone else made (e.g. planted in /tmp beforehand)."""
    expected = pwd.getpwnam(SERVICE_USER).pw_uid if _running_as_root() else os.geteuid()
    if directory.exists() and directory.stat().st_uid != expected:
        raise LocalDatabaseError(f"{directory} belongs to another user; remove it or set DATABASE_URL.")


def database_url(directory: Path | None = None) -> str:
    socket_dir = directory or data_dir()
    # libpq and dj-database-url both read a percent-encoded host as a socket folder.
    return f"postgresql://{DB_USER}@{quote(str(socket_dir), safe='')}/{DB_NAME}"


def _run_pg(binary: Path, *args: str) -> subprocess.CompletedProcess:
    command = [str(binary), *args]
    if _running_as_root():
        command = ["runuser", "-u", SERVICE_USER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True)


def _initdb(bindir: Path, directory: Path) -> None:
    if directory.parent == BASE_DIR / "var":
        var_dir()
    directory.mkdir(parents=True, exist_ok=True)
    if _running_as_root():
        shutil.chown(directory, SERVICE_USER, SERVICE_USER)
    directory.chmod(0o700)
    result = _run_pg(
        bindir / "initdb",
        "--pgdata",
        str(directory),
        "--username",
        DB_USER,
        # Only the socket's owner (and root) may connect: the folder is 0700 and the
        # socket 0700 too, so "trust" never reaches another OS user.
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
    )
    if result.returncode != 0:
        raise LocalDatabaseError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
    with open(directory / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# supportanalytics private cluster\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{directory}'\n"
            "unix_socket_permissions = 0700\n"
            "max_connections = 100\n"
            "shared_buffers = 256MB\n"
        )


def _is_running(bindir: Path, directory: Path) -> bool:
    if not (directory / "PG_VERSION").exists():
        return False
    return _run_pg(bindir / "pg_ctl", "status", "--pgdata", str(directory)).returncode == 0


def _create_database(directory: Path) -> None:
    import psycopg

    with psycopg.connect(host=str(directory), user=DB_USER, dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DB_NAME}"')


def ensure_running() -> str:
    """Start (and on first use create) the private cluster; return its DATABASE_URL."""
    bindir = installed_bindir()
    directory = data_dir()
    if directory.parent != BASE_DIR / "var":
        _check_owner(directory)
    if not (directory / "PG_VERSION").exists():
        _initdb(bindir, directory)
    if not _is_running(bindir, directory):
        # A postmaster.pid left by a killed server is handled by postgres itself.
        result = _run_pg(
            bindir / "pg_ctl",
            "start",
            "--pgdata",
            str(directory),
            "--log",
            str(directory / "server.log"),
            "--wait",
            "--timeout",
            "60",
        )
        if result.returncode != 0:
            log_tail = ""
            if (directory / "server.log").exists():
                log_tail = (directory / "server.log").read_text().strip().splitlines()[-1:]
                log_tail = f" ({log_tail[0]})" if log_tail else ""
            raise LocalDatabaseError(f"PostgreSQL did not start in {directory}{log_tail}")
    _wait_for_socket(directory)
    _create_database(directory)
    return database_url(directory)


def _wait_for_socket(directory: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (directory / SOCKET_NAME).exists():
        if time.monotonic() > deadline:
            raise LocalDatabaseError(f"PostgreSQL socket did not appear in {directory}")
        time.sleep(0.1)


def stop() -> None:
    bindir = find_bindir()
    directory = data_dir()
    if bindir and _is_running(bindir, directory):
        _run_pg(
            bindir / "pg_ctl",
            "stop",
            "--pgdata",
            str(directory),
            "--mode",
            "fast",
            "--wait",
        )


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "start"
    try:
        if command == "start":
            print(ensure_running())
        elif command == "stop":
            stop()
        elif command == "url":
            print(database_url())
        elif command == "bindir":
            print(installed_bindir())
        else:
            print(f"usage: {argv[0]} start|stop|url|bindir", file=sys.stderr)
            return 2
    except LocalDatabaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
