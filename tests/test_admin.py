"""The admin: conversation and topic lists, API keys, cost settings (logged in as a superuser)."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from conversations.models import ApiKey, CostSettings, Topic
from tests.conftest import T0
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

CONVERSATIONS_URL = reverse("admin:conversations_conversation_changelist")


@pytest.fixture
def superuser_client(client, django_user_model):
    """A logged-in superuser (no password: hashing one costs more than these tests)."""
    client.force_login(django_user_model.objects.create_superuser(username="root", email="", password=None))
    return client


def listed(response) -> set[str]:
    """Session ids of the rows on a conversation changelist page."""
    assert response.status_code == 200
    return {conversation.session_id for conversation in response.context["cl"].result_list}


def bearer_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def api_key_from_messages(response) -> str:
    messages = [str(message) for message in response.context["messages"]]
    keys = [match.group(1) for m in messages if (match := re.search(r" is: (\S+)\. Please store", m))]
    assert len(keys) == 1, messages
    return keys[0]


# --- Conversations ------------------------------------------------------------------------


@pytest.fixture
def three_conversations():
    """Three conversations that differ in every filtered field."""
    return {
        conversation.session_id: conversation
        for conversation in [
            ConversationFactory(
                session_id="web-resolved",
                timestamp=T0 - timedelta(hours=1),
                resolved_by_ai=True,
                csat=5,
                channel="web",
                bot_version="1.0",
                topics=["billing"],
            ),
            ConversationFactory(
                session_id="email-escalated",
                timestamp=T0 - timedelta(days=2),
                resolved_by_ai=False,
                csat=2,
                channel="email",
                bot_version="2.0",
                topics=["refund"],
            ),
            ConversationFactory(
                session_id="sms-no-csat",
                timestamp=T0 - timedelta(days=10),
                resolved_by_ai=True,
                csat=None,
                channel="sms",
                bot_version="2.0",
                topics=["billing", "refund"],
            ),
        ]
    }


def test_conversation_changelist_shows_session_ids_topics_and_channel(superuser_client, three_conversations):
    response = superuser_client.get(CONVERSATIONS_URL)

    assert listed(response) == {"web-resolved", "email-escalated", "sms-no-csat"}
    content = response.content.decode()
    for session_id in three_conversations:
        assert f">{session_id}</a>" in content
    assert '<td class="field-topic_names">billing, refund</td>' in content
    assert '<td class="field-topic_names">refund</td>' in content
    for channel in ("web", "email", "sms"):
        assert f'<td class="field-channel">{channel}</td>' in content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"resolved_by_ai__exact": "1"}, {"web-resolved", "sms-no-csat"}),
        ({"resolved_by_ai__exact": "0"}, {"email-escalated"}),
        ({"csat__exact": "5"}, {"web-resolved"}),
        ({"csat__exact": "2"}, {"email-escalated"}),
        ({"csat__isnull": "True"}, {"sms-no-csat"}),
        ({"channel__exact": "email"}, {"email-escalated"}),
        ({"bot_version__exact": "2.0"}, {"email-escalated", "sms-no-csat"}),
        # The start is inclusive and the end exclusive, as in the admin's own date links.
        (
            {"timestamp__gte": str(T0 - timedelta(days=2)), "timestamp__lt": str(T0 - timedelta(hours=1))},
            {"email-escalated"},
        ),
        (
            {"timestamp__gte": str(T0 - timedelta(days=7)), "timestamp__lt": str(T0)},
            {"web-resolved", "email-escalated"},
        ),
        ({"channel__exact": "web", "resolved_by_ai__exact": "0"}, set()),
    ],
)
def test_conversation_list_filters_select_the_matching_rows(
    superuser_client, three_conversations, params, expected
):
    assert listed(superuser_client.get(CONVERSATIONS_URL, params)) == expected


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("billing", {"web-resolved", "sms-no-csat"}), ("refund", {"email-escalated", "sms-no-csat"})],
)
def test_conversation_topic_filter_selects_the_matching_rows(
    superuser_client, three_conversations, topic, expected
):
    topic_id = Topic.objects.get(name=topic).pk

    response = superuser_client.get(CONVERSATIONS_URL, {"topic": topic_id})

    assert listed(response) == expected
    assert len(response.context["cl"].result_list) == len(expected)


@pytest.mark.parametrize("value", ["billing", "-1", "1.5", "", "²", "0", "99999999999999999999"])
def test_a_topic_filter_that_is_not_an_id_is_refused(superuser_client, three_conversations, value):
    response = superuser_client.get(CONVERSATIONS_URL, {"topic": value})
    # The admin's answer to a bad lookup: back to the list, with ?e=1.
    assert (response.status_code, response.url) == (302, f"{CONVERSATIONS_URL}?e=1")


def test_a_topic_filter_with_an_unknown_id_lists_nothing(superuser_client, three_conversations):
    response = superuser_client.get(CONVERSATIONS_URL, {"topic": 999_999})
    assert response.status_code == 200
    assert listed(response) == set()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("email-escalated", {"email-escalated"}),
        ("email", set()),  # exact match only: no substring search
        ("no-such-session", set()),
    ],
)
def test_conversation_search_matches_the_exact_session_id(
    superuser_client, three_conversations, query, expected
):
    assert listed(superuser_client.get(CONVERSATIONS_URL, {"q": query})) == expected


def _create_conversations(count: int, *, start: int) -> None:
    for number in range(start, start + count):
        ConversationFactory(
            session_id=f"bulk-{number:03d}",
            timestamp=T0 - timedelta(minutes=number),
            csat=number % 5 + 1,
            channel=("web", "email")[number % 2],
            topics=[f"topic {number % 3}", f"topic {number % 4 + 10}"],
        )


def test_conversation_changelist_queries_do_not_grow_with_the_rows(superuser_client):
    _create_conversations(5, start=0)
    superuser_client.get(CONVERSATIONS_URL)  # warm-up: sessions, content types

    with CaptureQueriesContext(connection) as five_rows:
        assert len(listed(superuser_client.get(CONVERSATIONS_URL))) == 5
    _create_conversations(35, start=5)
    with CaptureQueriesContext(connection) as forty_rows:
        assert len(listed(superuser_client.get(CONVERSATIONS_URL))) == 40

    assert len(forty_rows.captured_queries) == len(five_rows.captured_queries)


# --- Topics -------------------------------------------------------------------------------


def test_topic_changelist_shows_conversation_counts(superuser_client):
    for number in range(3):
        ConversationFactory(session_id=f"billing-{number}", topics=["billing"])
    ConversationFactory(session_id="refund-0", topics=["refund", "billing"])
    Topic.objects.create(name="unused")

    response = superuser_client.get(reverse("admin:conversations_topic_changelist"))

    assert response.status_code == 200
    counts = {topic.name: topic.conversation_count for topic in response.context["cl"].result_list}
    assert counts == {"billing": 4, "refund": 1, "unused": 0}
    cells = re.findall(r'<td class="field-conversation_count">(\d+)</td>', response.content.decode())
    assert cells == ["4", "1", "0"]  # rows ordered by name


# --- API keys -----------------------------------------------------------------------------


def test_admin_index_lists_api_keys_once_ours(superuser_client):
    response = superuser_client.get(reverse("admin:index"))

    assert response.status_code == 200
    listed_models = [
        (app["app_label"], model["object_name"])
        for app in response.context["app_list"]
        for model in app["models"]
        if model["name"] == "API keys"
    ]
    assert listed_models == [("conversations", "ApiKey")]
    assert response.content.decode().count(">API keys</a>") == 1
    # The package's own changelist is gone; ours answers.
    assert superuser_client.get("/admin/rest_framework_api_key/apikey/").status_code == 404
    assert superuser_client.get(reverse("admin:conversations_apikey_changelist")).status_code == 200


def test_api_key_add_page_loads(superuser_client):
    response = superuser_client.get(reverse("admin:conversations_apikey_add"))

    assert response.status_code == 200
    assert set(response.context["adminform"].form.fields) >= {"name", "scope", "revoked", "expiry_date"}


@pytest.mark.usefixtures("frozen_now")
def test_api_key_created_in_the_admin_is_shown_once_and_stored_hashed(superuser_client):
    response = superuser_client.post(
        reverse("admin:conversations_apikey_add"),
        {"name": "admin-made", "scope": "ingest", "expiry_date_0": "", "expiry_date_1": ""},
        follow=True,
    )

    key = api_key_from_messages(response)
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.scope, api_key.revoked) == ("admin-made", "ingest", False)
    assert [column for column, value in ApiKey.objects.values().get().items() if key in str(value)] == []
    assert ApiKey.objects.get_from_key(key) == api_key
    # Shown once: neither the list nor the key's own page shows it again.
    change_url = reverse("admin:conversations_apikey_change", args=[quote(api_key.pk)])
    for url in (reverse("admin:conversations_apikey_changelist"), change_url):
        page = superuser_client.get(url)
        assert page.status_code == 200
        assert key not in page.content.decode()
    ingest = bearer_client(key).post(
        "/api/conversations/",
        {
            "session_id": "via-admin-key",
            "timestamp": "2026-03-14T11:00:00Z",
            "turns": 2,
            "resolved_by_ai": True,
        },
        format="json",
    )
    assert ingest.status_code == 201


def test_revoking_a_key_in_the_admin_refuses_it_at_once(superuser_client):
    api_key, key = ApiKey.objects.create_key(name="reporting", scope=ApiKey.Scope.READ)
    client = bearer_client(key)
    assert client.get("/api/analytics").status_code == 200

    response = superuser_client.post(
        reverse("admin:conversations_apikey_change", args=[quote(api_key.pk)]),
        {"name": "reporting", "scope": "read", "revoked": "on", "expiry_date_0": "", "expiry_date_1": ""},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked is True
    refused = client.get("/api/analytics")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid or revoked API key."}


# --- Cost settings ------------------------------------------------------------------------


def cost_settings_change_url() -> str:
    return reverse("admin:conversations_costsettings_change", args=[CostSettings.SINGLETON_ID])


def test_cost_settings_list_opens_the_single_row(superuser_client):
    response = superuser_client.get(reverse("admin:conversations_costsettings_changelist"))

    assert response.status_code == 302
    assert response.url == cost_settings_change_url()
    assert list(CostSettings.objects.values_list("pk", flat=True)) == [CostSettings.SINGLETON_ID]


@pytest.mark.usefixtures("frozen_now")
def test_editing_the_human_cost_changes_the_estimated_savings(superuser_client):
    for number in range(3):
        ConversationFactory(session_id=f"resolved-{number}", resolved_by_ai=True)
    ConversationFactory(session_id="escalated-0", resolved_by_ai=False)
    # savings = AI-resolved × human cost − AI cost of all four (default 0.05 each)
    assert superuser_client.get("/api/analytics").json()["estimated_savings"] == 14.8  # 3 × 5.00 − 0.20

    response = superuser_client.post(
        cost_settings_change_url(),
        {"human_cost_per_conversation": "10.00", "ai_cost_per_conversation": "0.05", "currency": "USD"},
    )

    assert response.status_code == 302
    analytics = superuser_client.get("/api/analytics").json()
    assert analytics["estimated_savings"] == 29.8  # 3 × 10.00 − 0.20
    assert analytics["cost"]["human_cost_per_conversation"] == 10.0


def test_cost_settings_cannot_be_deleted_or_added(superuser_client):
    CostSettings.load()
    delete_url = reverse("admin:conversations_costsettings_delete", args=[CostSettings.SINGLETON_ID])

    assert superuser_client.get(delete_url).status_code == 403
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert superuser_client.get(reverse("admin:conversations_costsettings_add")).status_code == 403
    change_page = superuser_client.get(cost_settings_change_url())
    assert change_page.status_code == 200
    assert delete_url not in change_page.content.decode()
    assert CostSettings.objects.count() == 1


def test_topics_cannot_be_added_or_renamed_in_the_admin(superuser_client):
    topic = Topic.objects.create(name="billing")
    assert superuser_client.get(reverse("admin:conversations_topic_add")).status_code == 403
    page = superuser_client.get(reverse("admin:conversations_topic_change", args=[topic.pk]))
    assert page.status_code == 200
    assert b'name="name"' not in page.content  # shown, not editable


def test_conversations_are_read_only_in_the_admin(superuser_client, three_conversations):
    conversation = three_conversations["web-resolved"]
    change_url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    page = superuser_client.get(change_url)
    assert page.status_code == 200  # a view page, no form to save
    assert b'name="turns"' not in page.content
    assert superuser_client.post(change_url, {"turns": 99}).status_code == 403
    assert superuser_client.get(reverse("admin:conversations_conversation_add")).status_code == 403


def test_a_conversation_page_names_its_topics(superuser_client, three_conversations):
    conversation = three_conversations["sms-no-csat"]
    page = superuser_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200
    assert '<div class="readonly">billing, refund</div>' in page.content.decode()


def test_deleting_conversations_in_the_admin_keeps_the_numbers_right(
    superuser_client, three_conversations, frozen_now
):
    def summary():
        return superuser_client.get("/api/analytics", {"hours": 24 * 30}).json()

    assert summary()["total_conversations"] == 3
    response = superuser_client.post(
        CONVERSATIONS_URL,
        {
            "action": "delete_selected",
            "_selected_action": [three_conversations["email-escalated"].pk],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    after = summary()
    assert after["total_conversations"] == 2
    assert after["escalated_conversations"] == 0
    assert after["top_topics"] == [["billing", 2], ["refund", 1]]


def test_html_in_untrusted_text_is_shown_escaped_in_the_admin(superuser_client):
    # Session ids, channels, bot versions and topics come from the bot: never markup here.
    script = "<script>alert(1)</script>"
    conversation = ConversationFactory(
        session_id=f"s{script}",
        channel="<b>web</b>",
        bot_version='"><img src=x onerror=alert(2)>',
        topics=[script],
    )
    change_url = reverse("admin:conversations_conversation_change", args=[quote(conversation.pk)])
    topic = Topic.objects.get()

    for url in (
        CONVERSATIONS_URL,
        change_url,
        reverse("admin:conversations_topic_changelist"),
        reverse("admin:conversations_topic_change", args=[topic.pk]),
    ):
        page = superuser_client.get(url).content.decode()
        assert script not in page, url
        assert "<b>web</b>" not in page, url
        assert "<img src=x" not in page, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url


# --- Honest resolution: outcome, escalation reason, customer --------------------------------


@pytest.fixture
def honest_conversations():
    rows = [
        ConversationFactory(session_id="confirmed-ann", outcome="confirmed", customer_id="ann",
                            timestamp=T0 - timedelta(days=3)),
        ConversationFactory(session_id="escalated-ann", resolved_by_ai=False, outcome="escalated",
                            escalation_reason="no docs", customer_id="ann", timestamp=T0 - timedelta(days=2)),
        ConversationFactory(session_id="abandoned", resolved_by_ai=False, outcome="abandoned",
                            escalation_reason="too slow"),
        ConversationFactory(session_id="plain"),
    ]  # fmt: skip
    return {row.session_id: row for row in rows}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"outcome": "escalated"}, {"escalated-ann"}),
        ({"outcome__exact": ""}, {"plain"}),
        ({"escalation_reason": "too slow"}, {"abandoned"}),
        ({"customer": "yes"}, {"confirmed-ann", "escalated-ann"}),
        ({"customer": "no"}, {"abandoned", "plain"}),
        ({"followed_up__exact": "1"}, {"confirmed-ann"}),
    ],
)
def test_conversations_filter_by_outcome_reason_customer_and_follow_up(
    superuser_client, honest_conversations, query, expected
):
    assert listed(superuser_client.get(CONVERSATIONS_URL, query)) == expected


def test_the_reason_filter_offers_the_stored_reasons(superuser_client, honest_conversations):
    response = superuser_client.get(CONVERSATIONS_URL)
    [reasons] = [spec for spec in response.context["cl"].filter_specs if spec.title == "escalation reason"]
    assert [value for value, _ in reasons.lookup_choices] == ["no docs", "too slow"]


def test_a_customer_is_shown_as_a_short_hash_that_lists_their_conversations(
    superuser_client, honest_conversations
):
    from conversations.customers import customer_hash

    hashed = customer_hash("ann").hex()
    page = superuser_client.get(CONVERSATIONS_URL).content.decode()
    assert f'?customer={hashed}">{hashed[:12]}</a>' in page
    assert listed(superuser_client.get(CONVERSATIONS_URL, {"customer": hashed})) == {
        "confirmed-ann",
        "escalated-ann",
    }
    # The search box takes the customer id and leads there; the id leaves the URL.
    response = superuser_client.get(CONVERSATIONS_URL, {"q": "ann"})
    assert response.status_code == 302 and response.url == f"{CONVERSATIONS_URL}?customer={hashed}"
    # A session id is still an exact session id search.
    assert listed(superuser_client.get(CONVERSATIONS_URL, {"q": "plain"})) == {"plain"}


@pytest.mark.parametrize("value", ["zz", "abc"])
def test_a_customer_filter_that_is_not_a_hash_is_refused(superuser_client, honest_conversations, value):
    response = superuser_client.get(CONVERSATIONS_URL, {"customer": value})
    assert (response.status_code, response.url) == (302, f"{CONVERSATIONS_URL}?e=1")
