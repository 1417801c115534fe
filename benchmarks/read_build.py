"""What building a read costs in Python, before PostgreSQL sees it (no database needed).

    .venv/bin/python benchmarks/read_build.py

Times two ways of asking for a 90-day window's figures from the rollups (unfiltered, with its
top topics): the statement analytics.reads composes with psycopg.sql (what every read does),
and one ORM aggregate query of the same figures over the same rollup rows, built and compiled
by Django (what a QuerySet read would cost for each of its 2–4 queries). Minimum of 5 rounds;
see docs/benchmarks.md, "SQL text for reads".
"""

from __future__ import annotations

import os
import sys
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportanalytics.settings")

import django

django.setup()

from django.contrib.postgres.fields import ArrayField  # noqa: E402
from django.db.models import Aggregate, IntegerField, Q, Sum  # noqa: E402
from psycopg import sql  # noqa: E402

from conversations.analytics import planner, reads  # noqa: E402
from conversations.analytics.figures import HISTOGRAM, NAMES  # noqa: E402
from conversations.analytics.query import Filters, Period  # noqa: E402
from conversations.models import ConversationRollup  # noqa: E402

NOW = datetime(2026, 12, 1, 12, 7, tzinfo=UTC)
PERIOD = Period.last_hours(2160, now=NOW)
ROUNDS, NUMBER = 5, 500


class HistogramSum(Aggregate):
    """The rollups' histograms added element by element (migration 0003's aggregate)."""

    function = "sa_histogram_sum"
    output_field = ArrayField(IntegerField())


def statement() -> str:
    built = reads._Statement()
    plan = planner.window_plan(PERIOD, Filters(), topics=True, now=NOW)
    built.window(0, plan, Filters(), topics=reads.TopicFigures.COUNTS)
    union = sql.SQL(" UNION ALL ").join(sql.SQL("SELECT * FROM {}").format(name) for name in built.parts)
    return sql.SQL("WITH {} {}").format(sql.SQL(", ").join(built.ctes), union).as_string()


def orm_query() -> tuple:
    days = Q(span="d", start__gte=PERIOD.start, start__lt=PERIOD.end)
    hours = Q(span="h", start__gte=PERIOD.end - timedelta(hours=12), start__lt=PERIOD.end)
    rows = ConversationRollup.objects.filter(
        days | hours, channel__isnull=True, bot_version__isnull=True, escalation_reason__isnull=True
    )
    rows = rows.values("span").annotate(
        **{name: Sum(name) for name in NAMES}, histogram=HistogramSum(HISTOGRAM)
    )
    return rows.query.get_compiler("default").as_sql()


def microseconds(function) -> float:
    return min(timeit.repeat(function, number=NUMBER, repeat=ROUNDS)) / NUMBER * 1e6


if __name__ == "__main__":
    print(f"psycopg.sql statement of a whole read: {microseconds(statement):8.1f} µs")
    print(f"one ORM aggregate query (build + compile): {microseconds(orm_query):8.1f} µs")
