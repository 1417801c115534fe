"""`GET /api/analytics?compare=previous` (issue 17): the previous period's summary and the
changes of every rate, mean and the volume, equal to statsmodels/scipy on the raw values."""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
import time_machine
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from conversations import services
from tests.conftest import T0
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db

URL = "/api/analytics"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _store(prefix: str, end, rows) -> None:
    """Conversations (resolved, csat, turns) an hour apart, the last an hour before `end`."""
    services.conversations_ingest(
        items=[
            conversation_in(
                f"{prefix}{index}",
                end - HOUR * (index + 1),
                resolved=resolved,
                turns=turns,
                csat=csat,
                csat_given=True,
                topics=("billing",),
            )
            for index, (resolved, csat, turns) in enumerate(rows)
        ]
    )


BEFORE = [(True, 5, 3), (False, 1, 9), (False, 2, 7), (True, 4, 2), (False, 1, 8), (False, None, 6)]
NOW = [(True, 5, 2), (True, 4, 3), (True, 5, 2), (False, 3, 6), (True, 4, 1), (True, 5, 2), (True, None, 3),
       (True, 5, 2)]  # fmt: skip


def _round(value: float, places: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def _p(value: float) -> float:
    return float(f"{float(value):.4g}")


@pytest.fixture
def answer(read_client):
    _store("before", T0 - DAY, BEFORE)
    _store("now", T0, NOW)
    with time_machine.travel(T0, tick=False):
        return read_client.get(URL, {"hours": 24, "compare": "previous"}).json()


def test_previous_is_the_summary_of_the_period_just_before(read_client, answer):
    with time_machine.travel(T0, tick=False):
        alone = read_client.get(URL, {"hours": 24}).json()
        start, end = (T0 - 2 * DAY).isoformat(), (T0 - DAY).isoformat()
        before = read_client.get(URL, {"start": start, "end": end}).json()
    assert {key: value for key, value in answer.items() if key not in ("previous", "changes")} == alone
    previous = answer["previous"]
    assert previous["window"] == {
        "start": "2026-03-12T12:00:00Z",
        "end": "2026-03-13T12:00:00Z",
        "start_inclusive": False,
    }
    # The same figures as the window asked for directly (which includes its start: no
    # conversation sits on it here).
    assert {k: v for k, v in previous.items() if k not in ("window",)} == {
        k: v for k, v in before.items() if k not in ("window", "filters")
    }
    assert previous["total_conversations"] == 6 and answer["total_conversations"] == 8


def test_a_rate_changes_by_newcombe_and_the_pooled_z_test(answer):
    change = answer["changes"]["ai_resolution_rate"]
    resolved_before, resolved_now = sum(r for r, _, _ in BEFORE), sum(r for r, _, _ in NOW)
    low, high = confint_proportions_2indep(
        resolved_now, len(NOW), resolved_before, len(BEFORE), method="newcomb"
    )
    _, p_value = proportions_ztest([resolved_now, resolved_before], [len(NOW), len(BEFORE)])
    assert change == {
        "difference": float(_round(100 * (resolved_now / len(NOW) - resolved_before / len(BEFORE)), "0.1")),
        "difference_ci95": [float(_round(100 * low, "0.1")), float(_round(100 * high, "0.1"))],
        "p_value": _p(p_value),
        "significant": p_value < 0.05,
    }


def test_a_mean_changes_by_welch(answer):
    before = [csat for _, csat, _ in BEFORE if csat is not None]
    now = [csat for _, csat, _ in NOW if csat is not None]
    test = stats.ttest_ind(now, before, equal_var=False)
    interval = test.confidence_interval(0.95)
    expected = {
        "difference": float(_round(stats.tmean(now) - stats.tmean(before), "0.01")),
        "difference_ci95": [float(_round(interval.low, "0.01")), float(_round(interval.high, "0.01"))],
        "p_value": _p(test.pvalue),
        "significant": bool(test.pvalue < 0.05),
    }
    assert answer["changes"]["avg_csat"] == expected
    assert answer["changes"]["csat.average"] == expected  # the same figure under its other path
    turns = stats.ttest_ind([t for *_, t in NOW], [t for *_, t in BEFORE], equal_var=False)
    assert answer["changes"]["avg_turns"]["p_value"] == _p(turns.pvalue)


def test_the_volume_changes_by_the_exact_binomial_test(answer):
    # Equal windows: b ~ Binomial(a + b, 1/2) when nothing changed.
    p_value = stats.binomtest(8, 14, 0.5).pvalue
    assert answer["changes"]["total_conversations"] == {
        "relative_change": 33.3,
        "p_value": _p(p_value),
        "significant": False,
    }


def test_every_rate_and_mean_has_a_change_and_p95_and_money_none(answer):
    changes = answer["changes"]
    assert {"ai_resolution_rate", "avg_csat", "csat.score", "csat.response_rate", "avg_turns",
            "response_time.mean_ms", "confirmed_resolution_rate", "repeat_contact.durable_resolution_rate"
            } <= set(changes)  # fmt: skip
    assert "response_time.p95_ms" not in changes and "estimated_savings" not in changes
    # No response times at all: the test is undefined, not "no change".
    assert changes["response_time.mean_ms"] == {
        "difference": None,
        "difference_ci95": None,
        "p_value": None,
        "significant": False,
    }


def test_without_compare_the_summary_has_neither_and_a_bad_compare_is_a_400(read_client):
    with time_machine.travel(T0, tick=False):
        plain = read_client.get(URL, {"hours": 24}).json()
        bad = read_client.get(URL, {"hours": 24, "compare": "last_year"})
    assert "previous" not in plain and "changes" not in plain
    assert bad.status_code == 400
    assert [error["field"] for error in bad.json()["errors"]] == ["compare"]
