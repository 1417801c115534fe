"""Alert rules' writes (issue 18): create, update, delete. The REST API and the admin both come
here, so that the filters are normalized, a webhook secret is made and an edit resets the
rule's state the same way whichever road a change takes. What a rule may say:
conversations.alert_rules; their evaluation: conversations.alert_evaluation.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from conversations.alert_rules import AlertState
from conversations.models import AlertRule, normalize_topic

# The fields a client or staff member sets; the rest (secret, state, times) the services keep.
EDITABLE_FIELDS = (
    "name",
    "metric",
    "condition",
    "threshold",
    "min_change",
    "window_minutes",
    "min_sample_size",
    "for_minutes",
    "renotify_minutes",
    "delay_minutes",
    "channel",
    "bot_version",
    "topic",
    "escalation_reason",
    "emails",
    "webhooks",
    "enabled",
)


@dataclass(frozen=True)
class AlertRuleSaved:
    rule: AlertRule
    # The secret made by this write (the rule's first webhooks), to be shown this once; else None.
    new_webhook_secret: str | None = None


def _normalized(values: dict[str, Any]) -> dict[str, Any]:
    """The filters as the conversations store them (channel, bot version: trimmed) and as the
    dashboard and API filters compare them (topic, escalation reason: `normalize_topic`)."""
    unknown = set(values) - set(EDITABLE_FIELDS)
    assert not unknown, f"Not editable: {sorted(unknown)}"
    normalized = dict(values)
    for name in ("channel", "bot_version"):
        if name in normalized:
            normalized[name] = (normalized[name] or "").strip()
    for name in ("topic", "escalation_reason"):
        if name in normalized:
            normalized[name] = normalize_topic(normalized[name] or "")
    return normalized


def _give_secret_if_needed(rule: AlertRule) -> str | None:
    if rule.webhooks and not rule.webhook_secret:
        rule.webhook_secret = secrets.token_hex(32)
        return rule.webhook_secret
    return None


@transaction.atomic
def alert_rule_create(*, values: dict[str, Any]) -> AlertRuleSaved:
    """Store a new rule (state ok). Validated again here (`full_clean`: the model's validators,
    `AlertRule.clean` and the constraints), so no road stores a rule the API would refuse."""
    rule = AlertRule(**_normalized(values))
    new_secret = _give_secret_if_needed(rule)
    rule.full_clean()
    rule.save()
    return AlertRuleSaved(rule=rule, new_webhook_secret=new_secret)


@transaction.atomic
def alert_rule_update(*, rule_id: int, values: dict[str, Any]) -> AlertRuleSaved:
    """Change a rule's fields (those given). A change that alters anything resets the rule to
    ok, without a notification: its old state spoke of another rule. Raises
    AlertRule.DoesNotExist for an unknown id.

    The row is locked for the change, so that a running evaluation cannot write a state of
    the old rule over the reset.
    """
    rule = AlertRule.objects.select_for_update().get(pk=rule_id)
    values = _normalized(values)
    changed = [name for name, value in values.items() if getattr(rule, name) != value]
    for name, value in values.items():
        setattr(rule, name, value)
    new_secret = _give_secret_if_needed(rule)
    rule.full_clean()
    if changed:
        if rule.state != AlertState.OK:
            rule.state = AlertState.OK
            rule.state_changed_at = timezone.now()
        # Whatever held or was notified spoke of the old rule: it starts over.
        rule.condition_since = rule.last_notified_at = None
        rule.save()
    return AlertRuleSaved(rule=rule, new_webhook_secret=new_secret)


def alert_rule_delete(*, rule_id: int) -> None:
    """Delete a rule. Raises AlertRule.DoesNotExist for an unknown id."""
    deleted, _ = AlertRule.objects.filter(pk=rule_id).delete()
    if not deleted:
        raise AlertRule.DoesNotExist(f"No alert rule with id {rule_id}.")
