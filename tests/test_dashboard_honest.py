"""The dashboard's escalation reason filter (issue 16).

Conversations go in through the ingestion service; the page is read as a staff user at T0."""

import html
import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest

from conversations import services
from conversations.customers import customer_hash
from conversations.models import CostSettings
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.test_dashboard import URL, kpi_values, read_csv, topic_table

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
MONTH = {"range": "30d"}  # Feb 13 00:00 to T0: reaches back past the 7-day settling


def item(session_id, at, *, customer=None, resolved=True, **fields) -> ConversationIn:
    return ConversationIn(
        session_id=session_id,
        timestamp=at,
        turns=3,
        resolved_by_ai=resolved,
        customer_hash=None if customer is None else customer_hash(customer),
        customer_given=True,
        **fields,
    )


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


# --- The escalation reason filter --------------------------------------------------------------


def test_the_escalation_reason_filter_narrows_the_page(staff_client, honest):
    response = staff_client.get(URL, {**MONTH, "escalation_reason": "  Refund   POLICY "})
    page = page_of(response)

    assert response.context["query"].filters.escalation_reason == "refund policy"
    assert kpi_values(page)["conversations"] == "3"  # a3 n2 n3
    assert kpi_values(page)["ai_resolution_rate"] == "0.0%"
    assert "escalated for <strong>refund policy</strong>" in page
    assert [row[:2] for row in topic_table(page)] == [["refund", "2"], ["billing", "1"]]
    # The filter menu lists every reason of the range, the chosen one selected.
    select = re.search(r'<select name="escalation_reason">(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"( selected)?>', select) == [
        ("", ""),
        ("bot loop", ""),
        ("refund policy", " selected"),
    ]
    # The custom-range form keeps it.
    dates = re.search(
        r'<form method="get" class="filters" aria-label="Custom range">(.*?)</form>', page, re.S
    )
    assert '<input type="hidden" name="escalation_reason" value="refund policy">' in dates.group(1)


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
