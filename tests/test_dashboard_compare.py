"""The Compare page (/dashboard/compare/): two bot versions, channels or periods side by side,
each figure and change as /api/analytics/compare/ answers it, the significant topics first."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from conversations import formatting
from conversations.models import Annotation
from tests.conftest import T0
from tests.factories import ConversationFactory
from tests.test_dashboard import visible_text

pytestmark = pytest.mark.django_db

URL = "/dashboard/compare/"


@pytest.fixture
def versions(frozen_now):
    """Version 1.0: 60 conversations, 30 resolved; 2.0: 60, 48 resolved. Refunds carry the
    change (10 of 30 -> 28 of 30); billing stays at 20 of 30 in both."""
    for version, refund_resolved in (("1.0", 10), ("2.0", 28)):
        for index in range(60):
            refund = index < 30
            ConversationFactory(
                timestamp=T0 - timedelta(days=1 + index % 5, minutes=index),
                bot_version=version,
                channel="web" if index % 2 else "email",
                topics=["refund"] if refund else ["billing"],
                resolved_by_ai=index < refund_resolved if refund else index - 30 < 20,
                csat=1 + index % 5,
                turns=2 + index % 4,
            )


def figure_rows(page: str) -> dict[str, list[str]]:
    body = re.search(r'<table id="figures">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = {}
    for path, row in re.findall(r'<tr data-figure="([^"]*)">(.*?)</tr>', body, re.S):
        rows[path] = [visible_text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
    return rows


def d(value) -> Decimal:
    return Decimal(str(value))


def test_without_arms_the_page_asks_for_them(staff_client, versions):
    response = staff_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose the two bot versions to compare." in page
    # The versions seen in the range are offered for both arms.
    assert page.count('<option value="1.0">1.0</option>') == 2
    assert page.count('<option value="2.0">2.0</option>') == 2


def test_two_versions_show_what_the_api_answers(staff_client, versions):
    response = staff_client.get(URL, {"kind": "bot_version", "a": "1.0", "b": "2.0", "range": "7d"})
    assert response.status_code == 200
    query = response.context["query"]
    api = staff_client.get(
        "/api/analytics/compare/",
        {"a_bot_version": "1.0", "b_bot_version": "2.0", "start": query.period.start.isoformat(),
         "end": query.period.end.isoformat()},
    ).json()  # fmt: skip
    rows = figure_rows(response.content.decode())

    rate = rows["ai_resolution_rate"]
    change = api["changes"]["ai_resolution_rate"]
    low, high = (d(bound) for bound in api["b"]["ai_resolution_rate_ci95"])
    assert rate[0] == "AI resolution rate"
    assert rate[1].startswith(formatting.rate(d(api["a"]["ai_resolution_rate"])))  # 50.0%
    interval = f"{formatting.rate(low)} – {formatting.rate(high)}"
    assert rate[2] == f"{formatting.rate(d(api['b']['ai_resolution_rate']))}{interval}"
    assert rate[3] == "▲ +30.0 pp"
    low, high = (d(bound) for bound in change["difference_ci95"])
    assert rate[4] == f"{formatting.signed(low, ' pp')} to {formatting.signed(high, ' pp')}"
    assert rate[5] == formatting.p_value(change["p_value"])
    assert change["significant"] is True

    # The volume is the same (60 and 60): no significant change, said in words.
    assert rows["total_conversations"][1:4] == ["60", "60", "±0.0% no significant change"]
    # p95 and money: shown without a test.
    assert rows["response_time.p95_ms"][3].endswith("not tested") and rows["response_time.p95_ms"][5] == "—"
    assert rows["estimated_savings"][3:] == ["not tested", "—", "—"]
    sizes = api["sample_size_per_arm"]
    assert (
        f"about {sizes['5']:,} conversations for 5 points and {sizes['2']:,} for 2 points"
        in response.content.decode()
    )


def test_topics_with_a_significant_change_come_first(staff_client, versions):
    page = staff_client.get(URL, {"kind": "bot_version", "a": "1.0", "b": "2.0"}).content.decode()
    topics = re.findall(r'<tr data-topic="([^"]*)" data-significant="(true|false)">', page)
    # Both have 60 conversations: refund (10 -> 28 of 30 resolved) changed, billing did not.
    assert topics == [("refund", "true"), ("billing", "false")]
    assert "1 topic changed significantly" in page


def test_two_channels_keep_the_version_filter(staff_client, versions):
    response = staff_client.get(URL, {"kind": "channel", "a": "email", "b": "web", "bot_version": "2.0"})
    assert response.status_code == 200
    rows = figure_rows(response.content.decode())
    assert rows["total_conversations"][1:3] == ["30", "30"]  # version 2.0 only
    assert response.context["page"].a_label == "Channel email"


def test_two_periods_are_whole_days(staff_client, versions):
    response = staff_client.get(
        URL,
        {"kind": "period", "a_start": "2026-03-09", "a_end": "2026-03-10",
         "b_start": "2026-03-12", "b_end": "2026-03-13"},
    )  # fmt: skip
    assert response.status_code == 200
    page = response.context["page"]
    assert (page.a_label, page.b_label) == ("Mar 9, 2026 – Mar 10, 2026", "Mar 12, 2026 – Mar 13, 2026")
    # Days 1..5 before T0 (noon, Mar 14): Mar 13 and 12 hold the days 1 and 2 before, Mar 10
    # and 9 the days 4 and 5.
    assert (page.a_conversations, page.b_conversations) == (48, 48)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "bot_version", "a": "1.0"}, "b"),
        (
            {"kind": "period", "a_start": "2026-03-01", "a_end": "2026-03-02", "b_start": "2026-03-03"},
            "b_end",
        ),
        (
            {
                "kind": "period",
                "a_start": "2026-03-05",
                "a_end": "2026-03-02",
                "b_start": "2026-03-03",
                "b_end": "2026-03-04",
            },
            "a_end",
        ),
        ({"kind": "sideways", "a": "1.0", "b": "2.0"}, "kind"),
    ],
)
def test_an_incomplete_or_bad_comparison_is_a_400_naming_the_field(staff_client, versions, params, field):
    response = staff_client.get(URL, params)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert "That comparison is not valid." in response.content.decode()


# --- Annotations on the dashboard, and an annotation's impact page ---------------------------


def note(at, title="Refund flow changed", **fields) -> Annotation:
    return Annotation.objects.create(timestamp=at, title=title, kind="knowledge_base", **fields)


def test_annotations_are_numbered_markers_on_the_time_series_charts(staff_client, versions):
    # 7 days: Mar 8 .. Mar 14 (daily buckets); Mar 12 06:00 is a quarter of the way into its day.
    # (Without the release annotations the fixture's first conversations of 1.0 and 2.0 made.)
    assert sorted(Annotation.objects.values_list("title", flat=True)) == [
        "Bot version 1.0 released",
        "Bot version 2.0 released",
    ]
    Annotation.objects.all().delete()
    first = note(T0 - timedelta(days=2, hours=6), title="KB: refunds rewritten")
    note(T0 - timedelta(days=1), title="Email outage", channel="email")
    note(T0 - timedelta(days=8), title="Too early")
    response = staff_client.get("/dashboard/", {"range": "7d"})
    page = response.content.decode()

    charts = {chart.slug: chart for chart in response.context["charts"]}
    for slug in ("volume", "resolution", "csat", "savings"):
        assert [marker.number for marker in charts[slug].markers] == ["1", "2"], slug
    assert charts["topics"].markers == []
    [marker, _] = charts["resolution"].markers
    slot = 580 / 7  # the plot's width over the 7 buckets
    assert float(marker.x) == pytest.approx(48 + slot * (4 + 6 / 24), abs=0.01)
    assert marker.label == "Mar 12, 06:00 · knowledge base update: KB: refunds rewritten"
    assert marker.url == f"/dashboard/annotations/{first.pk}/"
    listed = re.findall(r'<li data-annotation="(\d+)"><a href="([^"]+)">([^<]+)</a>', page)
    assert [(number, url) for number, url, _ in listed] == [
        ("1", f"/dashboard/annotations/{first.pk}/"),
        ("2", f"/dashboard/annotations/{first.pk + 1}/"),
    ]
    assert listed[1][2] == "Mar 13, 12:00 · incident (channel email): Email outage".replace(
        "incident", "knowledge base update"
    )
    # Filtered by the web channel: the email outage is not web's.
    web = staff_client.get("/dashboard/", {"range": "7d", "channel": "web"})
    assert [mark.annotation.title for mark in web.context["annotations"]] == ["KB: refunds rewritten"]


def test_an_annotation_page_shows_its_impact_as_the_api_answers_it(staff_client, versions):
    moment = T0 - timedelta(days=3)
    annotation = note(moment, channel="web")
    response = staff_client.get(f"/dashboard/annotations/{annotation.pk}/")
    assert response.status_code == 200
    impact = staff_client.get(f"/api/annotations/{annotation.pk}/impact/").json()
    rows = figure_rows(response.content.decode())
    assert rows["total_conversations"][1:3] == [
        f"{impact['a']['total_conversations']:,}",
        f"{impact['b']['total_conversations']:,}",
    ]
    assert rows["ai_resolution_rate"][5] == formatting.p_value(
        impact["changes"]["ai_resolution_rate"]["p_value"]
    )
    page = response.context["page"]
    assert page.a_label == "7 days before (Mar 4, 2026 – Mar 11, 2026)"
    assert page.b_label == "After, so far (Mar 11, 2026 – Mar 14, 2026)"
    assert "The web channel's traffic" in response.content.decode()


def test_an_annotation_not_in_the_past_has_nothing_to_compare(staff_client, frozen_now):
    annotation = note(T0 + timedelta(hours=1))
    response = staff_client.get(f"/dashboard/annotations/{annotation.pk}/")
    assert response.status_code == 200
    assert "Nothing to compare yet" in response.content.decode()
    assert staff_client.get(f"/dashboard/annotations/{annotation.pk + 1}/").status_code == 404
