"""What an alert rule may say (issue 18), defined once: the metrics it can watch, the ranges of
its numbers and the rules that tie its condition to its threshold or minimum change.

The model (its validators, `clean` for the admin, its CheckConstraints), the REST API's input
serializer and the OpenAPI schema all read them from here. Pure Python: no models, no database.
The evaluation that applies them: conversations.alert_evaluation.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from conversations.analytics.metrics import METRICS, Metric, Unit


class Condition(models.TextChoices):
    BELOW = "below", "below the threshold"
    ABOVE = "above", "above the threshold"
    DROP = "drop", "drop against the baseline"
    RISE = "rise", "rise against the baseline"


class AlertState(models.TextChoices):
    OK = "ok", "ok"
    FIRING = "firing", "firing"


class EventState(models.TextChoices):
    """What a notification says: the rule started firing, or it resolved."""

    FIRING = "firing", "firing"
    RESOLVED = "resolved", "resolved"


class DeliveryKind(models.TextChoices):
    EMAIL = "email", "email"
    WEBHOOK = "webhook", "webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed (retries used up)"


THRESHOLD_CONDITIONS = (Condition.BELOW, Condition.ABOVE)
CHANGE_CONDITIONS = (Condition.DROP, Condition.RISE)


def _by_summary_path(path: str) -> Metric:
    [found] = [metric for metric in METRICS.values() if path in metric.summary]
    return found


# The figures a rule can watch, by their path in the summary answer (`GET /api/analytics`).
# The list, no more: each needs its evaluation and its test of significance.
ALERT_METRICS: dict[str, Metric] = {
    path: _by_summary_path(path)
    for path in (
        "ai_resolution_rate",
        "avg_csat",
        "csat.score",
        "total_conversations",
        "escalated_conversations",
        "response_time.p95_ms",
        "confirmed_resolution_rate",
        "abandonment_rate",
        "repeat_contact.durable_resolution_rate",
    )
}
# drop/rise need a test of the change: rates and means have one (`Metric.compare`), counts the
# volume test (metrics.volume_change). A percentile has none.
CHANGE_METRICS = frozenset(
    path for path, metric in ALERT_METRICS.items() if metric.compare is not None or metric.unit is Unit.COUNT
)
METRIC_CHOICES = [(path, path) for path in ALERT_METRICS]

NAME_MAX_LENGTH = 200
WINDOW_MINUTES = (15, 7 * 24 * 60)  # 15 minutes to 7 days
# Upper bounds of the other durations: beyond them a rule is a mistake, not a choice.
MAX_FOR_MINUTES = 7 * 24 * 60  # the condition held for up to a week
MAX_RENOTIFY_MINUTES = 30 * 24 * 60  # a reminder at most every 30 days (0: none)
MAX_DELAY_MINUTES = 24 * 60  # late data: the window may end up to a day before now
MAX_MIN_SAMPLE_SIZE = 1_000_000
DEFAULT_MIN_SAMPLE_SIZE = 30
MAX_EMAILS = 20
MAX_WEBHOOKS = 10
EMAIL_MAX_LENGTH = 254
URL_MAX_LENGTH = 2000
WEBHOOK_SCHEMES = ["http", "https"]
# threshold and min_change: up to 2 decimals (CSAT means are shown with 2), 12 digits.
NUMBER_MAX_DIGITS, NUMBER_DECIMAL_PLACES = 12, 2

# The values a threshold can sensibly take, by the metric's unit: a rate is 0..100 points, a
# mean CSAT 1..5; counts and milliseconds are not negative. A threshold outside can never be
# crossed (or always is), which is a mistake worth a 400.
THRESHOLD_RANGES: dict[Unit, tuple[Decimal, Decimal | None]] = {
    Unit.PERCENT: (Decimal(0), Decimal(100)),
    Unit.SCORE: (Decimal(1), Decimal(5)),
    Unit.COUNT: (Decimal(0), None),
    Unit.MILLISECONDS: (Decimal(0), None),
}
# The largest change that can happen: 100 points for a rate, 4 for a mean CSAT (1 to 5). A
# count's change is in percent of the baseline, which has no top (a rise from 1 to 50 is 4,900%).
MAX_CHANGE: dict[Unit, Decimal | None] = {
    Unit.PERCENT: Decimal(100),
    Unit.SCORE: Decimal(4),
    Unit.COUNT: None,
}


def change_unit(metric: str) -> str:
    """What `min_change` counts for this metric (the issue's words)."""
    unit = ALERT_METRICS[metric].unit
    return {Unit.PERCENT: "points", Unit.COUNT: "percent"}.get(unit, "the metric's unit")


def condition_errors(
    *, metric: str, condition: str, threshold: Decimal | None, min_change: Decimal | None
) -> dict[str, str]:
    """What is wrong with a rule's metric, condition, threshold and min_change together, by
    field (empty when nothing). The one copy of these rules: the API and the admin both ask.

    Strict: a value that the condition would not use is refused rather than ignored, so that a
    client that meant another condition finds out.
    """
    if metric not in ALERT_METRICS or condition not in Condition.values:
        return {}  # the field's own check names it
    unit = ALERT_METRICS[metric].unit
    if condition in THRESHOLD_CONDITIONS:
        if min_change is not None:
            return {"min_change": f"Only for drop and rise; {condition} compares with threshold."}
        if threshold is None:
            return {"threshold": f"Required for {condition}."}
        least, most = THRESHOLD_RANGES[unit]
        if threshold < least or (most is not None and threshold > most):
            span = f"between {least} and {most}" if most is not None else f"at least {least}"
            return {"threshold": f"Must be {span} for {metric}."}
        return {}
    if threshold is not None:
        return {"threshold": f"Only for below and above; {condition} needs min_change."}
    if metric not in CHANGE_METRICS:
        return {"condition": f"{metric} has no test of a change: use below or above."}
    if min_change is None:
        return {"min_change": f"Required for {condition} ({change_unit(metric)})."}
    most = MAX_CHANGE[unit]
    if min_change <= 0 or (most is not None and min_change > most):
        span = f"more than 0 and at most {most}" if most is not None else "more than 0"
        return {"min_change": f"Must be {span} for {metric} ({change_unit(metric)})."}
    return {}


def threshold_check() -> models.Q:
    """condition_errors's combinations as a CheckConstraint's condition: the database's own
    guard (its ranges by unit stay in Python, where the metric's unit is known)."""
    return models.Q(
        condition__in=THRESHOLD_CONDITIONS, threshold__isnull=False, min_change__isnull=True
    ) | models.Q(
        condition__in=CHANGE_CONDITIONS,
        threshold__isnull=True,
        min_change__gt=0,
        metric__in=sorted(CHANGE_METRICS),
    )
