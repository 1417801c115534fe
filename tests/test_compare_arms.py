"""`GET /api/analytics/compare/` (issue 17): two bot versions, channels or windows side by side,
with the changes of every rate and mean (statsmodels/scipy), per topic adjusted by
Benjamini–Hochberg, and the sample size per arm."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from conversations import services
from conversations.analytics import statistics
from tests.conftest import T0
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db

URL = "/api/analytics/compare/"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _store(prefix: str, end, rows, **fields) -> None:
    """Conversations (resolved, topic) an hour apart, the last an hour before `end`."""
    services.conversations_ingest(
        items=[
            conversation_in(
                f"{prefix}{index}", end - HOUR * (index + 1), resolved=resolved, topics=(topic,), **fields
            )
            for index, (resolved, topic) in enumerate(rows)
        ]
    )


V1 = [(True, "billing")] * 3 + [(False, "billing")] * 5 + [(True, "refund")] * 4 + [(False, "refund")] * 2
V2 = [(True, "billing")] * 7 + [(False, "billing")] * 1 + [(True, "refund")] * 3 + [(False, "refund")] * 3
V2 += [(True, "login")] * 2


def _p(value: float) -> float:
    return float(f"{float(value):.4g}")


@pytest.fixture
def versions():
    _store("one", T0, V1, bot_version="1.0", channel="web")
    _store("two", T0, V2, bot_version="2.0", channel="web")


def test_two_bot_versions_side_by_side(read_client, versions):
    with time_machine.travel(T0, tick=False):
        body = read_client.get(URL, {"hours": 48, "a_bot_version": "1.0", "b_bot_version": "2.0"}).json()
    assert body["a"]["filters"]["bot_version"] == "1.0" and body["b"]["filters"]["bot_version"] == "2.0"
    assert (body["a"]["total_conversations"], body["b"]["total_conversations"]) == (14, 16)
    # The arms are the summaries the API answers for each version.
    with time_machine.travel(T0, tick=False):
        alone = read_client.get("/api/analytics", {"hours": 48, "bot_version": "1.0"}).json()
    assert {key: value for key, value in body["a"].items() if key != "top_topics"} == {
        key: value for key, value in alone.items() if key != "top_topics"
    }
    _, p_value = proportions_ztest([12, 7], [16, 14])
    assert body["changes"]["ai_resolution_rate"]["p_value"] == _p(p_value)
    assert body["changes"]["total_conversations"]["p_value"] == _p(stats.binomtest(16, 30, 0.5).pvalue)


def test_topics_are_adjusted_across_the_list(read_client, versions):
    with time_machine.travel(T0, tick=False):
        body = read_client.get(URL, {"hours": 48, "a_bot_version": "1.0", "b_bot_version": "2.0"}).json()
    topics = body["topics"]
    assert [topic["topic"] for topic in topics] == ["billing", "refund", "login"]  # most conversations first
    assert topics[2]["a"] is None and topics[2]["b"]["conversations"] == 2
    raw = []
    for (resolved_a, n_a), (resolved_b, n_b) in (((3, 8), (7, 8)), ((4, 6), (3, 6))):
        raw.append(proportions_ztest([resolved_b, resolved_a], [n_b, n_a])[1])
    rates = [topic["changes"]["ai_resolution_rate"] for topic in topics]
    assert [rate["p_value"] for rate in rates[:2]] == [_p(p) for p in raw]
    # login: no conversation in a, so no rate to compare.
    assert rates[2]["p_value"] is None and rates[2]["q_value"] is None and rates[2]["significant"] is False
    adjusted = multipletests(raw, method="fdr_bh")[1]
    assert [rate["q_value"] for rate in rates[:2]] == [_p(q) for q in adjusted]
    assert [rate["significant"] for rate in rates[:2]] == [bool(q < 0.05) for q in adjusted]


def test_sample_size_per_arm_from_arm_as_rate(read_client, versions):
    with time_machine.travel(T0, tick=False):
        body = read_client.get(URL, {"hours": 48, "a_bot_version": "1.0", "b_bot_version": "2.0"}).json()
    expected = {
        str(points): statistics.sample_size_per_arm(baseline=7 / 14, change=points / 100) for points in (2, 5)
    }
    assert body["sample_size_per_arm"] == expected
    # 50% → 52%: (1.96 √(2 · 0.51 · 0.49) + 0.8416 √(0.25 + 0.2496))² / 0.02² ≈ 9,806.
    assert 9_700 < expected["2"] < 9_900


def test_two_windows_and_two_channels(read_client):
    _store("before", T0 - 7 * DAY, [(True, "billing")] * 4 + [(False, "billing")] * 4, channel="web")
    _store("after", T0, [(True, "billing")] * 6 + [(False, "billing")] * 2, channel="email")
    windows = {
        "a_start": (T0 - 8 * DAY).isoformat(),
        "a_end": (T0 - 7 * DAY).isoformat(),
        "b_start": (T0 - DAY).isoformat(),
        "b_end": T0.isoformat(),
    }
    with time_machine.travel(T0, tick=False):
        by_window = read_client.get(URL, windows).json()
        by_channel = read_client.get(URL, {"hours": 24 * 30, "a_channel": "web", "b_channel": "email"}).json()
    for body in (by_window, by_channel):
        assert (body["a"]["total_conversations"], body["b"]["total_conversations"]) == (8, 8)
        assert body["changes"]["ai_resolution_rate"]["difference"] == 25.0
    assert by_window["a"]["window"]["start"] == "2026-03-06T12:00:00Z"


A_WINDOW = {"a_start": "2026-03-01T00:00:00Z", "a_end": "2026-03-02T00:00:00Z"}
B_START = {"b_start": "2026-03-03T00:00:00Z"}
B_WINDOW = {**B_START, "b_end": "2026-03-04T00:00:00Z"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "compare"),
        ({"a_bot_version": "1.0"}, "b_bot_version"),
        ({"a_bot_version": "1.0", "b_bot_version": "2.0", "a_channel": "web"}, "a_channel"),
        ({"a_bot_version": "1.0", "b_bot_version": "2.0", "bot_version": "3.0"}, "bot_version"),
        ({**A_WINDOW, **B_START}, "b_end"),
        ({**A_WINDOW, **B_WINDOW, "hours": 24}, "hours"),
        ({**A_WINDOW, "a_end": "2026-02-28T00:00:00Z", **B_WINDOW}, "a_end"),
    ],
)
def test_a_missing_half_or_mixed_kinds_is_a_400_naming_it(read_client, query, field):
    response = read_client.get(URL, query)
    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_an_arm_zero_long_answers_an_empty_arm_not_an_error(read_client):
    window = {"a_start": "2026-03-10T00:00:00Z", "a_end": "2026-03-10T00:00:00Z"}
    with time_machine.travel(T0, tick=False):
        response = read_client.get(
            URL, {**window, "b_start": "2026-03-11T00:00:00Z", "b_end": "2026-03-12T00:00:00Z"}
        )
    assert response.status_code == 200
    body = response.json()
    assert body["a"]["total_conversations"] == 0
    assert body["changes"]["total_conversations"] == {
        "relative_change": None,
        "p_value": None,
        "significant": False,
    }


def test_arms_without_data_answer_nulls_not_an_error(read_client):
    with time_machine.travel(T0, tick=False):
        response = read_client.get(URL, {"hours": 24, "a_channel": "web", "b_channel": "email"})
    assert response.status_code == 200
    body = response.json()
    assert body["sample_size_per_arm"] == {"2": None, "5": None}
    assert body["topics"] == []
    assert body["changes"]["ai_resolution_rate"] == {
        "difference": None,
        "difference_ci95": None,
        "p_value": None,
        "significant": False,
    }
    assert body["changes"]["total_conversations"] == {
        "relative_change": None,
        "p_value": None,
        "significant": False,
    }


# --- The two arms read at once (reads.both) ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_arms_are_read_at_once_and_answer_the_same(read_client):
    """Committed data (no test transaction): arm a is read on the reader thread's own
    connection while b is read here; the answer equals the one read one after the other."""
    from django.db import connection

    from conversations.analytics import reads

    _store("one", T0, V1, bot_version="1.0", channel="web")
    _store("two", T0, V2, bot_version="2.0", channel="web")
    threads = []
    original = reads._on_own_connection

    def spy(read_one):
        threads.append(threading.current_thread().name)
        return original(read_one)

    params = {"hours": 24, "a_bot_version": "1.0", "b_bot_version": "2.0"}
    with time_machine.travel(T0, tick=False):
        assert not connection.in_atomic_block
        with mock.patch.object(reads, "_on_own_connection", spy):
            at_once = read_client.get(URL, params).json()
        with mock.patch.object(reads.connection, "in_atomic_block", True):
            one_by_one = read_client.get(URL, params).json()
    assert len(threads) == 1 and threads[0].startswith("second-read")
    assert at_once == one_by_one
    assert (at_once["a"]["total_conversations"], at_once["b"]["total_conversations"]) == (14, 16)


def test_both_waits_for_the_first_read_when_the_second_fails():
    from conversations.analytics import reads

    finished = threading.Event()

    def first():
        finished.wait(timeout=5)
        return "first"

    def second():
        raise ValueError("second failed")

    not_in_a_transaction = mock.patch.object(reads.connection, "in_atomic_block", False)
    with not_in_a_transaction, pytest.raises(ValueError, match="second failed"):
        reads.both(first, lambda: (finished.set(), second()))
    assert finished.is_set()
    with not_in_a_transaction, pytest.raises(KeyError):
        reads.both(lambda: {}["missing"], lambda: "second")
