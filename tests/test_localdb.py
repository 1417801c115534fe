"""supportanalytics/localdb.py: where the private cluster lives, and its URL (no server started)."""

import os
import pwd
import stat
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
