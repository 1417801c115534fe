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
