"""supportanalytics/localdb.py: where the private cluster lives, and its URL (no server started)."""

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import dj_database_url
import pytest
from django.conf import settings
from django.db import connection

from supportanalytics import localdb

# in_checkout / "var/postgres/.s.PGSQL.5432" adds 27 bytes to the checkout path.
SOCKET_SUFFIX_LENGTH = len("/var/postgres/.s.PGSQL.5432")


def checkout_of_length(length: int) -> Path:
    path = Path("/srv/" + "c" * (length - len("/srv/")))
    assert len(str(path)) == length
    return path


@pytest.fixture
def reachable(monkeypatch):
    """The service user can reach any checkout; records what it was asked about."""
    asked = []

    def can_reach(path: Path) -> bool:
        asked.append(path)
        return True

    monkeypatch.setattr(localdb, "_service_user_can_reach", can_reach)
    return asked


def fallback_pattern_holds(directory: Path) -> bool:
    return (
        directory.parent == localdb.fallback_parent()
        and directory.name.startswith("supportanalytics-pg-")
        and len(directory.name) == len("supportanalytics-pg-") + 12
        and all(char in "0123456789abcdef" for char in directory.name.removeprefix("supportanalytics-pg-"))
    )


def test_data_dir_is_inside_the_checkout_normally(monkeypatch, reachable):
    monkeypatch.setattr(localdb, "BASE_DIR", Path("/srv/supportanalytics"))

    assert localdb.data_dir() == Path("/srv/supportanalytics/var/postgres")
    assert reachable == [Path("/srv/supportanalytics")]


def test_data_dir_falls_back_to_the_temp_folder_when_the_socket_path_is_too_long(monkeypatch, reachable):
    monkeypatch.setattr(localdb, "BASE_DIR", Path("/srv/" + "very-long-folder-name/" * 6 + "checkout"))

    directory = localdb.data_dir()

    assert fallback_pattern_holds(directory), directory
    assert len(str(directory / localdb.SOCKET_NAME).encode()) <= localdb.MAX_SOCKET_PATH


@pytest.mark.parametrize(
    ("checkout_length", "in_checkout"),
    [
        # sun_path holds 108 bytes with the terminating NUL: 107 fits, 108 does not.
        (localdb.MAX_SOCKET_PATH - SOCKET_SUFFIX_LENGTH, True),
        (localdb.MAX_SOCKET_PATH + 1 - SOCKET_SUFFIX_LENGTH, False),
    ],
)
def test_data_dir_socket_length_edge(monkeypatch, reachable, checkout_length, in_checkout):
    checkout = checkout_of_length(checkout_length)
    monkeypatch.setattr(localdb, "BASE_DIR", checkout)

    directory = localdb.data_dir()

    assert (directory == checkout / "var" / "postgres") is in_checkout
    assert fallback_pattern_holds(directory) is not in_checkout


def test_data_dir_counts_bytes_not_characters(monkeypatch, reachable):
    # "é" is 2 bytes in UTF-8: a socket path of 106 characters but 146 bytes does not fit.
    checkout = Path("/srv/" + "é" * 40 + "x" * 34)
    assert len(str(checkout / "var" / "postgres" / localdb.SOCKET_NAME)) == 106
    monkeypatch.setattr(localdb, "BASE_DIR", checkout)

    assert fallback_pattern_holds(localdb.data_dir())


def test_data_dir_falls_back_when_the_service_user_cannot_reach_the_checkout(monkeypatch):
    monkeypatch.setattr(localdb, "BASE_DIR", Path("/root/supportanalytics"))
    monkeypatch.setattr(localdb, "_service_user_can_reach", lambda path: False)

    assert fallback_pattern_holds(localdb.data_dir())


def test_fallback_is_stable_and_differs_between_checkouts(monkeypatch):
    monkeypatch.setattr(localdb, "_service_user_can_reach", lambda path: False)

    monkeypatch.setattr(localdb, "BASE_DIR", Path("/root/first-checkout"))
    first, first_again = localdb.data_dir(), localdb.data_dir()
    monkeypatch.setattr(localdb, "BASE_DIR", Path("/root/second-checkout"))
    second = localdb.data_dir()

    assert first == first_again
    assert first != second


@pytest.mark.parametrize(
    ("socket_dir", "encoded"),
    [
        (Path("/work/main/var/postgres"), "%2Fwork%2Fmain%2Fvar%2Fpostgres"),
        # Capitals survive (URL host names are otherwise case-insensitive), spaces are encoded.
        (Path("/home/Alice/My Project/var/postgres"), "%2Fhome%2FAlice%2FMy%20Project%2Fvar%2Fpostgres"),
        (Path("/tmp/supportanalytics-pg-0123456789ab"), "%2Ftmp%2Fsupportanalytics-pg-0123456789ab"),
    ],
)
def test_database_url_percent_encodes_the_socket_folder(socket_dir, encoded):
    url = localdb.database_url(socket_dir)

    assert url == f"postgresql://supportanalytics@{encoded}/supportanalytics"
    parsed = dj_database_url.parse(url)
    assert (parsed["HOST"], parsed["USER"], parsed["NAME"], parsed["PORT"]) == (
        str(socket_dir),
        "supportanalytics",
        "supportanalytics",
        "",
    )


def test_database_url_defaults_to_the_data_dir(monkeypatch, reachable):
    monkeypatch.setattr(localdb, "BASE_DIR", Path("/srv/supportanalytics"))

    assert dj_database_url.parse(localdb.database_url())["HOST"] == "/srv/supportanalytics/var/postgres"


@pytest.mark.django_db
@pytest.mark.skipif(not settings.LOCAL_MODE, reason="DATABASE_URL names another database")
def test_local_mode_connects_through_the_private_cluster_socket():
    assert connection.settings_dict["HOST"] == str(localdb.data_dir())
    assert connection.vendor == "postgresql"


@pytest.mark.django_db
def test_the_configured_database_answers():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 + 1")
        assert cursor.fetchone() == (2,)
    assert connection.vendor == "postgresql"


def test_var_dir_is_passable_whatever_the_umask(monkeypatch, tmp_path):
    monkeypatch.setattr(localdb, "BASE_DIR", tmp_path / "checkout")
    (tmp_path / "checkout").mkdir()
    previous = os.umask(0o077)
    try:
        var = localdb.var_dir()
    finally:
        os.umask(previous)
    assert var == tmp_path / "checkout" / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="the root-only fallback")
def test_root_falls_back_to_the_service_users_home_and_refuses_foreign_folders(tmp_path):
    assert localdb.fallback_parent() == Path(pwd.getpwnam(localdb.SERVICE_USER).pw_dir)
    planted = tmp_path / "planted"
    planted.mkdir()  # owned by root, not by the postgres user
    with pytest.raises(localdb.LocalDatabaseError, match="belongs to another user"):
        localdb._check_owner(planted)


# --- Without PostgreSQL -------------------------------------------------------------------


def test_without_postgresql_starting_names_the_install_command(monkeypatch):
    monkeypatch.setattr(localdb, "find_bindir", lambda: None)

    with pytest.raises(localdb.LocalDatabaseError, match="Install it with: sudo apt-get install postgresql"):
        localdb.ensure_running()


def test_a_bindir_without_pg_ctl_is_not_an_installation(monkeypatch, tmp_path, capsys):
    (tmp_path / "initdb").touch()
    monkeypatch.setenv("PG_BIN", str(tmp_path))

    assert localdb.main(["localdb", "bindir"]) == 1
    assert capsys.readouterr().err == (
        "error: PostgreSQL is not installed. Install it with: sudo apt-get install postgresql"
        " (or set DATABASE_URL to an existing database).\n"
    )


def test_bindir_prints_the_installed_binaries(capsys):
    assert localdb.main(["localdb", "bindir"]) == 0
    bindir = Path(capsys.readouterr().out.strip())
    assert (bindir / "pg_ctl").exists()


def make_db(tmp_path: Path, *, uid: int, pg_bin: str | None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`make db` with a fake `id -u` and a fake apt-get that only records its arguments."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    apt_log = tmp_path / "apt-get.log"
    (fake_bin / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    (fake_bin / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {apt_log}\n')
    for script in fake_bin.iterdir():
        script.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "PG_BIN"}}
    env = {key: value for key, value in env.items() if not key.startswith(("MAKE", "MFLAGS"))}
    env["PATH"] = f"{fake_bin}:{env['PATH']}"
    if pg_bin:
        env["PG_BIN"] = pg_bin
    result = subprocess.run(
        ["make", "-s", "db"], cwd=localdb.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    return result, apt_log.read_text().splitlines() if apt_log.exists() else []


needs_make = pytest.mark.skipif(
    not shutil.which("make")
    or subprocess.run(["make", "-q", ".venv/.installed-runtime"], cwd=localdb.BASE_DIR).returncode != 0,
    reason="needs make and the venv `make` builds",
)


@needs_make
def test_make_db_as_root_installs_postgresql_from_debian_when_missing(tmp_path):
    result, apt_calls = make_db(tmp_path, uid=0, pg_bin=str(tmp_path / "nowhere"))

    assert apt_calls == ["update -qq", "install -y -qq postgresql"]
    assert "installing it from Debian" in result.stderr
    # The fake apt-get installed nothing, so starting still fails, saying why.
    assert result.returncode != 0
    assert "sudo apt-get install postgresql" in result.stderr


@needs_make
def test_make_db_as_another_user_says_which_command_to_run(tmp_path):
    result, apt_calls = make_db(tmp_path, uid=1000, pg_bin=str(tmp_path / "nowhere"))

    assert apt_calls == []
    assert result.returncode != 0
    assert "error: PostgreSQL is not installed. Install it with: sudo apt-get install postgresql" in (
        result.stderr
    )


@needs_make
@pytest.mark.skipif(not settings.LOCAL_MODE, reason="DATABASE_URL names another database")
def test_make_db_with_postgresql_installed_installs_nothing(tmp_path):
    result, apt_calls = make_db(tmp_path, uid=0, pg_bin=None)

    assert apt_calls == []
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == localdb.database_url()
