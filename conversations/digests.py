"""Digests (issue 18): a daily or weekly email to the subscribers kept in the admin, covering the
previous calendar day, or the previous Monday-to-Sunday week, in ANALYTICS_TIME_ZONE.

It holds the KPIs with their changes against the period of the same length before (marked as
the dashboard marks them: conversations.changes, the tests of `compare=previous`), the topics
that moved most, the knowledge gaps, the alerts of the period and a link to the dashboard's
range for it. The figures are the dashboard's (`selectors.dashboard`), read once per run.

`send_digests` is what `manage.py send_digest` and the scheduler call. A digest goes out once
per subscription and period, however often and however concurrently it runs: see `_send_one`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from conversations import formatting
from conversations.alert_rules import ALERT_METRICS, EventState
from conversations.analytics import selectors
from conversations.analytics.metrics import METRICS
from conversations.analytics.query import Filters, Granularity, Period
from conversations.analytics.selectors import Dashboard, TopicStats
from conversations.analytics.tables import VOLUME_PATH
from conversations.changes import Delta, change_delta
from conversations.forms import dashboard_url_covering
from conversations.models import AlertEvent, DigestFrequency, DigestSent, DigestSubscription

logger = logging.getLogger(__name__)

TOPIC_MOVES_LIMIT = 5
ALERTS_LIMIT = 20
# Tells auto-responders (out of office) not to answer (RFC 3834).
HEADERS = {"Auto-Submitted": "auto-generated"}


# --- The period -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestPeriod:
    """The local days a digest covers, and their window (`Period.whole_days`, as the dashboard's
    custom range of the same days reads them: 23 or 25 hours for a day with a DST change)."""

    frequency: DigestFrequency
    first_day: date
    last_day: date
    period: Period
    tz: ZoneInfo

    @property
    def label(self) -> str:
        """ "Tue 1 Dec 2026"; a week: "Mon 23 Nov – Sun 29 Nov 2026"."""
        last = f"{self.last_day:%a %-d %b %Y}"
        if self.first_day == self.last_day:
            return last
        first = self.first_day.strftime(
            "%a %-d %b" if self.first_day.year == self.last_day.year else "%a %-d %b %Y"
        )
        return f"{first} – {last}"

    @property
    def dashboard_url(self) -> str:
        """The dashboard's custom range of these days, as an absolute link (SITE_URL)."""
        return settings.SITE_URL + dashboard_url_covering(
            start=self.period.start, end=self.period.end, filters=Filters()
        )


def covered_period(*, frequency: str, now: datetime) -> DigestPeriod:
    """The period a digest sent at `now` covers: the local day before today (daily), or the last
    whole Monday-to-Sunday week before today's (weekly; sent on a Sunday, the week before that
    one, as the Sunday's own week has not ended). Raises ValueError for another frequency."""
    frequency = DigestFrequency(frequency)
    tz = ZoneInfo(settings.ANALYTICS_TIME_ZONE)
    today = now.astimezone(tz).date()
    if frequency == DigestFrequency.DAILY:
        first = last = today - timedelta(days=1)
    else:
        first = today - timedelta(days=today.weekday() + 7)
        last = first + timedelta(days=6)
    return DigestPeriod(
        frequency=frequency,
        first_day=first,
        last_day=last,
        period=Period.whole_days(first, last, tz=tz, now=now),
        tz=tz,
    )


# --- The contents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiLine:
    key: str
    label: str
    value: str  # as the dashboard writes it: "72.0%", "1,204", "$310.00", "—"
    previous: str  # the period before's
    delta: Delta  # the change, and whether it is news (its test)
    note: str = ""  # what it is made of, or why there is no figure


@dataclass(frozen=True)
class TopicMove:
    topic: str
    conversations: int
    previous_conversations: int
    volume: Delta  # the change in conversations, tested (adjusted across the topics)
    ai_resolution_rate: str
    previous_ai_resolution_rate: str
    rate: Delta  # the change of its AI resolution rate, tested the same way

    @property
    def significant(self) -> bool:
        return self.volume.significant or self.rate.significant


@dataclass(frozen=True)
class AlertLine:
    when: str  # its local time (ANALYTICS_TIME_ZONE): "Tue 1 Dec 14:05"
    rule_name: str
    state: str  # "firing", "still firing" (a reminder) or "resolved"
    value: str


@dataclass(frozen=True)
class DigestContents:
    digest_period: DigestPeriod
    conversations: int
    kpis: list[KpiLine]
    topics: list[TopicMove]  # those that moved most, significant ones first
    knowledge_gaps: list[TopicStats]
    alerts: list[AlertLine]  # the first ALERTS_LIMIT of the period, in time order
    alerts_total: int
    currency: str
    human_cost: Decimal  # per conversation: what the knowledge gaps' costs count
    repeat_contact_days: int
    admin_url: str  # where staff change the subscriptions


def digest_contents(*, digest_period: DigestPeriod) -> DigestContents:
    """What a digest says about its period, from one read of the dashboard's figures for the
    period and the one before it (`selectors.dashboard`, all traffic)."""
    dash = selectors.dashboard(
        period=digest_period.period, filters=Filters(), granularity=Granularity.DAY, tz=digest_period.tz
    )
    alerts, alerts_total = _alerts(digest_period)
    totals = dash.current.totals
    return DigestContents(
        digest_period=digest_period,
        conversations=totals.conversations,
        kpis=_kpis(dash),
        topics=_topic_moves(dash),
        knowledge_gaps=dash.knowledge_gaps,
        alerts=alerts,
        alerts_total=alerts_total,
        currency=dash.current.cost.currency,
        human_cost=dash.current.cost.human_cost_per_conversation,
        repeat_contact_days=totals.repeat_contact_window_days,
        admin_url=f"{settings.SITE_URL}{reverse('admin:conversations_digestsubscription_changelist')}",
    )


def _kpis(dash: Dashboard) -> list[KpiLine]:
    """The headline figures and the honest-resolution rates the dashboard shows, each with its
    change and its test (Dashboard.changes: what `compare=previous` answers)."""
    totals, before = dash.current.totals, dash.previous.totals
    currency = dash.current.cost.currency

    def money(value):
        return formatting.money(value, currency)

    def test(name: str) -> dict:
        return dash.changes[METRICS[name].summary[0]]

    def both(name: str) -> tuple:
        return getattr(totals, name), getattr(before, name)

    # The dashboard's sentences, as notes in a line: lower case.
    no_outcomes, not_durable = (
        reason[:1].lower() + reason[1:] for reason in formatting.honest_rates_missing(totals)
    )
    # key, label, (current, previous), shown as, kind of change, higher is, test, note, missing
    specs = [
        ("conversations", "Conversations", both("conversations"), formatting.number,
         "relative", "neutral", dash.changes[VOLUME_PATH], "", ""),
        ("ai_resolution_rate", "AI resolution rate", both("ai_resolution_rate"), formatting.rate, "points",
         "good", test("ai_resolution_rate"),
         f"{totals.ai_resolved:,} resolved · {totals.escalated:,} escalated", ""),
        # A count has no test of its own: its share is the AI resolution rate's other side.
        ("escalations", "Escalations", both("escalated"), formatting.number,
         "relative", "bad", None, "their share is tested as the AI resolution rate", ""),
        ("csat", "CSAT (4–5 ratings)", both("csat_score"), formatting.rate,
         "points", "good", test("csat_score"),
         f"mean {formatting.number(totals.avg_csat, 2)} of 5 · {totals.csat_responses:,} "
         f"rating{'' if totals.csat_responses == 1 else 's'}", ""),
        ("savings", "Estimated savings", (dash.current.cost.savings, dash.previous.cost.savings), money,
         "money", "good", None, f"vs {money(dash.current.cost.human_only_cost)} human-only", ""),
        ("confirmed_resolution_rate", "Confirmed resolution",
         both("confirmed_resolution_rate"), formatting.rate, "points", "good",
         test("confirmed_resolution_rate"), "the customer said so", no_outcomes),
        ("assumed_resolution_rate", "Assumed resolution",
         both("assumed_resolution_rate"), formatting.rate, "points", "neutral",
         test("assumed_resolution_rate"), "the customer left without asking for a human", no_outcomes),
        ("durable_resolution_rate", f"Durable resolution ({totals.repeat_contact_window_days} days)",
         both("durable_resolution_rate"), formatting.rate, "points", "good",
         test("durable_resolution_rate"), f"of {totals.settled:,} settled conversations", not_durable),
    ]  # fmt: skip
    lines = []
    for key, label, (current, previous), shown, kind, higher_is, tested, note, missing in specs:
        if missing:
            lines.append(
                KpiLine(key, label, formatting.DASH, shown(previous), Delta("no comparison", "none"), missing)
            )
            continue
        delta = change_delta(
            current, previous, kind=kind, higher_is=higher_is, currency=currency, test=tested
        )
        lines.append(KpiLine(key, label, shown(current), shown(previous), delta, note))
    return lines


def _topic_moves(dash: Dashboard) -> list[TopicMove]:
    """The topics whose volume or AI resolution rate moved most: those whose change is
    significant (after the Benjamini–Hochberg adjustment, Dashboard.topic_changes) first, then
    by how many conversations they gained or lost, then by how far their rate moved. A topic
    gone since the period before counts too (all its conversations lost)."""
    this_period = {topic.topic: topic for topic in dash.topics}
    period_before = {topic.topic: topic for topic in dash.previous_topics.values()}
    moves = []
    for name, tests in dash.topic_changes.items():
        current, previous = this_period.get(name), period_before.get(name)
        count = current.totals.conversations if current else 0
        previous_count = previous.totals.conversations if previous else 0
        rate = current.totals.ai_resolution_rate if current else None
        previous_rate = previous.totals.ai_resolution_rate if previous else None
        rate_moved = abs(rate - previous_rate) if rate is not None and previous_rate is not None else 0
        if count == previous_count and not rate_moved:
            continue
        move = TopicMove(
            topic=name,
            conversations=count,
            previous_conversations=previous_count,
            volume=change_delta(
                count, previous_count, kind="relative", higher_is="neutral", test=tests["conversations"]
            ),
            ai_resolution_rate=formatting.rate(rate),
            previous_ai_resolution_rate=formatting.rate(previous_rate),
            rate=change_delta(
                rate, previous_rate, kind="points", higher_is="good", test=tests["ai_resolution_rate"]
            ),
        )
        moves.append(((not move.significant, -abs(count - previous_count), -rate_moved, name), move))
    return [move for _, move in sorted(moves, key=lambda pair: pair[0])[:TOPIC_MOVES_LIMIT]]


def _alerts(digest_period: DigestPeriod) -> tuple[list[AlertLine], int]:
    """The alert events of the period (AlertEvent.at in it), the first ALERTS_LIMIT in time
    order, and how many there were."""
    period = digest_period.period
    # Uses index: alert_event_at_idx.
    events = AlertEvent.objects.filter(at__gte=period.start, at__lt=period.end).order_by("at", "id")
    lines = []
    for event in events[:ALERTS_LIMIT]:
        metric = ALERT_METRICS.get(event.metric)  # None for a metric since retired
        value = formatting.in_unit(event.value, metric.unit) if metric else formatting.number(event.value)
        state = "still firing" if event.reminder else EventState(event.state).label
        lines.append(
            AlertLine(
                when=f"{event.at.astimezone(digest_period.tz):%a %-d %b %H:%M}",
                rule_name=event.rule_name,
                state=state,
                value=value,
            )
        )
    total = len(lines) if len(lines) < ALERTS_LIMIT else events.count()
    return lines, total


# --- The email ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestEmail:
    subject: str
    text: str
    html: str


def render_digest(contents: DigestContents) -> DigestEmail:
    """The subject, the plain text and the HTML (inline styles only: many mail clients drop a
    <style> block; no image or other asset to fetch) of a digest."""
    digest_period = contents.digest_period
    subject = f"Support Analytics — {digest_period.frequency.value} digest for {digest_period.label}"
    context = {"digest": contents, "period": digest_period, "subject": subject}
    return DigestEmail(
        subject=subject,
        text=render_to_string("email/digest.txt", context),
        html=render_to_string("email/digest.html", context),
    )


# --- Sending --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestResult:
    digest_period: DigestPeriod
    sent: int = 0
    skipped: int = 0  # already sent for this period (by an earlier run, or one running alongside)
    failed: int = 0  # the send raised: logged, no claim left, a later run sends it


def send_digests(*, frequency: str, now: datetime | None = None) -> DigestResult:
    """Send the `frequency` ("daily" or "weekly") digest of the period before `now` (default: the
    present; `covered_period`) to every active subscription that has not had it yet.

    The figures are read once, and only when a digest is due. One subscriber's failed send is
    logged and counted, never raised: the others still get theirs. Raises ValueError for an
    unknown frequency.
    """
    digest_period = covered_period(frequency=frequency, now=now or timezone.now())
    subscriptions = list(
        DigestSubscription.objects.filter(frequency=digest_period.frequency, active=True)
        .annotate(
            already_sent=Exists(
                DigestSent.objects.filter(subscription=OuterRef("pk"), period_start=digest_period.first_day)
            )
        )
        .order_by("id")
    )
    due = [subscription for subscription in subscriptions if not subscription.already_sent]
    skipped = len(subscriptions) - len(due)
    if not due:
        return DigestResult(digest_period=digest_period, skipped=skipped)
    email = render_digest(digest_contents(digest_period=digest_period))
    sent = failed = 0
    for subscription in due:
        try:
            claimed = _send_one(subscription, digest_period, email)
        except Exception:
            # Any failure of this one (the mail server, its address): logged with its
            # traceback, and the next subscriber's digest still goes out.
            logger.exception(
                "The %s digest for %s to subscription %s failed; a later run sends it",
                digest_period.frequency.value,
                digest_period.first_day.isoformat(),
                subscription.pk,
            )
            failed += 1
        else:
            sent += claimed
            skipped += not claimed
    return DigestResult(digest_period=digest_period, sent=sent, skipped=skipped, failed=failed)


def _send_one(subscription: DigestSubscription, digest_period: DigestPeriod, email: DigestEmail) -> bool:
    """Claim the digest of this period for this subscription and send it; False when it was
    sent already.

    The claim is its DigestSent row, inserted in the transaction that sends the email: a run
    alongside waits on the row's unique key until this one ends, then finds it (and sends
    nothing) or, when this send failed and rolled the row back, sends it itself. So a row
    means a digest the mail server accepted, and a failed send leaves none: the next run tries
    again. (A commit lost after the mail server accepted the message would send it twice:
    the price of never leaving a claim without an email behind it.)
    """
    with transaction.atomic():
        _, claimed = DigestSent.objects.get_or_create(
            subscription=subscription,
            period_start=digest_period.first_day,
            defaults={"sent_at": timezone.now()},
        )
        if claimed:
            message = EmailMultiAlternatives(
                subject=email.subject, body=email.text, to=[subscription.email], headers=HEADERS
            )
            message.attach_alternative(email.html, "text/html")
            message.send()
    return claimed
