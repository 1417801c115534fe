"""Digests (issue 18): the period a digest covers (local days, DST, Monday-to-Sunday weeks), sent
once per period and subscriber however often (or concurrently) it runs, a failed send left for a
later run, and contents equal to the API's figures, with the dashboard's marking of changes."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from conversations import digests, services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Granularity, Period
from conversations.forms import DashboardForm
from conversations.models import AlertEvent, DigestSent, DigestSubscription
from tests.factories import conversation_in

BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday 2 December 2026, 08:00 UTC: the daily digest covers Tuesday 1 December.
NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
DAY = date(2026, 12, 1)
SITE = "https://support.example.com"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# --- The period ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "first", "last"),
    [
        (NOW, DAY, DAY),
        # Exactly at midnight the new day has begun: the day before is whole.
        (utc(2026, 12, 2), DAY, DAY),
        (utc(2026, 12, 1, 23, 59, 59, 999999), date(2026, 11, 30), date(2026, 11, 30)),
        (utc(2027, 1, 1, 8), date(2026, 12, 31), date(2026, 12, 31)),
    ],
)
def test_a_daily_digest_covers_the_day_before(now, first, last):
    covered = digests.covered_period(frequency="daily", now=now)

    assert (covered.first_day, covered.last_day) == (first, last)
    assert covered.period == Period(
        start=datetime.combine(first, datetime.min.time(), tzinfo=UTC),
        end=datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("now", "first"),
    [
        # Monday 7 December, 08:00 (the scheduled time): the week that ended last night.
        (utc(2026, 12, 7, 8), date(2026, 11, 30)),
        # Monday at midnight: that week has just ended.
        (utc(2026, 12, 7), date(2026, 11, 30)),
        # Sunday: its own week has not ended; the one before.
        (utc(2026, 12, 6, 23, 59), date(2026, 11, 23)),
        # Wednesday.
        (NOW, date(2026, 11, 23)),
    ],
)
def test_a_weekly_digest_covers_the_monday_to_sunday_week_before(now, first):
    covered = digests.covered_period(frequency="weekly", now=now)

    assert covered.first_day == first and covered.first_day.weekday() == 0
    assert covered.last_day == first + timedelta(days=6)
    assert covered.period.end - covered.period.start == timedelta(days=7)


@pytest.mark.parametrize(
    ("now", "day", "start", "end", "hours"),
    [
        # Sunday 29 March 2026: clocks go forward at 02:00, the day has 23 hours.
        (berlin(2026, 3, 30, 8), date(2026, 3, 29), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
        # Sunday 25 October 2026: clocks go back at 03:00, the day has 25 hours.
        (berlin(2026, 10, 26, 8), date(2026, 10, 25), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 25),
        # 00:30 in Berlin is still the evening before in UTC: the local day counts.
        (utc(2026, 12, 1, 23, 30), DAY, utc(2026, 11, 30, 23), utc(2026, 12, 1, 23), 24),
    ],
)  # fmt: skip
def test_a_daily_digest_covers_the_local_day_across_dst_changes(settings, now, day, start, end, hours):
    settings.ANALYTICS_TIME_ZONE = "Europe/Berlin"
    covered = digests.covered_period(frequency="daily", now=now)

    assert (covered.first_day, covered.last_day) == (day, day)
    assert (covered.period.start, covered.period.end) == (start, end)
    # (In UTC: aware datetimes of one zone subtract on the wall clock, 24 hours.)
    assert covered.period.end.astimezone(UTC) - covered.period.start.astimezone(UTC) == timedelta(hours=hours)


def test_a_week_with_a_dst_change_is_an_hour_short(settings):
    settings.ANALYTICS_TIME_ZONE = "Europe/Berlin"
    covered = digests.covered_period(frequency="weekly", now=berlin(2026, 3, 30, 8))

    assert (covered.first_day, covered.last_day) == (date(2026, 3, 23), date(2026, 3, 29))
    assert (covered.period.start, covered.period.end) == (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
    # Against the week before it, as the dashboard compares its custom range of these days
    # (Period.previous steps back the same length on the local clock).
    assert covered.period.previous() == Period(start=berlin(2026, 3, 16), end=berlin(2026, 3, 23))


@pytest.mark.parametrize(
    ("frequency", "now", "label"),
    [
        ("daily", NOW, "Tue 1 Dec 2026"),
        ("weekly", utc(2026, 12, 7, 8), "Mon 30 Nov – Sun 6 Dec 2026"),
        ("weekly", utc(2027, 1, 4, 8), "Mon 28 Dec 2026 – Sun 3 Jan 2027"),
    ],
)
def test_a_period_is_named_by_its_days(frequency, now, label):
    assert digests.covered_period(frequency=frequency, now=now).label == label


@pytest.mark.parametrize("frequency", ["daily", "weekly"])
def test_the_link_opens_the_dashboard_on_exactly_the_period(settings, frequency):
    settings.SITE_URL, settings.ANALYTICS_TIME_ZONE = SITE, "Europe/Berlin"
    now = berlin(2026, 3, 30, 8)
    covered = digests.covered_period(frequency=frequency, now=now)
    url = urlsplit(covered.dashboard_url)

    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{SITE}/dashboard/"
    query = dict(parse_qsl(url.query))
    assert query == {"range": "custom", "start": f"{covered.first_day}", "end": "2026-03-29"}
    form = DashboardForm(query)
    assert form.is_valid(), form.errors
    assert form.to_query(now=now).period == covered.period


def test_an_unknown_frequency_is_refused():
    with pytest.raises(ValueError, match="monthly"):
        digests.covered_period(frequency="monthly", now=NOW)


# --- Sending once ----------------------------------------------------------------------------


def subscribe(email: str, frequency: str = "daily", *, active: bool = True) -> DigestSubscription:
    return DigestSubscription.objects.create(email=email, frequency=frequency, active=active)


@pytest.fixture
def subscribers(db):
    return [
        subscribe("ana@example.com"),
        subscribe("ben@example.com"),
        subscribe("old@example.com", active=False),
        subscribe("wes@example.com", "weekly"),
    ]


@pytest.fixture
def figure_reads(monkeypatch):
    """How many times the figures were read (selectors.dashboard, the digest's one read)."""
    calls = []
    real = selectors.dashboard

    def counted(**kwargs):
        calls.append(kwargs["period"])
        return real(**kwargs)

    monkeypatch.setattr(selectors, "dashboard", counted)
    return calls


def recipients(outbox) -> list[str]:
    return sorted(address for message in outbox for address in message.to)


@pytest.mark.usefixtures("subscribers")
def test_running_twice_sends_once_per_active_subscriber(mailoutbox, figure_reads):
    first = digests.send_digests(frequency="daily", now=NOW)
    second = digests.send_digests(frequency="daily", now=NOW + timedelta(hours=3))

    assert recipients(mailoutbox) == ["ana@example.com", "ben@example.com"]
    assert (first.sent, first.skipped, first.failed) == (2, 0, 0)
    assert (second.sent, second.skipped, second.failed) == (0, 2, 0)
    # The figures are read once for everyone, and not at all when nothing is due.
    assert len(figure_reads) == 1
    assert sorted(DigestSent.objects.values_list("subscription__email", "period_start")) == [
        ("ana@example.com", DAY),
        ("ben@example.com", DAY),
    ]


@pytest.mark.usefixtures("subscribers")
def test_the_next_day_is_another_period(mailoutbox):
    digests.send_digests(frequency="daily", now=NOW)
    result = digests.send_digests(frequency="daily", now=NOW + timedelta(days=1))

    assert (result.sent, result.skipped) == (2, 0)
    assert result.digest_period.first_day == DAY + timedelta(days=1)
    assert len(mailoutbox) == 4


@pytest.mark.usefixtures("subscribers")
def test_weekly_subscribers_get_the_weekly_digest_only(mailoutbox):
    result = digests.send_digests(frequency="weekly", now=utc(2026, 12, 7, 8))

    assert result.sent == 1
    assert recipients(mailoutbox) == ["wes@example.com"]
    assert mailoutbox[0].subject == "Support Analytics — weekly digest for Mon 30 Nov – Sun 6 Dec 2026"
    assert DigestSent.objects.get().period_start == date(2026, 11, 30)


@pytest.mark.usefixtures("subscribers")
def test_the_email_has_a_subject_a_text_and_an_html_part(mailoutbox, settings):
    settings.SITE_URL = SITE
    digests.send_digests(frequency="daily", now=NOW)

    message = mailoutbox[0]
    assert message.subject == "Support Analytics — daily digest for Tue 1 Dec 2026"
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    link = f"{SITE}/dashboard/?range=custom&amp;start=2026-12-01&amp;end=2026-12-01"
    assert link in html
    assert link.replace("&amp;", "&") in message.body


def test_nothing_is_read_or_sent_without_subscribers(db, mailoutbox, figure_reads):
    result = digests.send_digests(frequency="daily", now=NOW)

    assert (result.sent, result.skipped, result.failed) == (0, 0, 0)
    assert mailoutbox == [] and figure_reads == []


class FailingForBen(EmailBackend):
    """The locmem backend, except that the mail server refuses ben@example.com."""

    def send_messages(self, messages):
        if any("ben@example.com" in message.to for message in messages):
            raise ConnectionRefusedError("the mail server refused ben@example.com")
        return super().send_messages(messages)


def test_a_failed_send_leaves_no_claim_and_the_others_get_theirs(db, mailoutbox, caplog, settings):
    for email in ("ana@example.com", "ben@example.com", "cy@example.com"):
        subscribe(email)

    settings.EMAIL_BACKEND = f"{__name__}.FailingForBen"
    with caplog.at_level(logging.ERROR):
        result = digests.send_digests(frequency="daily", now=NOW)

    assert (result.sent, result.skipped, result.failed) == (2, 0, 1)
    # Ben's comes after the failure: one subscriber's failure stops nobody else's digest.
    assert recipients(mailoutbox) == ["ana@example.com", "cy@example.com"]
    assert sorted(DigestSent.objects.values_list("subscription__email", flat=True)) == [
        "ana@example.com",
        "cy@example.com",
    ]
    [record] = [record for record in caplog.records if record.name == "conversations.digests"]
    assert "failed" in record.getMessage() and record.exc_info[0] is ConnectionRefusedError

    # The mail server is back: a later run sends Ben's, and only his.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    again = digests.send_digests(frequency="daily", now=NOW + timedelta(hours=1))
    assert (again.sent, again.skipped, again.failed) == (1, 2, 0)
    assert recipients(mailoutbox) == ["ana@example.com", "ben@example.com", "cy@example.com"]


class SlowBackend(EmailBackend):
    """The locmem backend, taking its time: two runs overlap."""

    def send_messages(self, messages):
        time.sleep(0.2)
        return super().send_messages(messages)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_two_runs_at_the_same_moment_send_once_per_subscriber(round_, mailoutbox, settings):
    settings.EMAIL_BACKEND = f"{__name__}.SlowBackend"
    emails = [f"lead{index}@example.com" for index in range(3)]
    for email in emails:
        subscribe(email)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(digests.send_digests(frequency="daily", now=NOW))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    assert recipients(mailoutbox) == emails
    assert sum(result.sent for result in results) == 3
    assert sum(result.skipped for result in results) == 3
    assert DigestSent.objects.count() == 3


# --- The command -----------------------------------------------------------------------------


@pytest.mark.usefixtures("subscribers")
def test_the_command_prints_what_it_sent(mailoutbox, capsys):
    with time_machine.travel(NOW, tick=False):
        call_command("send_digest", frequency="daily")
        call_command("send_digest", frequency="daily")

    assert capsys.readouterr().out.splitlines() == [
        "The daily digest for Tue 1 Dec 2026: sent to 2, already sent to 0, failed for 0.",
        "The daily digest for Tue 1 Dec 2026: sent to 0, already sent to 2, failed for 0.",
    ]
    assert len(mailoutbox) == 2


@pytest.mark.usefixtures("subscribers")
def test_the_command_fails_when_a_digest_failed(mailoutbox, capsys, settings):
    settings.EMAIL_BACKEND = f"{__name__}.FailingForBen"
    with (
        time_machine.travel(NOW, tick=False),
        pytest.raises(CommandError, match="1 digest"),
    ):
        call_command("send_digest", frequency="daily")

    assert "sent to 1, already sent to 0, failed for 1." in capsys.readouterr().out


def test_the_command_refuses_another_frequency(db):
    with pytest.raises(CommandError, match="invalid choice: 'monthly'"):
        call_command("send_digest", frequency="monthly")


# --- The subscriptions -----------------------------------------------------------------------


def test_one_subscription_per_inbox_and_frequency(db):
    subscribe("Lead@Example.com")
    subscribe("lead@example.com", "weekly")

    with (
        transaction.atomic(),
        pytest.raises(IntegrityError, match="digest_subscription_email_frequency_unique"),
    ):
        subscribe("lead@example.com")
    with transaction.atomic(), pytest.raises(IntegrityError, match="digest_subscription_frequency_valid"):
        subscribe("lead@example.com", "monthly")


def test_one_digest_sent_per_subscription_and_period(db):
    subscription = subscribe("lead@example.com")
    DigestSent.objects.create(subscription=subscription, period_start=DAY, sent_at=NOW)

    with transaction.atomic(), pytest.raises(IntegrityError, match="digest_sent_once_per_period"):
        DigestSent.objects.create(subscription=subscription, period_start=DAY, sent_at=NOW)


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", email="", password=None))
    return client


def test_staff_keep_the_subscriptions_in_the_admin(superuser_client, mailoutbox):
    add = "/admin/conversations/digestsubscription/add/"
    response = superuser_client.post(add, {"email": "lead@example.com", "frequency": "daily", "active": "on"})
    assert response.status_code == 302, response.content.decode()
    # The same inbox again, written otherwise: refused by the form, named.
    response = superuser_client.post(add, {"email": "LEAD@example.com", "frequency": "daily", "active": "on"})
    assert response.status_code == 200
    assert "This address already gets this digest." in response.content.decode()
    subscribe("ops@example.com", "weekly")
    digests.send_digests(frequency="daily", now=NOW)

    changelist = "/admin/conversations/digestsubscription/"
    page = superuser_client.get(changelist).content.decode()
    assert "lead@example.com" in page and "ops@example.com" in page and "Dec. 1, 2026" in page
    page = superuser_client.get(changelist, {"frequency__exact": "weekly"}).content.decode()
    assert "ops@example.com" in page and "lead@example.com" not in page
    page = superuser_client.get(changelist, {"q": "lead"}).content.decode()
    assert "lead@example.com" in page and "ops@example.com" not in page
    assert superuser_client.get(changelist, {"active__exact": "1"}).status_code == 200

    subscription = DigestSubscription.objects.get(email="lead@example.com")
    page = superuser_client.get(f"{changelist}{subscription.pk}/change/").content.decode()
    assert f"/admin/conversations/digestsent/?subscription__id__exact={subscription.pk}" in page
    sent = superuser_client.get(
        "/admin/conversations/digestsent/", {"subscription__id__exact": subscription.pk}
    )
    assert sent.status_code == 200 and "lead@example.com (daily)" in sent.content.decode()
    assert superuser_client.get("/admin/conversations/digestsent/add/").status_code == 403


# --- The contents ----------------------------------------------------------------------------

BEFORE_DAY = DAY - timedelta(days=1)
# (topic, conversations, AI-resolved) per day. The AI resolution rate jumps from 50% to 85%
# (refund from 20% to 90%); the volume moves 100 -> 120, which may be chance.
BEFORE = [("refund", 50, 10), ("billing", 50, 40)]
AFTER = [("refund", 50, 45), ("billing", 52, 42), ("shipping", 18, 15)]
# (ratings 4-5, ratings 1-2) per day: 60% against 62%, far from significant.
CSAT_BEFORE, CSAT_AFTER = (30, 20), (31, 19)


def _store_day(day: date, topics, csat: tuple[int, int], prefix: str) -> None:
    items = []
    for topic, count, resolved in topics:
        for index in range(count):
            items.append((topic, index < resolved))
    good, bad = csat
    scores = [5] * good + [2] * bad
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
    services.conversations_ingest(
        items=[
            conversation_in(
                f"{prefix}-{index}",
                start + timedelta(minutes=9 * index),  # 120 conversations within 18 hours
                resolved=resolved,
                topics=(topic,),
                csat=scores[index] if index < len(scores) else None,
                csat_given=True,
            )
            for index, (topic, resolved) in enumerate(items)
        ]
    )


def _alert(
    at: datetime, name: str, *, state="firing", value="41.20", reminder=False, metric="ai_resolution_rate"
) -> AlertEvent:
    return AlertEvent.objects.create(
        rule_name=name,
        at=at,
        state=state,
        reminder=reminder,
        metric=metric,
        condition="below",
        threshold=Decimal("50"),
        value=Decimal(value),
        sample_size=40,
        window_start=at - timedelta(hours=1),
        window_end=at,
    )


@pytest.fixture
def two_days(db):
    _store_day(BEFORE_DAY, BEFORE, CSAT_BEFORE, "before")
    _store_day(DAY, AFTER, CSAT_AFTER, "after")
    _alert(utc(2026, 12, 1, 10, 5), "Refunds fell")
    _alert(utc(2026, 12, 1, 14, 30), "Refunds fell", state="resolved", value="62.00")
    _alert(utc(2026, 12, 1, 18), "CSAT <script>", reminder=True, value="3.10", metric="avg_csat")
    # Outside the day: just before it, and at its end (the next day's first moment).
    _alert(utc(2026, 11, 30, 23, 59, 59), "Too early")
    _alert(utc(2026, 12, 2), "Too late")
    subscribe("lead@example.com")


def kpi_block(text: str) -> dict[str, list[str]]:
    """The plain text's key numbers: each KPI's lines by its label."""
    block = text.split("KEY NUMBERS", 1)[1].split("TOPICS THAT MOVED MOST", 1)[0]
    kpis: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.startswith("- "):
            label, value = line[2:].rsplit(": ", 1)
            kpis[label] = [value]
        elif line.startswith("  ") and kpis:
            kpis[label].append(line.strip())
    return kpis


@pytest.mark.usefixtures("two_days")
def test_the_key_numbers_are_the_apis_with_the_dashboards_marks(mailoutbox, read_client):
    with time_machine.travel(NOW, tick=False):
        digests.send_digests(frequency="daily", now=NOW)
        api = read_client.get(
            "/api/analytics",
            {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "compare": "previous"},
        ).json()
    previous, changes = api["previous"], api["changes"]
    assert (api["total_conversations"], previous["total_conversations"]) == (120, 100)
    assert (api["ai_resolution_rate"], previous["ai_resolution_rate"]) == (85.0, 50.0)
    assert changes["ai_resolution_rate"]["significant"] is True
    assert (api["csat"]["score"], previous["csat"]["score"]) == (62.0, 60.0)
    assert changes["csat.score"]["significant"] is False
    assert changes["total_conversations"]["significant"] is False

    kpis = kpi_block(mailoutbox[0].body)
    assert kpis == {
        "Conversations": ["120", "+20.0% vs 100 before — no significant change"],
        "AI resolution rate": [
            "85.0%",
            "▲ +35.0 pp vs 50.0% before — significant: better",
            "(102 resolved · 18 escalated)",
        ],
        "Escalations": [
            "18",
            "−64.0% vs 50 before — not tested",
            "(their share is tested as the AI resolution rate)",
        ],
        "CSAT (4–5 ratings)": [
            "62.0%",
            "+2.0 pp vs 60.0% before — no significant change",
            "(mean 3.86 of 5 · 50 ratings)",
        ],
        "Estimated savings": [
            f"${api['estimated_savings']:,.2f}",
            f"+${api['estimated_savings'] - previous['estimated_savings']:,.2f} "
            f"vs ${previous['estimated_savings']:,.2f} before — not tested",
            f"(vs ${api['cost']['human_only_cost']:,.2f} human-only)",
        ],
        "Confirmed resolution": ["—", "(no outcomes reported)"],
        "Assumed resolution": ["—", "(no outcomes reported)"],
        "Durable resolution (7 days)": ["—", "(no customer ids sent)"],
    }
    assert api["escalated_conversations"] == 18 and previous["escalated_conversations"] == 50
    assert api["avg_csat"] == 3.86


@pytest.mark.usefixtures("two_days")
def test_the_html_marks_the_significant_change_and_not_the_small_one(mailoutbox):
    digests.send_digests(frequency="daily", now=NOW)
    [(html, _)] = mailoutbox[0].alternatives

    rate = html.split('data-kpi="ai_resolution_rate"', 1)[1].split("</tr>", 1)[0]
    assert 'data-trend="good"' in rate and "color:#0072B2" in rate
    assert "▲ +35.0 pp" in rate and "significant: better" in rate
    csat = html.split('data-kpi="csat"', 1)[1].split("</tr>", 1)[0]
    assert 'data-trend="flat"' in csat and "no significant change" in csat and "▲" not in csat


@pytest.mark.usefixtures("two_days")
def test_the_topics_that_moved_most_significant_first(mailoutbox):
    digests.send_digests(frequency="daily", now=NOW)
    text = mailoutbox[0].body

    topics = text.split("TOPICS THAT MOVED MOST", 1)[1].split("KNOWLEDGE GAPS", 1)[0]
    assert [line.strip() for line in topics.splitlines() if line.strip()] == [
        # Its rate moved from 20% to 90%: significant after the adjustment across the topics.
        "- refund",
        "50 conversations: ±0.0% vs 50 before — no significant change",
        "AI resolution 90.0%: ▲ +70.0 pp vs 20.0% before — significant: better",
        # New: 18 conversations more (no change in % from nothing), no rate before.
        "- shipping",
        "18 conversations: new vs 0 before",
        "AI resolution 83.3%: no comparison",
        "- billing",
        "52 conversations: +4.0% vs 50 before — no significant change",
        "AI resolution 80.8%: +0.8 pp vs 80.0% before — no significant change",
    ]  # fmt: skip


@pytest.mark.usefixtures("two_days")
def test_the_knowledge_gaps_are_the_dashboards(mailoutbox):
    digests.send_digests(frequency="daily", now=NOW)
    text = mailoutbox[0].body

    gaps = text.split("KNOWLEDGE GAPS", 1)[1].split("ALERTS", 1)[0].strip().splitlines()
    assert [line for line in gaps[1:] if line] == [
        "1. billing — $50.00 · 10 escalations + 0 followed up, of 52 conversations · AI resolution 80.8%",
        "2. refund — $25.00 · 5 escalations + 0 followed up, of 50 conversations · AI resolution 90.0%",
        "3. shipping — $15.00 · 3 escalations + 0 followed up, of 18 conversations · AI resolution 83.3%",
    ]
    dashboard_gaps = selectors.dashboard(
        period=digests.covered_period(frequency="daily", now=NOW).period,
        filters=Filters(),
        granularity=Granularity.DAY,
        tz=UTC,
    ).knowledge_gaps
    assert [gap.topic for gap in dashboard_gaps] == ["billing", "refund", "shipping"]


@pytest.mark.usefixtures("two_days")
def test_the_alerts_of_the_period_and_only_those(mailoutbox):
    digests.send_digests(frequency="daily", now=NOW)
    text = mailoutbox[0].body
    [(html, _)] = mailoutbox[0].alternatives

    alerts = text.split("ALERTS", 1)[1].split("The dashboard for this day", 1)[0].strip()
    assert alerts.splitlines() == [
        "- Tue 1 Dec 10:05 · Refunds fell · firing · 41.2%",
        "- Tue 1 Dec 14:30 · Refunds fell · resolved · 62.0%",
        "- Tue 1 Dec 18:00 · CSAT <script> · still firing · 3.10",
    ]
    assert "Too early" not in text and "Too late" not in text
    # Names from outside are escaped in the HTML (the plain text is not HTML).
    assert "CSAT &lt;script&gt;" in html and "<script>" not in html


def test_an_empty_period_says_so_and_is_still_a_digest(db, mailoutbox):
    subscribe("lead@example.com")
    _store_day(BEFORE_DAY, BEFORE, CSAT_BEFORE, "before")

    result = digests.send_digests(frequency="daily", now=NOW)

    assert result.sent == 1
    text = mailoutbox[0].body
    assert "There were no conversations on Tue 1 Dec 2026." in text
    kpis = kpi_block(text)
    assert kpis["Conversations"] == ["0", "▼ −100.0% vs 100 before — significant: down"]
    assert kpis["AI resolution rate"] == ["—", "(0 resolved · 0 escalated)"]
    assert "No escalations or followed-up AI resolutions." in text
    assert "No alerts in this period." in text
    [(html, _)] = mailoutbox[0].alternatives
    assert "data-empty" in html and "data-no-alerts" in html


def test_a_period_without_any_data_still_renders(db, mailoutbox):
    subscribe("lead@example.com", "weekly")

    digests.send_digests(frequency="weekly", now=NOW)

    text = mailoutbox[0].body
    assert "There were no conversations in the week of Mon 23 Nov – Sun 29 Nov 2026." in text
    assert kpi_block(text)["Conversations"] == ["0", "±0 vs 0 before"]
    assert "No topic changed against the period before." in text


@pytest.mark.usefixtures("two_days")
def test_the_html_needs_nothing_from_outside(mailoutbox, settings):
    settings.SITE_URL = SITE
    digests.send_digests(frequency="daily", now=NOW)
    [(html, _)] = mailoutbox[0].alternatives

    # Inline styles only: no <style> or stylesheet (many clients drop them), no class to style.
    for absent in ("<style", "<link", "<img", "<script", "class=", "src=", "@import"):
        assert absent not in html
    # Every link is the app's own.
    links = [part.split('"', 1)[0] for part in html.split('href="')[1:]]
    assert links and all(link.startswith(f"{SITE}/") for link in links), links


def test_alerts_are_listed_at_their_local_time(db, mailoutbox, settings):
    settings.ANALYTICS_TIME_ZONE = "Europe/Berlin"
    subscribe("lead@example.com")
    # 23:30 UTC on 30 November is 00:30 on 1 December in Berlin: in the day.
    _alert(utc(2026, 11, 30, 23, 30), "Just after midnight")
    _alert(utc(2026, 12, 1, 23, 0), "Midnight: the next day")

    digests.send_digests(frequency="daily", now=NOW)

    alerts = mailoutbox[0].body.split("ALERTS", 1)[1].split("The dashboard", 1)[0].strip()
    assert alerts.splitlines() == ["- Tue 1 Dec 00:30 · Just after midnight · firing · 41.2%"]
