"""The analytics answers, pinned to the byte: keys, values and their order.

A representative data set (every field, every channel and version, late CSAT, a replaced and a
deleted conversation, unfolded deltas beside folded rollups) is read through the API and the
dashboard's CSV exports over fixed windows whose edges fall inside quarter hours, hours and
days. Each answer is compared with `tests/pinned/<name>.txt`, written by the code before the
read side was reorganized (issue 15): a refactor may change how a number is computed, never
the number. An issue that adds keys updates the pins on purpose, with `PIN_PAYLOADS=write`.
"""

from __future__ import annotations

import os
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conversations import rollups, services
from conversations.services import ConversationIn
from tests.conftest import T0

PINNED = Path(__file__).parent / "pinned"
WRITE = os.environ.get("PIN_PAYLOADS") == "write"

pytestmark = pytest.mark.django_db

TOPICS = ["billing", "refund", "shipping", "login issues", "=formula", "returns"]
CHANNELS = ["web", "email", "chat"]
VERSIONS = ["1.0", "2.0"]


def _conversations() -> list[ConversationIn]:
    """400 conversations over the 10 days before T0 (a seeded generator: the same every run)."""
    rng = random.Random(15)
    items = []
    for number in range(400):
        minutes = rng.randrange(0, 10 * 24 * 60 * 60) / 60  # to the second
        items.append(
            ConversationIn(
                session_id=f"pin-{number:04d}",
                timestamp=T0 - timedelta(minutes=minutes),
                turns=rng.randrange(1, 30),
                resolved_by_ai=rng.random() < 0.65,
                topics=tuple(sorted(set(rng.sample(TOPICS, rng.randrange(0, 3))))),
                avg_response_ms=None if rng.random() < 0.1 else round(rng.uniform(50, 9000), 3),
                response_count=rng.randrange(1, 9),
                channel=rng.choice(CHANNELS),
                bot_version=rng.choice(VERSIONS),
                ai_cost=None if rng.random() < 0.5 else Decimal(rng.randrange(0, 90_000)) / 1_000_000,
                csat=None if rng.random() < 0.4 else rng.randrange(1, 6),
                csat_given=True,
            )
        )
    return items


@pytest.fixture
def stored(frozen_now):
    items = _conversations()
    services.conversations_ingest(items=items[:300])  # a batch: straight into the rollups
    rollups.fold()
    for item in items[300:]:  # single writes: deltas, half of them folded
        services.conversations_ingest(items=[item])
        if item.session_id < "pin-0350":
            rollups.fold()
    services.conversation_set_csat(session_id="pin-0007", csat=5)
    services.conversation_set_csat(session_id="pin-0380", csat=None)
    services.conversations_ingest(items=[ConversationIn(**{**vars(items[11]), "resolved_by_ai": False})])
    services.conversations_delete(session_ids=["pin-0012", "pin-0390"])


HOUR = timedelta(hours=1)
WINDOWS = {
    "hours24": {"hours": 24},
    "hours168": {"hours": 168},
    # Edges inside quarter hours, on both sides of UTC midnights.
    "odd": {
        "start": (T0 - 3 * 24 * HOUR + timedelta(minutes=7)).isoformat(),
        "end": (T0 - HOUR - timedelta(minutes=4, seconds=3)).isoformat(),
    },
    "days": {"start": (T0 - 9 * 24 * HOUR).isoformat(), "end": (T0 - 2 * 24 * HOUR).isoformat()},
}
FILTERS = {
    "all": {},
    "web": {"channel": "web"},
    "billing": {"topic": " Billing "},
    "v2_email": {"bot_version": "2.0", "channel": "email"},
}
SERIES = {
    "hour_utc": {"granularity": "hour"},
    "day_berlin": {"granularity": "day", "tz": "Europe/Berlin"},
    "day_kolkata": {"granularity": "day", "tz": "Asia/Kolkata"},
    "week_utc": {"granularity": "week", "tz": "UTC"},
}
DASHBOARD_QUERIES = {
    "7d": {"range": "7d"},
    "24h_web": {"range": "24h", "channel": "web"},
    "custom_v1": {"range": "custom", "start": "2026-03-05", "end": "2026-03-12", "bot_version": "1.0"},
}


def _requests() -> dict[str, str]:
    urls = {}
    for window_name, window in WINDOWS.items():
        for filter_name, filters in FILTERS.items():
            query = urlencode({**window, **filters})
            urls[f"summary-{window_name}-{filter_name}"] = f"/api/analytics?{query}"
            urls[f"topics-{window_name}-{filter_name}"] = f"/api/analytics/topics/?{query}"
    for series_name, series in SERIES.items():
        for filter_name in ("all", "billing", "v2_email"):
            window = WINDOWS["days"] if series["granularity"] != "hour" else WINDOWS["odd"]
            query = urlencode({**window, **FILTERS[filter_name], **series})
            urls[f"series-{series_name}-{filter_name}"] = f"/api/analytics/timeseries/?{query}"
    for name, query in DASHBOARD_QUERIES.items():
        urls[f"topics_csv-{name}"] = f"/dashboard/topics.csv?{urlencode(query)}"
        urls[f"timeseries_csv-{name}"] = f"/dashboard/timeseries.csv?{urlencode(query)}"
    return urls


REQUESTS = _requests()


@pytest.fixture
def clients(read_client, staff_client):
    return {"api": read_client, "dashboard": staff_client}


@pytest.mark.parametrize("name", REQUESTS)
def test_answer_is_pinned(stored, clients, name):
    url = REQUESTS[name]
    client = clients["dashboard" if url.startswith("/dashboard/") else "api"]
    response = client.get(url)
    assert response.status_code == 200, response.content
    path = PINNED / f"{name}.txt"
    if WRITE:
        PINNED.mkdir(exist_ok=True)
        path.write_bytes(response.content)
    assert response.content.decode() == path.read_bytes().decode()
