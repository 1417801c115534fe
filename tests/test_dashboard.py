import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
import time_machine
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from conversations import formatting
from conversations.analytics.query import Granularity
from conversations.views import bucket_end
from tests.conftest import T0
from tests.factories import ConversationFactory
from tests.scans import topic_names

pytestmark = pytest.mark.django_db

URL = "/dashboard/"


@pytest.fixture
def conversations(frozen_now):
    """Conversations spread over the current and the previous 7-day period before T0."""
    h = timedelta(hours=1)
    specs = [
        # (hours before T0, resolved, csat, topics, channel, bot version, ai_cost)
        (1, True, 5, ["billing"], "web", "2.0", None),
        (3, False, 2, ["billing", "refund"], "email", "2.0", Decimal("0.20")),
        (20, True, None, ["shipping"], "web", "1.0", Decimal("0.01")),
        (30, True, 4, ["refund"], "web", "1.0", None),
        (50, False, 1, ["billing"], "sms", "1.0", None),
        (100, True, 3, ["password reset"], "web", "2.0", None),
        (150, False, None, ["refund"], "email", "1.0", None),
        # previous period
        (200, True, 5, ["billing"], "web", "1.0", None),
        (250, False, 2, ["refund"], "web", "1.0", None),
        (300, False, None, ["shipping"], "email", "1.0", None),
    ]
    return [
        ConversationFactory(
            timestamp=T0 - hours * h,
            resolved_by_ai=resolved,
            csat=csat,
            topics=topics,
            channel=channel,
            bot_version=version,
            ai_cost=cost,
            avg_response_ms=300.0 + 100 * index,
            turns=2 + index,
        )
        for index, (hours, resolved, csat, topics, channel, version, cost) in enumerate(specs)
    ]


def kpi_values(page: str) -> dict[str, str]:
    pairs = re.findall(r'data-kpi="(\w+)">\s*<h2>[^<]*</h2>\s*<p class="kpi-value">([^<]*)</p>', page)
    return {key: html.unescape(value) for key, value in pairs}


def topic_table(page: str) -> list[list[str]]:
    body = re.search(r'<table id="topics">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([visible_text(cell) for cell in cells])
    return rows


def visible_text(fragment: str) -> str:
    """The text a sighted reader sees: without the screen-reader-only spans."""
    shown = re.sub(r'<span class="sr-only">[^<]*</span>', "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", shown)).split())


def api_window(response) -> dict:
    period = response.context["query"].period
    return {"start": period.start.isoformat(), "end": period.end.isoformat()}


def d(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"range": "24h"},
        {"range": "30d"},
        {"range": "7d", "channel": "web"},
        {"range": "90d", "bot_version": "1.0"},
    ],
)
def test_every_kpi_equals_the_api(staff_client, conversations, params):
    page = staff_client.get(URL, params)
    assert page.status_code == 200
    filters = {key: value for key, value in params.items() if key != "range"}
    api = staff_client.get("/api/analytics", {**api_window(page), **filters}).json()

    assert kpi_values(page.content.decode()) == {
        "conversations": f"{api['total_conversations']:,}",
        "ai_resolution_rate": formatting.rate(d(api["ai_resolution_rate"])),
        "csat": formatting.rate(d(api["csat"]["score"])),
        "savings": formatting.money(d(api["estimated_savings"]), api["cost"]["currency"]),
        "avg_turns": formatting.number(d(api["avg_turns"]), 1),
        "p95_response_ms": formatting.milliseconds(d(api["response_time"]["p95_ms"])),
    }


def test_kpis_for_the_default_range_worked_out_by_hand(staff_client, conversations):
    # Last 7 days = 2026-03-08 00:00 to T0: the first seven conversations.
    values = kpi_values(staff_client.get(URL).content.decode())
    assert values == {
        "conversations": "7",
        "ai_resolution_rate": "57.1%",  # 4 of 7
        "csat": "40.0%",  # 5 and 4 of five ratings
        # 4 × $5 − (0.05 + 0.20 + 0.01 + 0.05 × 4)
        "savings": "$19.54",
        "avg_turns": "5.0",
        # 300..900 ms: exact 300 + 0.95 × 600 = 870; the histogram's p95 reads 877 (+0.8%)
        "p95_response_ms": "877 ms",
    }


def kpi_card(page: str, key: str) -> str:
    return re.search(rf'data-kpi="{key}">(.*?)</article>', page, re.S).group(1)


def test_a_change_that_is_not_significant_is_grey_with_its_p_value(staff_client, conversations):
    page = staff_client.get(URL).content.decode()
    card = kpi_card(page, "ai_resolution_rate")
    # Previous 7 days: 1 of 3 resolved (33.3%) -> 4 of 7 (57.1%): +23.8 pp, but on 10
    # conversations that is noise (pooled z-test: p = 0.490, as statsmodels' proportions_ztest).
    assert "trend-flat" in card
    assert "trend-good" not in card and "▲" not in card
    assert "+23.8 pp" in card and "33.3%" in card
    assert "no significant change" in visible_text(card)
    assert 'title="No significant change (p = 0.49)"' in card
    # p95 and money have no test: grey too, and said so.
    assert "trend-untested" in kpi_card(page, "savings")
    assert "trend-untested" in kpi_card(page, "p95_response_ms")


def test_a_significant_change_is_coloured_by_whether_it_is_good_news(staff_client, frozen_now):
    # Previous 7 days: 40 conversations, 10 resolved (25%); last 7 days: 40, 30 resolved (75%).
    for index in range(80):
        ConversationFactory(
            timestamp=T0 - timedelta(days=10 if index < 40 else 2, minutes=index),
            resolved_by_ai=(index % 4 == 0) if index < 40 else (index % 4 != 0),
            turns=(2 if index < 40 else 8) + index % 3,
            topics=["billing"] if index % 2 else ["refund"],
        )
    page = staff_client.get(URL).content.decode()
    rate = kpi_card(page, "ai_resolution_rate")
    p_value = proportions_ztest([30, 10], [40, 40])[1]
    assert p_value < 0.0001
    assert "trend-good" in rate and "▲" in rate and "+50.0 pp" in rate
    low, high = confint_proportions_2indep(30, 40, 10, 40, method="newcomb")
    assert (
        f"Significant change (p &lt; 0.0001); 95% interval of the difference: "
        f"+{100 * low:.1f} pp to +{100 * high:.1f} pp" in rate
    )
    # More turns is bad news: ▲ (up), coloured as bad.
    turns = kpi_card(page, "avg_turns")
    assert "trend-bad" in turns and "▲" in turns and "+6.0" in turns
    # The volume did not change: 40 and 40.
    assert "trend-flat" in kpi_card(page, "conversations")
    # Per topic (20 and 20 each): billing (odd indexes) 0 of 20 resolved -> 20 of 20.
    billing = re.search(r'<tr><th scope="row"><a[^>]*>billing</a>.*?</tr>', page, re.S).group(0)
    assert re.search(
        r'class="small trend-good"[^>]*data-significant="true">'
        r'<span aria-hidden="true">▲</span> \(\+100\.0 pp\)',
        billing,
    )
    assert re.search(r'class="small trend-flat"[^>]*data-significant="false">±0\.0%', billing)


def test_small_samples_are_flagged(staff_client, conversations):
    page = staff_client.get(URL).content.decode()
    assert "Only 7 conversations: not a trend yet" in page
    assert "Only 5 ratings: not a trend yet" in page


def test_topics_table_equals_the_api(staff_client, conversations):
    page = staff_client.get(URL, {"range": "30d"})
    api = staff_client.get("/api/analytics/topics/", api_window(page)).json()["topics"]

    rows = topic_table(page.content.decode())
    # A cell shows its number first, then a note in brackets (rate change, number of ratings).
    assert [[cell.split(" (")[0] for cell in row[:6]] for row in rows] == [
        [
            topic["topic"],
            f"{topic['conversations']:,}",
            formatting.rate(d(topic["share"])),
            formatting.rate(d(topic["ai_resolution_rate"])),
            f"{topic['escalations']:,}",
            formatting.number(d(topic["avg_csat"]), 2),
        ]
        for topic in api
    ]
    assert [row[0] for row in rows] == ["billing", "refund", "shipping", "password reset"]
    # Nothing in the 30 days before: every topic is new. No customer ids: no repeat contacts.
    assert rows[0] == ["billing", "4", "40.0%", "50.0%", "2", "3.25 (4)", "—", "new"]


def test_topics_table_compares_with_the_previous_period(staff_client, conversations):
    rows = topic_table(staff_client.get(URL, {"range": "7d"}).content.decode())
    # billing: 3 conversations, 1 resolved now; 1 conversation, resolved, in the 6.5 days before.
    assert rows[0] == ["billing", "3", "42.9%", "33.3% (−66.7 pp)", "2", "2.67 (3)", "—", "+200.0%"]


def test_topics_table_sorts(staff_client, conversations):
    names = [
        row[0]
        for row in topic_table(staff_client.get(URL, {"range": "30d", "sort": "topic"}).content.decode())
    ]
    assert names == sorted(names)
    by_rate = topic_table(
        staff_client.get(URL, {"range": "30d", "sort": "-ai_resolution_rate"}).content.decode()
    )
    assert by_rate[0][0] == "password reset"  # 100%


def test_drilldown_links_open_the_admin_filtered_by_topic_and_range(
    staff_client, conversations, django_user_model
):
    page = staff_client.get(URL, {"range": "7d", "channel": "web"})
    links = re.findall(r'<a data-drilldown href="([^"]+)">([^<]+)</a>', page.content.decode())
    href = next(html.unescape(href) for href, name in links if name == "billing")

    query = parse_qs(urlparse(href).query)
    assert urlparse(href).path == "/admin/conversations/conversation/"
    assert query["timestamp__gte"] == ["2026-03-08T00:00:00+00:00"]
    assert query["timestamp__lt"] == ["2026-03-14T12:00:00+00:00"]
    assert query["channel__exact"] == ["web"]

    admin = django_user_model.objects.create_superuser(username="boss", email="", password=None)
    staff_client.force_login(admin)
    changelist = staff_client.get(href)
    assert changelist.status_code == 200
    listed = {c.session_id for c in changelist.context["cl"].result_list}
    expected = {
        c.session_id
        for c in conversations
        if "billing" in topic_names(c)
        and c.channel == "web"
        and datetime(2026, 3, 8, tzinfo=UTC) <= c.timestamp < T0
    }
    assert listed == expected and len(expected) == 1


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="support-')
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_topics_csv_has_the_numbers_on_the_screen(staff_client, conversations):
    params = {"range": "30d"}
    screen = topic_table(staff_client.get(URL, params).content.decode())
    rows = read_csv(staff_client.get("/dashboard/topics.csv", params))

    assert rows[0][:6] == [
        "topic",
        "conversations",
        "share_pct",
        "ai_resolution_rate_pct",
        "escalations",
        "avg_csat",
    ]
    assert [row[0] for row in rows[1:]] == [row[0] for row in screen]
    for csv_row, screen_row in zip(rows[1:], screen, strict=True):
        assert f"{int(csv_row[1]):,}" == screen_row[1]
        assert formatting.rate(Decimal(csv_row[2])) == screen_row[2]
        assert screen_row[3].startswith(formatting.rate(Decimal(csv_row[3])))
        assert f"{int(csv_row[4]):,}" == screen_row[4]
        assert screen_row[5].startswith(formatting.number(Decimal(csv_row[5]) if csv_row[5] else None, 2))


def test_timeseries_csv_equals_the_api_series(staff_client, conversations):
    page = staff_client.get(URL, {"range": "7d"})
    rows = read_csv(staff_client.get("/dashboard/timeseries.csv", {"range": "7d"}))
    api = staff_client.get("/api/analytics/timeseries/", {**api_window(page), "granularity": "day"}).json()

    assert rows[0] == [
        "bucket_start", "conversations", "ai_resolved", "escalated", "ai_resolution_rate_pct",
        "csat_responses", "avg_csat", "csat_score_pct", "avg_turns", "p95_response_ms", "savings",
        "cumulative_savings",
    ]  # fmt: skip
    assert len(rows) - 1 == len(api["buckets"]) == 7  # Mar 8..14, empty days included
    for row, bucket in zip(rows[1:], api["buckets"], strict=True):
        assert row[0] == bucket["start"]
        assert int(row[1]) == bucket["conversations"]
        assert d(row[4] or None) == d(bucket["ai_resolution_rate"])
        assert d(row[10]) == d(bucket["savings"])
    assert d(rows[-1][11]) == sum(d(b["savings"]) for b in api["buckets"])


def test_24_hour_range_is_hourly(staff_client, conversations):
    rows = read_csv(staff_client.get("/dashboard/timeseries.csv", {"range": "24h"}))
    assert len(rows) - 1 == 24  # T0 is on the hour: 24 whole hour buckets
    assert rows[1][0] == "2026-03-13T12:00:00+00:00"


def test_csv_neutralizes_formulas_and_the_page_escapes_html(staff_client, frozen_now):
    ConversationFactory(timestamp=T0 - timedelta(hours=1), topics=['=hyperlink("http://x")'])
    ConversationFactory(timestamp=T0 - timedelta(hours=2), topics=["<script>alert(1)</script>"])

    rows = read_csv(staff_client.get("/dashboard/topics.csv"))
    assert sorted(row[0] for row in rows[1:]) == ['\'=hyperlink("http://x")', "<script>alert(1)</script>"]

    page = staff_client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_charts_are_inline_svg_with_titles_and_data_tables(staff_client, conversations):
    page = staff_client.get(URL).content.decode()
    figures = re.findall(r'<figure class="chart" id="chart-([\w-]+)">(.*?)</figure>', page, re.S)
    assert [slug for slug, _ in figures] == [
        "volume",
        "resolution",
        "csat",
        "savings",
        "csat-distribution",
        "topics",
    ]
    for _, figure in figures:
        assert re.search(r'<svg [^>]*role="img" aria-labelledby="[^"]+"', figure)
        assert "<title" in figure and "<desc" in figure
        assert "<table>" in figure
    # Seven daily buckets, the empty ones included, in the volume chart's data table.
    volume = dict(figures)["volume"]
    assert volume.count('<th scope="row">') == 7
    assert "target 60–70%" in page.lower()


# --- The unfinished last bucket -----------------------------------------------------------

SERIES_CHARTS = ["volume", "resolution", "csat", "savings"]
NEW_YORK = ZoneInfo("America/New_York")


def partial_marks(response) -> dict[str, dict]:
    """Per time-series chart: which table rows say "(so far)", its hatched or dashed shapes, its note."""
    marks = {}
    for chart in response.context["charts"]:
        if chart.slug not in SERIES_CHARTS:
            assert chart.partial_note == ""
            continue
        marks[chart.slug] = {
            "rows": [index for index, row in enumerate(chart.table_rows) if row[0].endswith(" (so far)")],
            "bars": [rect.x for rect in chart.rects if rect.css_class == "partial-hatch"],
            "steps": [
                path.d for path in chart.paths if {"series-line", "partial"} <= set(path.css_class.split())
            ],
            "dots": [
                dot.label for dot in chart.dots if {"series-dot", "partial"} <= set(dot.css_class.split())
            ],
            "note": chart.partial_note,
        }
    return marks


def test_seven_days_mark_only_today_as_partial(staff_client, conversations):
    response = staff_client.get(URL, {"range": "7d"})

    marks = partial_marks(response)
    last = 6  # Mar 8 .. Mar 14, T0 is noon on Mar 14
    assert {slug: mark["rows"] for slug, mark in marks.items()} == {slug: [last] for slug in SERIES_CHARTS}
    volume = response.context["charts"][0]
    assert volume.table_rows[last][0] == "Mar 14 (so far)"
    today_bars = {rect.x for rect in volume.rects if rect.label.startswith("Mar 14 (so far):")}
    assert len(today_bars) == 1 and marks["volume"]["bars"] == list(today_bars)
    assert marks["volume"]["note"] == "Latest day is still in progress (hatched bar: so far)."
    for slug in ["resolution", "csat", "savings"]:
        # One dashed step, from Mar 13 to Mar 14, and Mar 14's dot alone hollow.
        assert len(marks[slug]["steps"]) == 1, slug
        assert [label.split(":")[0] for label in marks[slug]["dots"]] == ["Mar 14 (so far)"], slug
        assert marks[slug]["note"].startswith("Latest day is still in progress"), slug
    page = response.content.decode()
    assert page.count('<p class="partial-note">Latest day is still in progress') == 4
    assert page.count(">In progress (so far)</li>") == 4
    assert 'id="partial-hatch"' in page


@pytest.mark.parametrize(
    "params",
    [
        {"range": "custom", "start": "2026-03-01", "end": "2026-03-13"},
        {"range": "custom", "start": "2026-03-13", "end": "2026-03-13"},
        {"range": "24h"},  # T0 is on the hour: the last hour is whole
    ],
)
def test_whole_past_buckets_are_not_partial(staff_client, conversations, params):
    response = staff_client.get(URL, params)

    assert response.status_code == 200
    assert all(
        mark == {"rows": [], "bars": [], "steps": [], "dots": [], "note": ""}
        for mark in partial_marks(response).values()
    )
    page = response.content.decode()
    assert "(so far)" not in page
    assert "partial-note" not in page


def test_the_current_hour_is_partial_in_the_24_hour_range(staff_client, conversations):
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        response = staff_client.get(URL, {"range": "24h"})

    assert response.context["query"].granularity == Granularity.HOUR
    volume = response.context["charts"][0]
    assert [row[0] for row in volume.table_rows if row[0].endswith("(so far)")] == ["12:00 (so far)"]
    assert volume.partial_note.startswith("Latest hour is still in progress")


@pytest.mark.parametrize(
    ("start", "granularity", "end"),
    [
        # New York's 23-hour and 25-hour days, and the hours either side of a change (UTC hours).
        (datetime(2026, 3, 8, tzinfo=NEW_YORK), Granularity.DAY, datetime(2026, 3, 9, 4, tzinfo=UTC)),
        (datetime(2026, 11, 1, tzinfo=NEW_YORK), Granularity.DAY, datetime(2026, 11, 2, 5, tzinfo=UTC)),
        (datetime(2026, 3, 2, tzinfo=NEW_YORK), Granularity.WEEK, datetime(2026, 3, 9, 4, tzinfo=UTC)),
        (datetime(2026, 11, 1, 5, 0, tzinfo=UTC), Granularity.HOUR, datetime(2026, 11, 1, 6, tzinfo=UTC)),
        (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), Granularity.HOUR, datetime(2026, 11, 1, 7, tzinfo=UTC)),
    ],
)
def test_bucket_end_steps_in_local_wall_clock_time(start, granularity, end):
    local_start = start.astimezone(NEW_YORK)
    assert bucket_end(local_start, granularity=granularity, tz=NEW_YORK) == end


@pytest.mark.parametrize(
    ("now", "params", "partial"),
    [
        # 23:30 on Nov 1 in New York, a 25-hour day: 24 hours after its start it still runs.
        (datetime(2026, 11, 2, 4, 30, tzinfo=UTC), {"range": "7d"}, True),
        # Whole days up to Mar 8, a 23-hour day: it ended when the range did.
        (
            datetime(2026, 3, 14, 12, tzinfo=UTC),
            {"range": "custom", "start": "2026-03-02", "end": "2026-03-08"},
            False,
        ),
    ],
)
def test_partial_follows_local_days_across_dst(staff_client, settings, now, params, partial):
    settings.ANALYTICS_TIME_ZONE = "America/New_York"
    with time_machine.travel(now, tick=False):
        ConversationFactory(timestamp=now - timedelta(hours=2))
        response = staff_client.get(URL, params)

    volume = response.context["charts"][0]
    assert [row[0].endswith("(so far)") for row in volume.table_rows] == [False] * 6 + [partial]


@pytest.mark.parametrize(
    "params",
    [
        {"range": "24h"},
        {"range": "7d"},
        {"range": "90d", "channel": "web"},
        {"range": "custom", "start": "2025-03-15", "end": "2026-03-14"},
    ],
)
def test_query_count_is_bounded_whatever_the_range(
    staff_client, conversations, django_assert_max_num_queries, params
):
    staff_client.get(URL)  # creates the cost settings row
    # session, user, cost settings; one statement (rollup rows and raw partial hours
    # together) for the totals and topics now and before, one for the series; the filter
    # menus; "is there any data at all" when the range is empty; the firing alerts (none
    # here: one query; tests/test_alert_banner.py).
    with django_assert_max_num_queries(3 + 2 + 1 + 1 + 1):
        assert staff_client.get(URL, params).status_code == 200


def test_empty_state_explains_how_to_send_data(staff_client, frozen_now):
    page = staff_client.get(URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert "No conversations yet" in text
    assert "Authorization: Bearer YOUR_API_KEY" in text
    assert "http://testserver/api/conversations/" in text
    assert 'href="http://testserver/api/docs/"' in text
    assert 'data-kpi="' not in text


def test_empty_range_with_data_elsewhere_says_so(staff_client, frozen_now):
    ConversationFactory(timestamp=T0 - timedelta(days=60))
    text = staff_client.get(URL, {"range": "24h"}).content.decode()
    assert "No conversations in this range" in text
    assert 'data-kpi="conversations"' in text
    assert topic_table(text) == [["No topics in this range."]]


@pytest.mark.parametrize(
    "params",
    [
        {"range": "5y"},
        {"range": "custom"},
        {"range": "custom", "start": "2026-03-10", "end": "2026-03-01"},
        {"range": "custom", "start": "2020-01-01", "end": "2026-01-01"},
        {"range": "custom", "start": "yesterday", "end": "2026-03-01"},
        {"sort": "-password"},
        {"channel": "x" * 65},
        {"range": "custom", "start": "0001-01-01", "end": "0001-01-05"},
        {"range": "custom", "start": "9999-12-30", "end": "9999-12-31"},
    ],
)
def test_bad_query_strings_get_400_with_a_message(staff_client, frozen_now, params):
    for url in (URL, "/dashboard/topics.csv", "/dashboard/timeseries.csv"):
        response = staff_client.get(url, params)
        assert response.status_code == 400
    assert "not valid" in staff_client.get(URL, params).content.decode()


def test_custom_range_covers_whole_days_in_the_configured_time_zone(staff_client, frozen_now, settings):
    settings.ANALYTICS_TIME_ZONE = "America/New_York"
    ConversationFactory(timestamp=datetime(2026, 3, 10, 3, 30, tzinfo=UTC))  # 23:30 on Mar 9 in New York
    ConversationFactory(timestamp=datetime(2026, 3, 10, 5, 30, tzinfo=UTC))  # 01:30 on Mar 10
    page = staff_client.get(URL, {"range": "custom", "start": "2026-03-10", "end": "2026-03-10"})
    assert kpi_values(page.content.decode())["conversations"] == "1"
    assert page.context["query"].period.start == datetime(2026, 3, 10, 4, tzinfo=UTC)  # EDT since Mar 8


def test_custom_range_that_includes_today_ends_now(staff_client, conversations):
    page = staff_client.get(URL, {"range": "custom", "start": "2026-03-08", "end": "2026-03-14"})
    query = page.context["query"]
    assert (query.period.start, query.period.end) == (datetime(2026, 3, 8, tzinfo=UTC), T0)
    # The same window as "last 7 days", so the same comparison.
    assert kpi_values(page.content.decode()) == kpi_values(
        staff_client.get(URL, {"range": "7d"}).content.decode()
    )


def test_24_hours_is_the_apis_hours_24(staff_client, frozen_now):
    ConversationFactory(timestamp=T0 - timedelta(hours=24))  # exactly at the cutoff: out, as in the API
    ConversationFactory(timestamp=T0 - timedelta(hours=23))
    assert kpi_values(staff_client.get(URL, {"range": "24h"}).content.decode())["conversations"] == "1"
    assert staff_client.get("/api/analytics", {"hours": 24}).json()["total_conversations"] == 1


def test_filter_form_keeps_the_range(staff_client, conversations):
    page = staff_client.get(URL, {"range": "24h"}).content.decode()
    filters = re.search(
        r'<form method="get" class="filters" aria-label="Filters">(.*?)</form>', page, re.S
    ).group(1)
    assert '<input type="hidden" name="range" value="24h">' in filters
    assert 'name="start"' not in filters
    custom = staff_client.get(
        URL, {"range": "custom", "start": "2026-03-01", "end": "2026-03-05"}
    ).content.decode()
    filters = re.search(
        r'<form method="get" class="filters" aria-label="Filters">(.*?)</form>', custom, re.S
    ).group(1)
    assert '<input type="hidden" name="start" value="2026-03-01">' in filters


# --- Access -----------------------------------------------------------------------------------

PAGES = [URL, "/dashboard/topics.csv", "/dashboard/timeseries.csv"]


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_goes_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


@pytest.mark.parametrize("url", PAGES)
def test_logged_in_non_staff_gets_403(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user(username="agent", password=None))
    assert client.get(url).status_code == 403


def test_an_api_key_does_not_open_the_dashboard(read_client):
    assert read_client.get(URL).status_code == 302


def test_root_redirects_to_the_dashboard(client):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")


def test_login_page_logs_staff_in_and_returns_to_the_dashboard(client, staff_user):
    page = client.get("/accounts/login/?next=/dashboard/")
    assert page.status_code == 200
    assert b"Support Analytics" in page.content and b'name="password"' in page.content
    response = client.post(
        "/accounts/login/", {"username": "lead", "password": "pw-lead-123", "next": "/dashboard/"}
    )
    assert (response.status_code, response["Location"]) == (302, "/dashboard/")
    assert client.get(URL).status_code == 200


def test_wrong_password_stays_on_the_login_page(client, staff_user):
    response = client.post("/accounts/login/", {"username": "lead", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct" in response.content


def test_page_assets_are_served_by_the_project(staff_client, conversations):
    page = staff_client.get(URL).content.decode()
    assets = re.findall(r'<(?:link|script|img)[^>]+(?:href|src)="([^"]+)"', page)
    assert assets and all(asset.startswith("/static/") for asset in assets)
    for asset in assets:
        assert staff_client.get(asset).status_code == 200
    assert "<script" not in page  # the page needs no JavaScript


def test_rate_charts_draw_the_api_intervals_and_fade_small_buckets(staff_client, frozen_now):
    # Mar 12: 40 conversations, 30 resolved; Mar 13: 3, 1 resolved; Mar 14 (today): none.
    for index in range(43):
        day = T0 - timedelta(days=2 if index < 40 else 1, hours=2)
        ConversationFactory(
            timestamp=day - timedelta(minutes=index),
            resolved_by_ai=(index % 4 != 0 and index < 40) or index == 40,
        )
    page = staff_client.get(URL, {"range": "7d"})
    api = staff_client.get("/api/analytics/timeseries/", {**api_window(page), "granularity": "day"}).json()
    chart = next(chart for chart in page.context["charts"] if chart.slug == "resolution")

    assert chart.table_headers == ["Period", "AI resolution rate", "95% interval", "Conversations"]
    by_day = {row[0]: row[1:] for row in chart.table_rows}
    for bucket in api["buckets"]:
        label = datetime.fromisoformat(bucket["start"]).strftime("%b %d")
        row = by_day.get(label) or by_day[f"{label} (so far)"]
        interval = bucket["ai_resolution_rate_ci95"]
        expected = (
            "—"
            if interval is None
            else f"{formatting.rate(d(interval[0]))} – {formatting.rate(d(interval[1]))}"
        )
        assert row[1:] == [expected, f"{bucket['conversations']:,}"]
    assert by_day["Mar 12"][1] != "—" and by_day["Mar 08"][1] == "—"
    # One shaded area per run of days with an interval: Mar 12 and 13 together.
    assert len([path for path in chart.paths if path.css_class == "ci-band"]) == 1
    # Mar 13 (3 conversations) is faint, and so is the step to it; Mar 12 (40) is not.
    dots = {dot.label.split(":")[0]: dot.css_class for dot in chart.dots}
    assert dots == {"Mar 12": "series-dot", "Mar 13": "series-dot faint"}
    assert [path.css_class for path in chart.paths if "series-line" in path.css_class] == [
        "series-line faint"
    ]
    assert ("faint-line", "Under 30 conversations: faint") in chart.legend
