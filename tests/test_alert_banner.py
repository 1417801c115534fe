"""The banner of firing alerts (conversations/alert_banner.py) on the dashboard, the Compare and
the annotation pages: which rules it names, its links (the dashboard range that covers the
window, with the rule's filters; the rule in the admin), its cost in queries, its escaping."""

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import alert_banner
from conversations.alert_banner import BannerLine
from conversations.alerts import alert_rule_create
from conversations.models import AlertEvent, AlertRule, Annotation
from tests.conftest import T0

pytestmark = pytest.mark.django_db

URL = "/dashboard/"
DAY = timedelta(days=1)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rule_with_event(
    name: str = "AI resolution fell",
    *,
    firing: bool = True,
    window: tuple[datetime, datetime] = (T0 - DAY, T0),
    value: str = "52.30",
    baseline: str | None = None,
    sample_size: int = 412,
    **values,
) -> AlertRule:
    """A rule stored by the service, then set firing as the evaluation would, with its
    "firing" event over `window` (and, when no longer firing, its "resolved" one)."""
    values = {"metric": "ai_resolution_rate", "condition": "below", "threshold": Decimal(60), **values}
    rule = alert_rule_create(values={"name": name, "window_minutes": 1440, **values}).rule
    start, end = window
    event = {
        "rule": rule,
        "rule_name": rule.name,
        "metric": rule.metric,
        "condition": rule.condition,
        "threshold": rule.threshold,
        "min_change": rule.min_change,
        "baseline": Decimal(baseline) if baseline else None,
        "sample_size": sample_size,
        "window_start": start,
        "window_end": end,
        "filters": {"channel": rule.channel, "bot_version": rule.bot_version},
    }
    AlertEvent.objects.create(at=end, state="firing", value=Decimal(value), **event)
    if firing:
        AlertRule.objects.filter(pk=rule.pk).update(state="firing", state_changed_at=end)
    else:
        AlertEvent.objects.create(at=end + timedelta(hours=1), state="resolved", value=Decimal(70), **event)
    return rule


def banner_items(page: str) -> list[str]:
    """The banner's lines as text, whitespace collapsed."""
    found = re.findall(r'<li data-alert-rule="\d+">(.*?)</li>', page, flags=re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", item)).split()) for item in found]


def link(page: str, rule: AlertRule, kind: str) -> str:
    item = re.search(rf'<li data-alert-rule="{rule.pk}">(.*?)</li>', page, flags=re.S).group(1)
    return html.unescape(re.search(rf'<a href="([^"]+)" data-link="{kind}">', item).group(1))


def test_no_banner_while_nothing_fires(staff_client, frozen_now):
    rule_with_event(firing=False)  # it fired, and resolved

    response = staff_client.get(URL)

    assert response.status_code == 200
    assert response.context["alert_banner"] == []
    assert "alert-banner" not in response.content.decode()


@pytest.mark.parametrize(
    "zone, window, days",
    [
        # Half an hour off UTC: the window is the whole local day of Mar 14 (00:00 to 24:00
        # IST), which starts on Mar 13 in UTC and ends at midnight, the first moment of Mar 15.
        ("Asia/Kolkata", (utc(2026, 3, 13, 18, 30), utc(2026, 3, 14, 18, 30)),
         ("2026-03-14", "2026-03-14")),
        # New York springs forward on Mar 8: that local day is 23 hours long (05:00 to 04:00 UTC).
        ("America/New_York", (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),
         ("2026-03-08", "2026-03-08")),
        # A window over two local days, the second only just begun.
        ("Asia/Kolkata", (utc(2026, 3, 13, 12), utc(2026, 3, 14, 12)),
         ("2026-03-13", "2026-03-14")),
    ],
)  # fmt: skip
def test_a_firing_rule_is_named_with_links_to_its_window_and_to_the_rule(
    staff_client, settings, zone, window, days
):
    settings.ANALYTICS_TIME_ZONE = zone
    rule = rule_with_event(window=window, channel="web", bot_version="2.1", topic="Refund")
    now = window[1] + timedelta(minutes=1)

    with time_machine.travel(now, tick=False):
        page = staff_client.get(URL).content.decode()

    assert 'role="alert"' in page
    [line] = banner_items(page)
    first, last = days
    label = (
        datetime.fromisoformat(first).strftime("%b %-d, %Y")
        if first == last
        else f"{datetime.fromisoformat(first):%b %-d, %Y} – {datetime.fromisoformat(last):%b %-d, %Y}"
    )
    assert line == (
        "Alert firing: AI resolution fell — ai_resolution_rate 52.3% (threshold: below 60.0%; n = 412)"
        f" · channel web · bot 2.1 · topic refund. The dashboard for {label} · The rule"
    )
    assert link(page, rule, "rule") == reverse("admin:conversations_alertrule_change", args=[rule.pk])
    dashboard = urlparse(link(page, rule, "dashboard"))
    assert dashboard.path == URL
    assert parse_qs(dashboard.query) == {
        "range": ["custom"],
        "start": [first],
        "end": [last],
        "channel": ["web"],
        "bot_version": ["2.1"],
    }

    # The range it links to covers the window, with the rule's filters.
    with time_machine.travel(now, tick=False):
        query = staff_client.get(link(page, rule, "dashboard")).context["query"]
    assert query.period.start <= window[0] and query.period.end >= window[1]
    assert (query.filters.channel, query.filters.bot_version) == ("web", "2.1")


def test_every_firing_rule_in_one_banner_newest_first(frozen_now):
    # A whole UTC day: its last moment is still Mar 12.
    below = rule_with_event("Resolution below 60%", window=(utc(2026, 3, 12), utc(2026, 3, 13)))
    drop = rule_with_event(
        "CSAT fell on 2.1",
        metric="avg_csat",
        condition="drop",
        threshold=None,
        min_change=Decimal("0.25"),
        bot_version="2.1",
        escalation_reason="Refund over limit",
        value="3.80",
        baseline="4.30",
        sample_size=1234,
    )
    rise = rule_with_event(
        "Volume spike",
        metric="total_conversations",
        condition="rise",
        threshold=None,
        min_change=Decimal(50),
        value="900",
        baseline="400",
        window=(T0 - timedelta(hours=1), T0 - timedelta(minutes=30)),
    )
    silent = alert_rule_create(
        values={
            "name": "No events",
            "metric": "avg_csat",
            "condition": "below",
            "threshold": 4,
            "window_minutes": 60,
        }
    ).rule
    AlertRule.objects.filter(pk=silent.pk).update(state="firing")  # its events deleted
    rule_with_event("Resolved", firing=False)

    def rule_url(rule):
        return reverse("admin:conversations_alertrule_change", args=[rule.pk])

    assert alert_banner.banner() == [
        BannerLine(
            rule_id=drop.pk,
            rule_name="CSAT fell on 2.1",
            reading="avg_csat 3.80 (baseline 4.30: a drop of at least 0.25; n = 1,234)",
            scope="bot 2.1 · escalated for refund over limit",
            rule_url=rule_url(drop),
            dashboard_url=(
                "/dashboard/?range=custom&start=2026-03-13&end=2026-03-14&bot_version=2.1"
                "&escalation_reason=refund+over+limit"
            ),
            window_label="Mar 13, 2026 – Mar 14, 2026",
        ),
        BannerLine(
            rule_id=rise.pk,
            rule_name="Volume spike",
            reading="total_conversations 900 (baseline 400: a rise of at least 50.0%; n = 412)",
            scope="",
            rule_url=rule_url(rise),
            dashboard_url="/dashboard/?range=custom&start=2026-03-14&end=2026-03-14",
            window_label="Mar 14, 2026",
        ),
        BannerLine(
            rule_id=below.pk,
            rule_name="Resolution below 60%",
            reading="ai_resolution_rate 52.3% (threshold: below 60.0%; n = 412)",
            scope="",
            rule_url=rule_url(below),
            dashboard_url="/dashboard/?range=custom&start=2026-03-12&end=2026-03-12",
            window_label="Mar 12, 2026",
        ),
        # Firing without an event to take a window from (never written so; its events gone).
        BannerLine(
            rule_id=silent.pk,
            rule_name="No events",
            reading="avg_csat (no evaluation recorded)",
            scope="",
            rule_url=rule_url(silent),
            dashboard_url="",
            window_label="",
        ),
    ]


def test_the_latest_firing_event_gives_the_window(frozen_now):
    """A reminder (still firing, renotify_minutes later) is the newest firing event: its window
    and value are the banner's."""
    rule = rule_with_event(window=(T0 - 3 * DAY, T0 - 2 * DAY))
    AlertEvent.objects.create(
        rule=rule, rule_name=rule.name, at=T0, state="firing", reminder=True, metric=rule.metric,
        condition=rule.condition, value=Decimal("48.00"), threshold=rule.threshold, sample_size=500,
        window_start=T0 - DAY, window_end=T0, filters={},
    )  # fmt: skip

    [line] = alert_banner.banner()

    assert line.reading == "ai_resolution_rate 48.0% (threshold: below 60.0%; n = 500)"
    assert line.window_label == "Mar 13, 2026 – Mar 14, 2026"


def test_the_banners_queries_do_not_grow_with_the_firing_rules(staff_client, frozen_now):
    staff_client.get(URL)  # creates the cost settings row

    def dashboard_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(URL).status_code == 200
        return len(queries)

    none_firing = dashboard_queries()
    rule_with_event("one")
    one_firing = dashboard_queries()
    rule_with_event("two")
    rule_with_event("three")
    three_firing = dashboard_queries()

    assert len(alert_banner.banner()) == 3
    assert three_firing == one_firing == none_firing + 1  # the rules; then their events too


def test_a_rule_name_is_escaped(staff_client, frozen_now):
    rule_with_event("<script>alert('x')</script> & co")

    page = staff_client.get(URL).content.decode()

    assert "<script" not in page  # the page has no script of its own
    assert "Alert firing: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co</strong>" in page


@pytest.mark.parametrize("page", ["compare", "annotation", "invalid dashboard"])
def test_the_other_staff_pages_show_it_too(staff_client, frozen_now, page):
    rule_with_event("Resolution fell")
    annotation = Annotation.objects.create(timestamp=T0 - DAY, title="Release 2.1", kind="release")
    url = {
        "compare": reverse("dashboard-compare"),
        "annotation": reverse("dashboard-annotation", args=[annotation.pk]),
        "invalid dashboard": f"{URL}?range=custom",
    }[page]

    response = staff_client.get(url)

    assert response.status_code == (400 if page == "invalid dashboard" else 200)
    assert [line.rule_name for line in response.context["alert_banner"]] == ["Resolution fell"]
    assert banner_items(response.content.decode())[0].startswith("Alert firing: Resolution fell — ")
