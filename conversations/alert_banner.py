"""The banner of firing alerts on the staff pages (issue 18): while a rule fires, the dashboard
names it, with a link to the dashboard range that covers the window it fired on (its channel,
version and escalation reason filters) and a link to the rule in the admin.

`firing_alerts` reads (plain data); `banner` writes what the page shows. A module of its own
beside the analytics selectors: the banner reads alert rules and events, not conversations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F
from django.urls import reverse

from conversations import formatting
from conversations.alert_evaluation import rule_filters
from conversations.alert_rules import (
    ALERT_METRICS,
    THRESHOLD_CONDITIONS,
    AlertState,
    EventState,
    change_unit,
)
from conversations.analytics.metrics import Unit
from conversations.analytics.query import Filters
from conversations.forms import dashboard_url_covering, days_covering
from conversations.models import AlertEvent, AlertRule


@dataclass(frozen=True)
class FiringEvent:
    """The latest "firing" notification of a rule (its start, or a reminder): what the
    evaluation saw and over which window."""

    at: datetime
    value: Decimal | None
    threshold: Decimal | None
    min_change: Decimal | None
    baseline: Decimal | None
    sample_size: int
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class FiringAlert:
    rule_id: int
    rule_name: str
    metric: str
    condition: str
    # The rule's filters: a firing rule has not been edited since it fired (an edit resets it
    # to ok), so they are its event's filters too.
    filters: Filters
    event: FiringEvent | None  # None only if the rule's events were deleted


def firing_alerts() -> list[FiringAlert]:
    """Every rule whose state is "firing", the most recent first, each with its latest firing
    event. One query when none fires (every staff page asks), two otherwise, whatever the
    number of rules."""
    # Uses index: alert_rule_firing_idx (partial, state = 'firing').
    rules = list(
        AlertRule.objects.filter(state=AlertState.FIRING)
        .order_by(F("state_changed_at").desc(nulls_last=True), "id")
        .only("name", "metric", "condition", "channel", "bot_version", "topic", "escalation_reason")
    )
    if not rules:
        return []
    # DISTINCT ON (rule_id): each rule's newest firing event, through the rule_id index.
    latest = {
        event.rule_id: event
        for event in AlertEvent.objects.filter(rule__in=[rule.pk for rule in rules], state=EventState.FIRING)
        .order_by("rule_id", "-at")
        .distinct("rule_id")
    }
    return [
        FiringAlert(
            rule_id=rule.pk,
            rule_name=rule.name,
            metric=rule.metric,
            condition=rule.condition,
            filters=rule_filters(rule),
            event=_firing_event(latest.get(rule.pk)),
        )
        for rule in rules
    ]


def _firing_event(event: AlertEvent | None) -> FiringEvent | None:
    if event is None:
        return None
    return FiringEvent(
        at=event.at,
        value=event.value,
        threshold=event.threshold,
        min_change=event.min_change,
        baseline=event.baseline,
        sample_size=event.sample_size,
        window_start=event.window_start,
        window_end=event.window_end,
    )


# --- What the page shows -------------------------------------------------------------------


def figure(metric: str, value: Decimal | None) -> str:
    """A value of an alert's metric as the dashboard writes that unit."""
    return formatting.in_unit(value, ALERT_METRICS[metric].unit)


def _change(metric: str, min_change: Decimal | None) -> str:
    """A rule's min_change in what it counts: points, percent, or the unit (a mean CSAT)."""
    places = 2 if ALERT_METRICS[metric].unit is Unit.SCORE else 1
    suffix = {"points": " pp", "percent": "%"}.get(change_unit(metric), "")
    return formatting.number(min_change, places) + suffix


@dataclass(frozen=True)
class BannerLine:
    rule_id: int
    rule_name: str
    reading: str  # "ai_resolution_rate 52.3% (threshold: below 60.0%; n = 412)"
    scope: str  # "channel web · bot 2.1", or ""
    rule_url: str
    dashboard_url: str  # "" when there is no event to take a window from
    window_label: str  # the dashboard range's days: "Mar 13, 2026 – Mar 14, 2026"


def _reading(alert: FiringAlert) -> str:
    event = alert.event
    if event is None:
        return f"{alert.metric} (no evaluation recorded)"
    if alert.condition in THRESHOLD_CONDITIONS:
        reference = f"threshold: {alert.condition} {figure(alert.metric, event.threshold)}"
    else:
        reference = (
            f"baseline {figure(alert.metric, event.baseline)}: "
            f"a {alert.condition} of at least {_change(alert.metric, event.min_change)}"
        )
    return f"{alert.metric} {figure(alert.metric, event.value)} ({reference}; n = {event.sample_size:,})"


def _scope(alert: FiringAlert) -> str:
    filters = alert.filters
    parts = [
        ("channel", filters.channel),
        ("bot", filters.bot_version),
        ("topic", filters.topic),
        ("escalated for", filters.escalation_reason),
    ]
    return " · ".join(f"{label} {value}" for label, value in parts if value)


def banner(*, tz: ZoneInfo | None = None) -> list[BannerLine]:
    """The banner's lines, one per firing rule (empty: no banner)."""
    tz = tz or ZoneInfo(settings.ANALYTICS_TIME_ZONE)
    lines = []
    for alert in firing_alerts():
        dashboard_url = window_label = ""
        if alert.event is not None:
            first, last = days_covering(start=alert.event.window_start, end=alert.event.window_end, tz=tz)
            dashboard_url = dashboard_url_covering(
                start=alert.event.window_start, end=alert.event.window_end, filters=alert.filters
            )
            window_label = f"{first:%b %-d, %Y}" + ("" if first == last else f" – {last:%b %-d, %Y}")
        lines.append(
            BannerLine(
                rule_id=alert.rule_id,
                rule_name=alert.rule_name,
                reading=_reading(alert),
                scope=_scope(alert),
                rule_url=reverse("admin:conversations_alertrule_change", args=[alert.rule_id]),
                dashboard_url=dashboard_url,
                window_label=window_label,
            )
        )
    return lines
