"""Blocks of the analytics answers shared by the whole-payload tests."""


def unreported(count: int) -> dict:
    """The `outcomes` block of `count` conversations that report no outcome."""
    return {"confirmed": 0, "assumed": 0, "escalated": 0, "abandoned": 0, "unreported": count}


def no_repeat_contacts(conversations: int) -> dict:
    """The `repeat_contact` block of conversations without a customer id."""
    return {
        "window_days": 7,
        "settled": 0,
        "settled_ai_resolved": 0,
        "followed_up": 0,
        "repeat_contact_rate": None,
        "durable_resolution_rate": None,
        "customer_id_coverage": 0.0 if conversations else None,
    }


def honest_keys(total: int) -> dict:
    """The honest-resolution keys of a summary whose conversations report no outcome, reason
    or customer id."""
    zero_rate = 0.0 if total else None
    return {
        "outcomes": unreported(total),
        "outcome_coverage": zero_rate,
        "confirmed_resolution_rate": zero_rate,
        "assumed_resolution_rate": zero_rate,
        "abandonment_rate": zero_rate,
        "escalation_reasons": [],
        "repeat_contact": no_repeat_contacts(total),
    }


INTERVAL_SUFFIX = "_ci95"


def without_intervals(body):
    """An answer without its `X_ci95` keys: the whole-payload tests of the figures themselves
    (the intervals are checked against scipy and statsmodels in tests/test_intervals.py)."""
    if isinstance(body, dict):
        return {
            key: without_intervals(value) for key, value in body.items() if not key.endswith(INTERVAL_SUFFIX)
        }
    if isinstance(body, list):
        return [without_intervals(value) for value in body]
    return body


def intervals(body) -> dict[str, object]:
    """Every `X_ci95` of an answer, by its path ("csat.score_ci95", "buckets.0.avg_csat_ci95")."""
    found: dict[str, object] = {}

    def walk(value, path: str) -> None:
        items = (
            value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        )
        for key, child in items:
            name = f"{path}{key}"
            if isinstance(key, str) and key.endswith(INTERVAL_SUFFIX):
                found[name] = child
            else:
                walk(child, name + ".")

    walk(body, "")
    return found
