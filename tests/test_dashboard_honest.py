"""The dashboard's "Is it really resolved?" panel (issue 16): outcome mix, confirmed / assumed /
durable resolution beside the headline rate, escalation reasons and their cost, the
repeat-contact column, knowledge-gap costs, coverage notes and the escalation reason filter.

Conversations go in through the ingestion service; the page is read as a staff user at T0."""

import functools
import html
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest

from conversations import formatting, services
from conversations.analytics.metrics import METRICS
from conversations.models import CostSettings
from tests.conftest import T0
from tests.factories import conversation_in
from tests.test_dashboard import URL, api_window, d, kpi_values, read_csv, topic_table

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
MONTH = {"range": "30d"}  # Feb 13 00:00 to T0: reaches back past the 7-day settling


item = functools.partial(conversation_in, turns=3)


@pytest.fixture
def honest(frozen_now):
    """Ten conversations in the last 30 days, at €7.50 of human time each.

    Settled (customer id, ended by T0 − 7 days): a1 a2 a3 b1 b2; AI-resolved among them:
    a1 a2 b1 b2; followed up: a1 (a2 a day later) and a2 (a3 four days later). b1 and b2 came
    back only 8 days later: not followed up.
    """
    CostSettings.objects.update_or_create(
        id=CostSettings.SINGLETON_ID,
        defaults={"human_cost_per_conversation": Decimal("7.50"), "currency": "EUR"},
    )
    services.conversations_ingest(
        items=[
            item("a1", T0 - 20 * DAY, customer="ann", outcome="confirmed", topics=("billing",)),
            item("a2", T0 - 19 * DAY, customer="ann", outcome="assumed", topics=("billing",)),
            item("a3", T0 - 15 * DAY, customer="ann", resolved=False, outcome="escalated",
                 escalation_reason="refund policy", topics=("billing",)),
            item("b1", T0 - 18 * DAY, customer="bob", outcome="assumed", topics=("shipping",)),
            item("b2", T0 - 10 * DAY, customer="bob", outcome="confirmed", topics=("shipping",)),
            item("b3", T0 - 2 * DAY, customer="bob", topics=("shipping",)),
            item("n1", T0 - 12 * DAY, resolved=False, outcome="abandoned", escalation_reason="bot loop",
                 topics=("billing",)),
            item("n2", T0 - 5 * DAY, resolved=False, escalation_reason="refund policy", topics=("refund",)),
            item("n3", T0 - 1 * DAY, resolved=False, outcome="escalated", escalation_reason="refund policy",
                 topics=("refund",)),
            item("n4", T0 - timedelta(hours=3), topics=("refund",)),
        ]
    )  # fmt: skip


def page_of(response) -> str:
    assert response.status_code == 200, response.content[:2000]
    return response.content.decode()


def text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped (inline ones without a space), entities
    read, spaces collapsed."""
    inline = re.sub(r"</?(?:code|strong|span|a)\b[^>]*>", "", fragment)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def panel(page: str) -> str:
    return re.search(r'<section class="panel honest" id="honest".*?</section>', page, re.S).group(0)


def rate_cards(page: str) -> dict[str, dict[str, str]]:
    """Per rate card: its value, the lines under it (by class) and its definition."""
    cards = {}
    for key, body in re.findall(r'<article class="rate" data-rate="(\w+)">(.*?)</article>', page, re.S):
        lines = {
            css: text(inner) for css, inner in re.findall(r'<p class="([\w -]+)"[^>]*>(.*?)</p>', body, re.S)
        }
        definition = re.search(r'<details class="definition">(.*?)</details>', body, re.S).group(1)
        cards[key] = {**lines, "definition": text(definition)}
    return cards


def reason_rows(page: str) -> list[list[str]]:
    body = re.search(r'<table id="escalation-reasons".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in
            re.findall(r"<tr>(.*?)</tr>", body, re.S)]  # fmt: skip


def reason_links(page: str) -> dict[str, str]:
    return {
        html.unescape(name): html.unescape(href)
        for href, name in re.findall(r'<a data-reason-filter href="([^"]+)"[^>]*>([^<]+)</a>', page)
    }


def coverage_notes(page: str) -> dict[str, str]:
    return {key: text(note) for key, note in re.findall(r'<li data-coverage="(\w+)">(.*?)</li>', page, re.S)}


def howtos(page: str) -> list[str]:
    return re.findall(r'data-howto="(\w+)"', page)


def gaps(page: str) -> list[str]:
    return [text(item) for item in re.findall(r"<li data-gap=[^>]*>(.*?)</li>", page, re.S)]


def definition_text(name: str) -> str:
    return " ".join(METRICS[name].doc.replace("`", "").split())


# --- The rates beside the headline -------------------------------------------------------------


def test_rates_counts_and_definitions_worked_out_by_hand(staff_client, honest):
    page = page_of(staff_client.get(URL, MONTH))
    cards = rate_cards(page)

    assert list(cards) == [
        "ai_resolution_rate",
        "confirmed_resolution_rate",
        "assumed_resolution_rate",
        "durable_resolution_rate",
    ]
    assert {key: card["rate-value"] for key, card in cards.items()} == {
        "ai_resolution_rate": "60.0%",  # a1 a2 b1 b2 b3 n4 of 10
        "confirmed_resolution_rate": "20.0%",  # a1 b2
        "assumed_resolution_rate": "20.0%",  # a2 b1
        "durable_resolution_rate": "40.0%",  # (4 settled AI-resolved − 2 followed up) / 5 settled
    }
    assert cards["ai_resolution_rate"]["rate-detail muted"] == (
        "6 of 10 conversations, as the bot reports resolved_by_ai"
    )
    assert cards["confirmed_resolution_rate"]["rate-detail muted"] == (
        "2 of 10 conversations: the customer said so"
    )
    assert cards["durable_resolution_rate"]["rate-detail muted"] == (
        "2 of 4 settled AI resolutions came back (repeat contact 50.0%) · 5 settled"
    )
    # Next to the figures: only part of the traffic reports outcomes and customer ids.
    assert (
        cards["confirmed_resolution_rate"]["rate-coverage"] == "Outcomes reported for 70.0% of conversations"
    )
    assert cards["assumed_resolution_rate"]["rate-coverage"] == "Outcomes reported for 70.0% of conversations"
    assert cards["durable_resolution_rate"]["rate-coverage"] == "Customer ids sent for 60.0% of conversations"
    assert "rate-coverage" not in cards["ai_resolution_rate"]
    assert cards["durable_resolution_rate"]["kpi-sample"] == "Only 5 settled conversations: not a trend yet"
    # Nothing in the 30 days before: no comparison.
    assert cards["confirmed_resolution_rate"]["kpi-change trend-none"] == "no comparison vs — before"

    # Each definition is the metric's own doc (one click away: a <details>), with what it is built on.
    assert cards["confirmed_resolution_rate"]["definition"] == (
        "What counts for Confirmed resolution "
        + definition_text("confirmed_resolution_rate")
        + " Outcome coverage: "
        + definition_text("outcome_coverage")
    )
    assert cards["ai_resolution_rate"]["definition"] == (
        "What counts for AI resolution rate (headline) " + definition_text("ai_resolution_rate")
    )
    durable = cards["durable_resolution_rate"]["definition"]
    for name in ("durable_resolution_rate", "settled", "followed_up", "repeat_contact_rate"):
        assert definition_text(name) in durable
    assert "<code>resolved_by_ai</code>" in page  # the docs' `field` names read as code


@pytest.mark.parametrize("params", [MONTH, {"range": "90d"}, {**MONTH, "escalation_reason": "refund policy"}])
def test_the_panel_equals_the_api(staff_client, honest, params):
    response = staff_client.get(URL, params)
    page = page_of(response)
    filters = {key: value for key, value in params.items() if key != "range"}
    api = staff_client.get("/api/analytics", {**api_window(response), **filters}).json()

    cards = rate_cards(page)
    assert {key: card["rate-value"] for key, card in cards.items()} == {
        "ai_resolution_rate": formatting.rate(d(api["ai_resolution_rate"])),
        "confirmed_resolution_rate": formatting.rate(d(api["confirmed_resolution_rate"])),
        "assumed_resolution_rate": formatting.rate(d(api["assumed_resolution_rate"])),
        "durable_resolution_rate": formatting.rate(d(api["repeat_contact"]["durable_resolution_rate"])),
    }
    human_cost = Decimal(api["cost"]["human_cost_per_conversation"])
    assert reason_rows(page) == [
        [reason, f"{count:,}", formatting.money(human_cost * count, api["cost"]["currency"])]
        for reason, count in api["escalation_reasons"]
    ]


# --- The outcome mix over time -----------------------------------------------------------------


def test_outcome_mix_per_day_stacks_every_outcome(staff_client, honest):
    response = staff_client.get(URL, MONTH)
    page = page_of(response)
    chart = response.context["honest"].outcome_chart

    assert chart.table_headers == [
        "Period",
        "Confirmed",
        "Assumed",
        "Escalated",
        "Abandoned",
        "Unreported",
        "Total",
    ]
    by_day = {row[0]: row[1:] for row in chart.table_rows}
    assert len(by_day) == 30  # Feb 13 .. Mar 14, the empty days included
    busy = {label: counts for label, counts in by_day.items() if counts[-1] != "0"}
    assert busy == {
        "Feb 22": ["1", "0", "0", "0", "0", "1"],  # a1
        "Feb 23": ["0", "1", "0", "0", "0", "1"],  # a2
        "Feb 24": ["0", "1", "0", "0", "0", "1"],  # b1
        "Feb 27": ["0", "0", "1", "0", "0", "1"],  # a3
        "Mar 02": ["0", "0", "0", "1", "0", "1"],  # n1
        "Mar 04": ["1", "0", "0", "0", "0", "1"],  # b2
        "Mar 09": ["0", "0", "0", "0", "1", "1"],  # n2
        "Mar 12": ["0", "0", "0", "0", "1", "1"],  # b3
        "Mar 13": ["0", "0", "1", "0", "0", "1"],  # n3
        "Mar 14 (so far)": ["0", "0", "0", "0", "1", "1"],  # n4
    }
    # The same bucket by bucket as the API's series.
    series = staff_client.get(
        "/api/analytics/timeseries/", {**api_window(response), "granularity": "day"}
    ).json()["buckets"]
    assert [[int(count) for count in counts[:-1]] for counts in by_day.values()] == [
        [
            bucket["outcomes"][name]
            for name in ("confirmed", "assumed", "escalated", "abandoned", "unreported")
        ]
        for bucket in series
    ]
    # Drawn as the other charts: an SVG named by its title and description, a legend, a data table.
    figure = re.search(r'<figure class="chart" id="chart-outcomes">(.*?)</figure>', panel(page), re.S).group(
        1
    )
    assert re.search(
        r'<svg [^>]*role="img" aria-labelledby="chart-outcomes-title chart-outcomes-desc"', figure
    )
    assert '<title id="chart-outcomes-title">How conversations ended, per day</title>' in figure
    assert [text(li) for li in re.findall(r"<li>(.*?)</li>", figure, re.S)] == [
        "Confirmed", "Assumed", "Escalated", "Abandoned", "Unreported", "In progress (so far)",
    ]  # fmt: skip
    assert "<title>Feb 22: 1 confirmed</title>" in figure


# --- Escalation reasons ------------------------------------------------------------------------


def test_escalation_reasons_with_their_cost_and_filter_links(staff_client, honest):
    page = page_of(staff_client.get(URL, {**MONTH, "channel": "", "sort": "topic"}))

    assert reason_rows(page) == [
        ["refund policy", "3", "€22.50"],  # a3 n2 n3, 3 × €7.50
        ["bot loop", "1", "€7.50"],  # n1
    ]
    assert "Human cost: escalations × €7.50 per conversation." in text(panel(page))
    assert "gave no reason" not in page  # every escalation has one
    # Each reason opens the dashboard filtered by it, the range and the other parameters kept.
    links = reason_links(page)
    assert {name: parse_qs(urlparse(href).query) for name, href in links.items()} == {
        "refund policy": {"range": ["30d"], "sort": ["topic"], "escalation_reason": ["refund policy"]},
        "bot loop": {"range": ["30d"], "sort": ["topic"], "escalation_reason": ["bot loop"]},
    }
    filtered = page_of(staff_client.get(URL + links["bot loop"]))
    assert kpi_values(filtered)["conversations"] == "1"
    assert reason_rows(filtered) == [["bot loop", "1", "€7.50"]]
    assert re.search(r'<a data-reason-filter href="[^"]+" aria-current="page">bot loop</a>', filtered)


def test_escalations_without_reasons_are_counted_or_explained(staff_client, honest):
    services.conversations_ingest(items=[item("x1", T0 - timedelta(hours=2), resolved=False)])
    page = page_of(staff_client.get(URL, MONTH))
    assert "1 escalation gave no reason." in text(panel(page))

    only_reasonless = page_of(staff_client.get(URL, {"range": "24h"}))  # x1 (n3 ended 24 hours ago: out)
    assert "escalation-reasons" not in only_reasonless
    assert "escalation_reason" in howtos(only_reasonless)
    assert "1 escalation, none with a reason." in text(panel(only_reasonless))


# --- The escalation reason filter --------------------------------------------------------------


def test_the_escalation_reason_filter_narrows_the_page(staff_client, honest):
    response = staff_client.get(URL, {**MONTH, "escalation_reason": "  Refund   POLICY "})
    page = page_of(response)

    assert response.context["query"].filters.escalation_reason == "refund policy"
    assert kpi_values(page)["conversations"] == "3"  # a3 n2 n3
    assert kpi_values(page)["ai_resolution_rate"] == "0.0%"
    assert "escalated for <strong>refund policy</strong>" in page
    assert [row[:2] for row in topic_table(page)] == [["refund", "2"], ["billing", "1"]]
    assert reason_rows(page) == [["refund policy", "3", "€22.50"]]
    # The filter menu lists every reason of the range, the chosen one selected.
    select = re.search(r'<select name="escalation_reason">(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"( selected)?>', select) == [
        ("", ""),
        ("bot loop", ""),
        ("refund policy", " selected"),
    ]
    # The custom-range form keeps it, and a link shows everything again.
    dates = re.search(
        r'<form method="get" class="filters" aria-label="Custom range">(.*?)</form>', page, re.S
    )
    assert '<input type="hidden" name="escalation_reason" value="refund policy">' in dates.group(1)
    clear = re.search(r'<a data-reason-clear href="\?([^"]*)">', page).group(1)
    assert parse_qs(html.unescape(clear)) == {"range": ["30d"]}


def test_the_filter_is_carried_into_the_exports_and_the_drilldown(staff_client, honest, django_user_model):
    params = {**MONTH, "escalation_reason": "refund policy"}
    page = page_of(staff_client.get(URL, params))

    export = re.search(r'<a href="(/dashboard/topics\.csv\?[^"]+)">topics</a>', page).group(1)
    assert parse_qs(urlparse(html.unescape(export)).query)["escalation_reason"] == ["refund policy"]
    rows = read_csv(staff_client.get(html.unescape(export)))
    assert [(row[0], row[1]) for row in rows[1:]] == [("refund", "2"), ("billing", "1")]
    series = read_csv(staff_client.get("/dashboard/timeseries.csv", params))
    assert sum(int(row[1]) for row in series[1:]) == 3

    href = {
        name: html.unescape(link)
        for link, name in re.findall(r'<a data-drilldown href="([^"]+)">([^<]+)</a>', page)
    }["refund"]
    assert parse_qs(urlparse(href).query)["escalation_reason__exact"] == ["refund policy"]
    staff_client.force_login(
        django_user_model.objects.create_superuser(username="boss", email="", password=None)
    )
    listed = staff_client.get(href).context["cl"].result_list
    assert sorted(c.session_id for c in listed) == ["n2", "n3"]


def test_a_reason_nobody_gave_is_an_empty_page_not_an_error(staff_client, honest):
    page = page_of(staff_client.get(URL, {**MONTH, "escalation_reason": "no such reason"}))
    assert "No conversations in this range with these filters" in page
    assert '<option value="no such reason" selected>' in page
    assert "No escalations in this range." in page


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("x" * 101, "at most 100 characters"),
        ("x" * 1001, "at most 1000 characters"),
        ("a\x00b", "Null characters are not allowed"),
    ],
)
def test_a_bad_escalation_reason_is_a_400_naming_the_field(staff_client, honest, reason, message):
    for url in (URL, "/dashboard/topics.csv", "/dashboard/timeseries.csv"):
        assert staff_client.get(url, {**MONTH, "escalation_reason": reason}).status_code == 400
    page = staff_client.get(URL, {**MONTH, "escalation_reason": reason}).content.decode()
    assert "That range or filter is not valid" in page
    assert re.search(rf"<li>escalation_reason: [^<]*{message}", page)


def test_a_blank_escalation_reason_is_no_filter(staff_client, honest):
    blank = page_of(staff_client.get(URL, {**MONTH, "escalation_reason": "   "}))
    assert kpi_values(blank) == kpi_values(page_of(staff_client.get(URL, MONTH)))


# --- The topics table and the knowledge gaps ---------------------------------------------------


def test_repeat_contact_column_in_the_topics_table(staff_client, honest):
    page = page_of(staff_client.get(URL, MONTH))

    header = re.search(r'<table id="topics">.*?<thead>(.*?)</thead>', page, re.S).group(1)
    assert [text(th).removesuffix(" ↓") for th in re.findall(r"<th [^>]*>(.*?)</th>", header, re.S)] == [
        "Topic", "Conversations", "Share", "AI resolution", "Escalations", "CSAT", "Repeat contact", "Change",
    ]  # fmt: skip
    assert {row[0]: row[6] for row in topic_table(page)} == {
        "billing": "100.0% (2 of 2)",  # a1 and a2 both came back
        "refund": "—",  # nothing AI-resolved is settled (n4 is 3 hours old, no customer id)
        "shipping": "0.0% (0 of 2)",  # b1 and b2 came back only 8 days later
    }
    assert 'title="2 of 2 settled AI-resolved conversations followed up within 7 days"' in page
    # The note says the column counts settled conversations only, with the definitions a click away.
    assert "settled AI-resolved conversations (with a customer id, ended at least 7 days ago)" in text(page)
    assert definition_text("repeat_contact_rate") in text(page)

    ranked = topic_table(page_of(staff_client.get(URL, {**MONTH, "sort": "-repeat_contact_rate"})))
    assert [row[0] for row in ranked] == ["billing", "shipping", "refund"]  # unknown last


def test_repeat_contact_column_equals_the_topics_api(staff_client, honest):
    response = staff_client.get(URL, MONTH)
    api = staff_client.get("/api/analytics/topics/", api_window(response)).json()["topics"]
    shown = {row[0]: row[6] for row in topic_table(page_of(response))}
    for topic in api:
        repeat = topic["repeat_contact"]
        expected = (
            f"{formatting.rate(d(repeat['repeat_contact_rate']))} "
            f"({repeat['followed_up']} of {repeat['settled_ai_resolved']})"
            if repeat["settled_ai_resolved"]
            else "—"
        )
        assert shown[topic["topic"]] == expected


def test_knowledge_gaps_cost_escalations_and_follow_ups(staff_client, honest):
    page = page_of(staff_client.get(URL, MONTH))
    assert gaps(page) == [
        # (2 escalations + 2 followed up) × €7.50
        "billing — €30.00 · 2 escalations + 2 AI resolutions followed up, of 4 conversations"
        " · AI resolution 50.0%",
        "refund — €15.00 · 2 escalations + 0 AI resolutions followed up, of 3 conversations"
        " · AI resolution 33.3%",
    ]  # shipping: nothing escalated, nobody came back
    section = re.search(r'<section class="panel" aria-labelledby="gaps-title">(.*?)</section>', page, re.S)
    said = text(section.group(1))
    assert "(escalations + AI “resolutions” whose customer came back within 7 days) × €7.50" in said
    assert definition_text("knowledge_gap_cost") in said


# --- Coverage ----------------------------------------------------------------------------------


def test_partial_coverage_is_said_next_to_the_figures(staff_client, honest):
    notes = coverage_notes(page_of(staff_client.get(URL, MONTH)))
    assert notes == {
        "outcome": "Outcomes reported for 70.0% of conversations (7 of 10): the confirmed and assumed rates "
        "divide by all 10, those without an outcome included.",
        "customer_id": "Customer ids sent for 60.0% of conversations (6 of 10): repeat contacts are found "
        "among those only.",
        "settled": "Repeat-contact figures count settled conversations only: those with a customer id that "
        "ended at least 7 days before now (the customer of a newer one may still come back). In this "
        "range: 5 settled, 4 of them AI-resolved, 2 followed up.",
    }


def test_full_coverage_needs_no_note(staff_client, frozen_now):
    services.conversations_ingest(
        items=[
            item("c1", T0 - 10 * DAY, customer="ann", outcome="confirmed"),
            item("c2", T0 - 9 * DAY, customer="ann", resolved=False, outcome="escalated"),
        ]
    )
    page = page_of(staff_client.get(URL, MONTH))
    assert set(coverage_notes(page)) == {"settled"}
    assert howtos(page) == ["escalation_reason"]  # one escalation, no reason
    cards = rate_cards(page)
    assert cards["confirmed_resolution_rate"]["rate-value"] == "50.0%"
    assert cards["durable_resolution_rate"]["rate-value"] == "0.0%"  # c1 followed up by c2
    assert "rate-coverage" not in cards["confirmed_resolution_rate"]


def test_no_outcomes_and_no_customer_ids_explain_how_to_send_them(staff_client, frozen_now):
    # What a bot from before issue 16 sends: neither outcome nor customer_id.
    services.conversations_ingest(
        items=[item(f"s{i}", T0 - i * DAY, resolved=i % 2 == 0, topics=("billing",)) for i in range(1, 20)]
    )
    response = staff_client.get(URL, MONTH)
    page = page_of(response)
    cards = rate_cards(page)

    assert cards["ai_resolution_rate"]["rate-value"] == "47.4%"  # 9 of 19
    # No meaningless zeros: the rates say why they are missing, and no outcome chart is drawn.
    for key, why in [
        ("confirmed_resolution_rate", "No outcomes reported"),
        ("assumed_resolution_rate", "No outcomes reported"),
        ("durable_resolution_rate", "No customer ids sent"),
    ]:
        assert (cards[key]["rate-value"], cards[key]["rate-missing"]) == ("—", why)
        assert "kpi-change" not in " ".join(cards[key])
    assert response.context["honest"].outcome_chart is None
    assert 'id="chart-outcomes"' not in page
    assert coverage_notes(page) == {}
    # Escalations without reasons either: how to send one.
    assert howtos(page) == ["outcome", "customer_id", "escalation_reason"]
    said = text(panel(page))
    assert "Have the bot send outcome with each conversation, one of:" in said
    assert "confirmed: the bot resolved it and the customer said so" in said
    assert "abandoned: the customer left unresolved, no human involved" in said
    assert "Have the bot send customer_id" in said
    assert '"outcome": "confirmed", "customer_id": "customer-42"' in html.unescape(panel(page))
    assert {row[0]: row[6] for row in topic_table(page)} == {"billing": "—"}


def test_customer_ids_but_nothing_settled_yet(staff_client, frozen_now):
    services.conversations_ingest(
        items=[item("s1", T0 - 2 * DAY, customer="ann"), item("s2", T0 - DAY, customer="ann")]
    )
    page = page_of(staff_client.get(URL, {"range": "7d"}))
    card = rate_cards(page)["durable_resolution_rate"]
    assert (card["rate-value"], card["rate-missing"]) == (
        "—",
        "Nothing settled yet: no conversation here ended 7 or more days ago",
    )
    assert coverage_notes(page)["settled"].endswith(
        "In this range: 0 settled, 0 of them AI-resolved, 0 followed up."
    )
    assert howtos(page) == ["outcome"]


def test_the_repeat_contact_window_follows_the_setting(staff_client, honest, settings):
    settings.REPEAT_CONTACT_DAYS = 3
    page = page_of(staff_client.get(URL, MONTH))
    assert "Durable resolution (3 days)" in page
    assert "ended at least 3 days before now" in coverage_notes(page)["settled"]


def test_an_empty_range_explains_instead_of_zeros(staff_client, honest):
    page = page_of(staff_client.get(URL, {"range": "custom", "start": "2026-01-01", "end": "2026-01-02"}))
    assert "No conversations in this range" in page
    assert howtos(page) == ["outcome", "customer_id"]
    assert "No escalations in this range." in page
    assert "No escalations or followed-up AI resolutions in this range." in page
