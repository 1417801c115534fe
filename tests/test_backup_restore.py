"""scripts/backup.sh and scripts/restore.sh: a database with data, dumped, restored into a fresh
database, answers every analytics question exactly as the original did."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection

from conversations import services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Granularity, Period
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.test_health_and_outage import database_at

SCRIPTS = Path(settings.BASE_DIR) / "scripts"
UTC_ZONE = ZoneInfo("UTC")


def url_of(settings_dict: dict, name: str) -> str:
    host = quote(settings_dict["HOST"] or "localhost", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgresql://{quote(settings_dict['USER'], safe='')}@{host}{port}/{name}"


def run(script: str, *args: str, database_url: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PGPASSWORD": connection.settings_dict["PASSWORD"] or "",
    }
    result = subprocess.run(
        [str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def analytics() -> dict:
    """Every figure the API and the dashboard show, for the data's week, with and without filters."""
    period = Period(start=T0 - timedelta(days=7), end=T0)
    answers = {}
    for filters in (Filters(), Filters(channel="web"), Filters(topic="billing")):
        answers[filters] = (
            selectors.summary(period=period, filters=filters),
            selectors.topic_breakdown(period=period, filters=filters),
            selectors.timeseries(
                period=period, filters=filters, granularity=Granularity.DAY, tz=ZoneInfo("UTC")
            ),
            selectors.timeseries(
                period=period, filters=filters, granularity=Granularity.HOUR, tz=ZoneInfo("UTC")
            ),
        )
    return answers


@pytest.fixture
def restored_database(transactional_db):
    # Named after the test database, so suites run side by side (their own names) never collide.
    restored = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{restored}"')
        cursor.execute(f'CREATE DATABASE "{restored}"')
    yield restored
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


def test_a_restored_backup_answers_every_analytics_question_as_the_original(restored_database, tmp_path):
    services.conversations_ingest(
        items=[
            ConversationIn(
                session_id=f"backup-{n}",
                timestamp=T0 - timedelta(hours=3 * n + 1, minutes=n),
                turns=n % 9,
                resolved_by_ai=n % 3 != 0,
                topics=(["billing", "refund", "login", "shipping"][n % 4], "account")[: 1 + n % 2],
                channel=["web", "email"][n % 2],
                csat=None if n % 4 == 0 else n % 5 + 1,
                csat_given=True,
                avg_response_ms=100.0 * (n % 7 + 1),
                response_count=2,
                ai_cost=None if n % 5 else Decimal("0.0125"),
            )
            for n in range(50)
        ]
    )
    original = analytics()
    assert original[Filters()][0].totals.conversations == 50

    dump = tmp_path / "backup.dump"
    source = connection.settings_dict
    run("backup.sh", str(dump), database_url=url_of(source, source["NAME"]))
    assert dump.stat().st_size > 0
    assert not dump.with_name("backup.dump.partial").exists()
    # Twice: the second restore meets every object in place (--clean --if-exists drops it first).
    for _ in range(2):
        run("restore.sh", str(dump), database_url=url_of(source, restored_database))

    with database_at(NAME=restored_database):
        assert analytics() == original


def test_backup_without_a_file_name_prints_its_usage():
    result = subprocess.run([str(SCRIPTS / "backup.sh")], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr.startswith("usage:")) == (2, True)
