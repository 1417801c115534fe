"""One pass of the alert rules (issue 18): judge every enabled rule, record what changed, then
tell the recipients.

    evaluate_alerts(now)
      ├─ one transaction, under a PostgreSQL advisory lock (two evaluators never judge at once):
      │    read each rule's window (and its baseline weeks) → judge → the rule's next state →
      │    an AlertEvent per notification, an AlertDelivery per recipient (the outbox)
      └─ deliver_pending(): claim the unsent deliveries (a lease), send them concurrently
         (email, signed webhook; retries with backoff), record each result

The notifications are written in the transaction that changes the rules' states and sent after
it commits, so a second evaluator waiting on the lock sees the new states and notifies nothing,
a dead receiver never holds up the judging of the other rules, and a crash between the two
leaves the deliveries pending for the next pass.

What a rule may say: conversations.alert_rules. Its writes: conversations.alerts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Min, Q
from django.template.loader import render_to_string
from django.utils import timezone

from conversations import formatting
from conversations.alert_rules import (
    ALERT_METRICS,
    AlertState,
    Condition,
    DeliveryKind,
    DeliveryStatus,
    EventState,
    change_unit,
)
from conversations.analytics import selectors, statistics
from conversations.analytics.metrics import Metric, Unit, relative_change
from conversations.analytics.query import Filters, Period
from conversations.forms import dashboard_url_covering
from conversations.models import AlertDelivery, AlertEvent, AlertRule, BotVersion, Conversation

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock(class, 0): one evaluation at a time (the other lock classes: services,
# rollups).
_ALERTS_LOCK_CLASS = 0x5345
WEEK = timedelta(hours=168)  # baseline weeks are 168 h steps in UTC, whatever the local DST
MAX_BASELINE_WEEKS = 4
SIGNIFICANCE = 0.01  # drop/rise fire on a one-sided p below this
# A durable resolution is known only REPEAT_CONTACT_DAYS after the conversation (until then
# it is not settled): such a rule's window ends that much earlier than the others'.
_SETTLING_METRICS = frozenset({"repeat_contact.durable_resolution_rate"})

WEBHOOK_TIMEOUT = 5.0  # seconds, each attempt
# Seconds before retry 1, 2 and 3 (each ± 25% jitter, so many rules' retries do not align).
RETRY_DELAYS: Sequence[float] = (1.0, 2.0, 4.0)
# How long a sender holds the deliveries it claimed: longer than all attempts of one delivery
# can take (4 × the SMTP or webhook timeout, plus the delays), so another pass leaves them be.
LEASE = timedelta(minutes=5)
SENDERS = 8  # deliveries sent at once
SIGNATURE_HEADER = "X-SupportAnalytics-Signature"


# --- Judging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """What one evaluation saw of a rule: its value, and whether the condition holds (None
    when it cannot be judged: no value, a sample under min_sample_size, no baseline)."""

    window: Period
    value: Decimal | None
    sample_size: int
    holds: bool | None
    baseline: Decimal | None = None
    baseline_weeks: int | None = None
    change: Decimal | None = None
    p_value: float | None = None


def rule_filters(rule: AlertRule) -> Filters:
    return Filters(
        channel=rule.channel or None,
        bot_version=rule.bot_version or None,
        topic=rule.topic or None,
        escalation_reason=rule.escalation_reason or None,
    )


def rule_window(rule: AlertRule, *, now: datetime) -> Period:
    """[end − window, end): end is now less the rule's delay (late data), and, for durable
    resolution, less REPEAT_CONTACT_DAYS (before then no conversation in it is settled)."""
    end = now - timedelta(minutes=rule.delay_minutes)
    if rule.metric in _SETTLING_METRICS:
        end -= timedelta(days=settings.REPEAT_CONTACT_DAYS)
    return Period(start=end - timedelta(minutes=rule.window_minutes), end=end)


def baseline_windows(window: Period, *, history_start: datetime | None) -> list[Period]:
    """The same window 1 to 4 weeks (168 h) earlier, those that lie wholly after the start of
    the history: none when the history is younger than a week and a window."""
    if history_start is None:
        return []
    shifted = (
        Period(start=window.start - weeks * WEEK, end=window.end - weeks * WEEK)
        for weeks in range(1, MAX_BASELINE_WEEKS + 1)
    )
    return [period for period in shifted if period.start >= history_start]


def _value(metric: Metric, totals) -> Decimal | None:
    value = metric.value_of(totals)
    return None if value is None else Decimal(value)


def judge(rule: AlertRule, *, window: Period, current, baseline: Sequence) -> Judgement:
    """The rule's condition on the window's Totals (`current`) and, for drop/rise, the Totals
    of its baseline weeks, pooled (their counts added up before any rate is taken)."""
    metric = ALERT_METRICS[rule.metric]
    value, sample_size = _value(metric, current), metric.sample_size(current)
    seen = Judgement(window=window, value=value, sample_size=sample_size, holds=None)
    if value is None or sample_size < rule.min_sample_size:
        return seen
    if rule.condition == Condition.BELOW:
        return replace(seen, holds=value < rule.threshold)
    if rule.condition == Condition.ABOVE:
        return replace(seen, holds=value > rule.threshold)
    if not baseline:
        return seen  # no history to compare with: never fires
    pooled = sum(baseline[1:], baseline[0])
    weeks = len(baseline)
    increase = rule.condition == Condition.RISE
    if metric.unit is Unit.COUNT:
        # The baseline is the weeks' mean count; the change is in percent of it. The test:
        # the exact conditional test of two Poisson rates, the weeks pooled as one window
        # `weeks` times as long.
        count_b, count_a = int(value), int(_value(metric, pooled))
        baseline_value = (Decimal(count_a) / weeks).quantize(Decimal("0.01"))
        change = relative_change(count_b, Decimal(count_a) / weeks)
        p_value = statistics.volume_one_sided_p_value(
            count_a=count_a,
            count_b=count_b,
            length_a=weeks * (window.end - window.start),
            length_b=window.end - window.start,
            increase=increase,
        )
        if change is None and p_value is not None:
            # From nothing: any rise is larger than any percent, and nothing can drop.
            moved = increase and count_b > 0
        else:
            moved = change is not None and (
                change >= rule.min_change if increase else -change >= rule.min_change
            )
    else:
        # Rates (points) and means (the metric's unit): the registry's two-sample test of the
        # metric, made one-sided in the rule's direction.
        found = metric.compare(pooled, current)
        baseline_value = _value(metric, pooled)
        if found.difference is None:
            return replace(seen, baseline=baseline_value, baseline_weeks=weeks)
        scale = 100 if metric.unit is Unit.PERCENT else 1
        change = (Decimal(repr(found.difference)) * scale).quantize(Decimal("0.01"))
        p_value = statistics.one_sided_p_value(found, increase=increase)
        moved = change >= rule.min_change if increase else -change >= rule.min_change
    return Judgement(
        window=window,
        value=value,
        sample_size=sample_size,
        holds=bool(moved and p_value is not None and p_value < SIGNIFICANCE),
        baseline=baseline_value,
        baseline_weeks=weeks,
        change=change,
        p_value=p_value,
    )


def history_start(filters: Filters, *, first_conversation: datetime | None) -> datetime | None:
    """Where the rule's history starts: the first conversation stored, and for a bot version
    no earlier than it was first seen (a version's weeks before its release are no baseline).
    Topics, channels and reasons have no such record (a topic's row is made when it is first
    posted, which an import of older files precedes), so theirs is the store's."""
    if filters.bot_version is None or first_conversation is None:
        return first_conversation
    first_seen = (
        BotVersion.objects.filter(version=filters.bot_version).values_list("first_seen", flat=True).first()
    )
    return None if first_seen is None else max(first_conversation, first_seen)


# --- State ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A notification to send for a rule: the state it announces, a reminder or not."""

    state: EventState
    reminder: bool = False


def next_state(rule: AlertRule, judgement: Judgement, *, now: datetime) -> Notice | None:
    """Move the rule on by what this evaluation saw (its fields are set, not saved) and say
    what to notify, if anything.

    ok → firing once the condition has held for_minutes; firing → ok when it no longer holds
    (resolved); a reminder every renotify_minutes while it fires and holds. A rule that cannot
    be judged stays as it is, except that an ok rule's "held since" starts over.
    """
    rule.last_evaluated_at = now
    if judgement.holds is None:
        if rule.state == AlertState.OK:
            rule.condition_since = None
        return None
    if not judgement.holds:
        rule.condition_since = None
        if rule.state == AlertState.FIRING:
            rule.state, rule.state_changed_at, rule.last_notified_at = AlertState.OK, now, None
            return Notice(EventState.RESOLVED)
        return None
    if rule.condition_since is None:
        rule.condition_since = now
    if rule.state == AlertState.OK:
        if now - rule.condition_since >= timedelta(minutes=rule.for_minutes):
            rule.state, rule.state_changed_at, rule.last_notified_at = AlertState.FIRING, now, now
            return Notice(EventState.FIRING)
        return None
    due = rule.last_notified_at is None or now - rule.last_notified_at >= timedelta(
        minutes=rule.renotify_minutes
    )
    if rule.renotify_minutes and due:
        rule.last_notified_at = now
        return Notice(EventState.FIRING, reminder=True)
    return None


# --- The pass ---------------------------------------------------------------------------------


# What the evaluation keeps on a rule (next_state sets them).
_STATE_FIELDS = ("state", "state_changed_at", "condition_since", "last_notified_at", "last_evaluated_at")


@dataclass
class PassResult:
    rules: int = 0
    events: list[AlertEvent] = field(default_factory=list)
    errors: int = 0  # rules that could not be evaluated (logged)
    delivered: int = 0
    failed: int = 0


def evaluate_alerts(*, now: datetime | None = None) -> PassResult:
    """One pass: judge every enabled rule as of `now` (default: this minute), record the
    notifications, then deliver every pending one. For the scheduler's task every minute and
    `manage.py evaluate_alerts`."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    result = judge_rules(now=now)
    delivered = deliver_pending()
    result.delivered, result.failed = delivered.delivered, delivered.failed
    return result


@transaction.atomic
def judge_rules(*, now: datetime) -> PassResult:
    """Judge every enabled rule and write what changed, in one transaction under the alerts'
    advisory lock: a second evaluator waits here, then sees the states this one wrote."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_ALERTS_LOCK_CLASS])
    # Locked too, so that an edit (which resets a rule) waits for the pass instead of being
    # overwritten by a state judged on the old rule.
    rules = list(AlertRule.objects.filter(enabled=True).select_for_update().order_by("id"))
    result = PassResult(rules=len(rules))
    if not rules:
        return result
    first_conversation = Conversation.objects.aggregate(first=Min("timestamp"))["first"]
    reads: dict[tuple[Filters, tuple[Period, ...]], list] = {}
    starts: dict[str | None, datetime | None] = {}  # by bot version
    for rule in rules:
        before = {name: getattr(rule, name) for name in _STATE_FIELDS}
        try:
            # A savepoint: a rule that cannot be evaluated (a bug, a read that fails) is logged
            # and left as it was, and the other rules are still judged.
            with transaction.atomic():
                filters = rule_filters(rule)
                window = rule_window(rule, now=now)
                baseline: list[Period] = []
                if rule.condition in (Condition.DROP, Condition.RISE):
                    if filters.bot_version not in starts:
                        starts[filters.bot_version] = history_start(
                            filters, first_conversation=first_conversation
                        )
                    baseline = baseline_windows(window, history_start=starts[filters.bot_version])
                periods = (window, *baseline)
                # Rules that watch the same traffic over the same window share one read.
                if (filters, periods) not in reads:
                    reads[filters, periods] = selectors.windows_totals(periods=periods, filters=filters)
                current, *weeks = reads[filters, periods]
                judgement = judge(rule, window=window, current=current, baseline=weeks)
                notice = next_state(rule, judgement, now=now)
                if notice is not None:
                    result.events.append(_record(rule, judgement, notice, now=now))
        except Exception:
            logger.exception("Alert rule %s (%s) could not be evaluated", rule.pk, rule.name)
            for name, value in before.items():
                setattr(rule, name, value)
            result.errors += 1
    AlertRule.objects.bulk_update(rules, list(_STATE_FIELDS))
    return result


def _record(rule: AlertRule, judgement: Judgement, notice: Notice, *, now: datetime) -> AlertEvent:
    event = AlertEvent.objects.create(
        rule=rule,
        rule_name=rule.name,
        at=now,
        state=notice.state,
        reminder=notice.reminder,
        metric=rule.metric,
        condition=rule.condition,
        value=judgement.value,
        threshold=rule.threshold,
        min_change=rule.min_change,
        baseline=judgement.baseline,
        baseline_weeks=judgement.baseline_weeks,
        change=judgement.change,
        p_value=judgement.p_value,
        sample_size=judgement.sample_size,
        window_start=judgement.window.start,
        window_end=judgement.window.end,
        filters={name: value for name, value in asdict(rule_filters(rule)).items() if value},
    )
    body = json.dumps(webhook_payload(event), ensure_ascii=False, separators=(",", ":"))
    signature = sign(body.encode(), secret=rule.webhook_secret)
    AlertDelivery.objects.bulk_create(
        [AlertDelivery(event=event, kind=DeliveryKind.EMAIL, target=email) for email in rule.emails]
        + [
            AlertDelivery(event=event, kind=DeliveryKind.WEBHOOK, target=url, body=body, signature=signature)
            for url in rule.webhooks
        ]
    )
    logger.info("Alert %s: %s (%s = %s)", event.state, rule.name, rule.metric, event.value)
    return event


# --- What a notification says -------------------------------------------------------------------


def sign(body: bytes, *, secret: str) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body with the rule's secret (as GitHub's and
    Stripe's webhooks: the receiver recomputes it and compares in constant time)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def dashboard_url(event: AlertEvent) -> str:
    filters = Filters(**{name: event.filters.get(name) for name in Filters.__dataclass_fields__})
    return settings.SITE_URL + dashboard_url_covering(
        start=event.window_start, end=event.window_end, filters=filters
    )


# What a metric's sample counts (Metric.sample_size), for the words of a notification.
_SAMPLE_NOUNS = {
    "avg_csat": "ratings",
    "csat.score": "ratings",
    "repeat_contact.durable_resolution_rate": "settled conversations",
}


def describe(event: AlertEvent) -> dict[str, str]:
    """The words of a notification, for the email and the webhook's `text`: figures as the
    dashboard writes them."""
    unit = ALERT_METRICS[event.metric].unit
    value = "no data" if event.value is None else formatting.in_unit(event.value, unit)
    if event.condition in (Condition.BELOW, Condition.ABOVE):
        against = f"threshold: {event.condition} {formatting.in_unit(event.threshold, unit)}"
    elif event.baseline is None:
        against = "no baseline"
    else:
        weeks = "week" if event.baseline_weeks == 1 else f"{event.baseline_weeks} weeks"
        # A count's baseline is the weeks' mean: a fraction.
        baseline = (
            formatting.number(event.baseline, 1)
            if unit is Unit.COUNT
            else formatting.in_unit(event.baseline, unit)
        )
        change = ""
        if event.change is not None:
            suffix = {"points": " points", "percent": "%"}.get(change_unit(event.metric), "")
            change = (
                f", change {formatting.signed(event.change, suffix, places=2 if unit is Unit.SCORE else 1)}"
            )
        p_value = "" if event.p_value is None else f", {formatting.p_value(event.p_value)}"
        against = f"baseline {baseline} (the same window in the {weeks} before, pooled{change}{p_value})"
    headline = (
        "RESOLVED" if event.state == EventState.RESOLVED else ("STILL FIRING" if event.reminder else "FIRING")
    )
    scope = (
        ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in event.filters.items())
        or "all conversations"
    )
    window = f"{event.window_start:%Y-%m-%d %H:%M}–{event.window_end:%Y-%m-%d %H:%M} UTC"
    return {
        "headline": headline,
        # One line: a header with a line break in it is refused (header injection).
        "subject": f"[Support Analytics] {headline}: {' '.join(event.rule_name.split())}",
        "figure": f"{event.metric} = {value}",
        "against": against,
        "sample": f"{event.sample_size} {_SAMPLE_NOUNS.get(event.metric, 'conversations')} in the window",
        "scope": scope,
        "window": window,
    }


def webhook_payload(event: AlertEvent) -> dict[str, Any]:
    """The webhook's JSON (issue 18's shape). `text` makes a Slack or Mattermost incoming
    webhook URL work as it is."""
    words = describe(event)
    url = dashboard_url(event)
    return {
        "event_id": str(event.id),
        "rule": {"id": event.rule_id, "name": event.rule_name},
        "state": event.state,
        "metric": event.metric,
        "value": _number(event.value),
        "threshold": _number(event.threshold),
        "baseline": _number(event.baseline),
        "sample_size": event.sample_size,
        "window": {
            "start": event.window_start.isoformat().replace("+00:00", "Z"),
            "end": event.window_end.isoformat().replace("+00:00", "Z"),
        },
        "filters": event.filters,
        "dashboard_url": url,
        "text": (
            f"{words['headline']}: {event.rule_name}: {words['figure']}, {words['against']}; "
            f"{words['sample']} ({words['scope']}, {words['window']}). {url}"
        ),
    }


def email_message(delivery: AlertDelivery) -> EmailMultiAlternatives:
    event = delivery.event
    context = {"event": event, "words": describe(event), "dashboard_url": dashboard_url(event)}
    if event.rule_id is not None:
        context["rule_url"] = settings.SITE_URL + f"/admin/conversations/alertrule/{event.rule_id}/change/"
    message = EmailMultiAlternatives(
        subject=context["words"]["subject"],
        body=render_to_string("email/alert.txt", context),
        to=[delivery.target],
        headers={"X-SupportAnalytics-Event": str(event.id)},
    )
    message.attach_alternative(render_to_string("email/alert.html", context), "text/html")
    return message


# --- Delivery ----------------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    delivered: int = 0
    failed: int = 0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect of a POST would be followed as a GET without the body: a failure to report.
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def _post_webhook(delivery: AlertDelivery) -> None:
    request = urllib.request.Request(
        delivery.target,
        data=delivery.body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "SupportAnalytics-Alerts/1",
            SIGNATURE_HEADER: delivery.signature,
            "X-SupportAnalytics-Event": str(delivery.event_id),
        },
    )
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT) as response:
            response.read(1024)
    except urllib.error.HTTPError as error:
        # A client error other than a timeout or a rate limit will not go away by retrying.
        retry = error.code >= 500 or error.code in (408, 429)
        raise DeliveryFailed(f"HTTP {error.code} {error.reason}", retry=retry) from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryFailed(f"{type(error).__name__}: {reason}", retry=True) from error


def _send(job: tuple[AlertDelivery, EmailMultiAlternatives | None]) -> tuple[int, bool, int, str]:
    """Send one delivery, retrying up to len(RETRY_DELAYS) times: (id, sent, attempts, error).
    Runs on a sender thread: no database here."""
    delivery, message = job
    error = ""
    for attempt in range(len(RETRY_DELAYS) + 1):
        if attempt:
            delay = RETRY_DELAYS[attempt - 1]
            time.sleep(delay * random.uniform(0.75, 1.25))
        try:
            if message is not None:
                message.send()
            else:
                _post_webhook(delivery)
            return delivery.pk, True, attempt + 1, ""
        except DeliveryFailed as failure:
            error = str(failure)
            if not failure.retry:
                return delivery.pk, False, attempt + 1, error
        except Exception as failure:  # SMTP and socket errors: the server may be back soon
            error = f"{type(failure).__name__}: {failure}"
    return delivery.pk, False, len(RETRY_DELAYS) + 1, error


def _claim(*, clock: datetime) -> list[AlertDelivery]:
    """The pending deliveries no other sender holds, leased to this one."""
    with transaction.atomic():
        claimed = list(
            AlertDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=DeliveryStatus.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=clock))
            .select_related("event")
            .order_by("id")
        )
        AlertDelivery.objects.filter(pk__in=[delivery.pk for delivery in claimed]).update(
            claimed_until=clock + LEASE
        )
    return claimed


def deliver_pending() -> DeliveryResult:
    """Send every pending delivery no other sender holds, SENDERS at a time, and record each
    result: delivered, or failed with the last error after the retries."""
    claimed = _claim(clock=timezone.now())
    result = DeliveryResult()
    if not claimed:
        return result
    jobs = [
        (delivery, email_message(delivery) if delivery.kind == DeliveryKind.EMAIL else None)
        for delivery in claimed
    ]
    by_id = {delivery.pk: delivery for delivery in claimed}
    with ThreadPoolExecutor(max_workers=min(SENDERS, len(jobs)), thread_name_prefix="alert-delivery") as pool:
        outcomes = list(pool.map(_send, jobs))
    for delivery_id, sent, attempts, error in outcomes:
        delivery = by_id[delivery_id]
        AlertDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.DELIVERED if sent else DeliveryStatus.FAILED,
            attempts=attempts,
            last_error=error[:2000],
            delivered_at=timezone.now() if sent else None,
            claimed_until=None,
        )
        if sent:
            result.delivered += 1
        else:
            result.failed += 1
            logger.warning(
                "Alert delivery failed after %d attempts: %s to %s (%s): %s",
                attempts,
                delivery.kind,
                # A webhook URL may hold its own secret (Slack's do): its host only.
                urlsplit(delivery.target).hostname
                if delivery.kind == DeliveryKind.WEBHOOK
                else "an email address",
                delivery.event.rule_name,
                error,
            )
    return result
