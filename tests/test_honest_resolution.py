"""Honest resolution (issue 16): outcomes, escalation reasons, hashed customer ids, repeat
contacts: the ingest rules, what the answers say, and the edges of the repeat-contact window."""

import functools
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.urls import reverse

from conversations import histogram, rollups, services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Granularity, Period
from conversations.customers import customer_hash
from conversations.models import Conversation
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.factories import conversation_in
from tests.payloads import without_intervals
from tests.scans import assert_buckets_equal_full_scans, assert_follow_ups_exact, full_scan

pytestmark = pytest.mark.django_db

URL = "/api/conversations/"
DAY = timedelta(days=1)
WEEK = timedelta(days=7)
MICROSECOND = timedelta(microseconds=1)


def post(client, body):
    return client.post(URL, body, format="json")


def conversation(session_id: str, **fields) -> dict:
    return {"session_id": session_id, "turns": 3, "timestamp": (T0 - DAY).isoformat(), **fields}


def errors_of(response) -> dict[str, list[str]]:
    """The 400's messages by field (and index, for arrays)."""
    assert response.status_code == 400, response.content
    found: dict[str, list[str]] = {}
    for error in response.json()["errors"]:
        key = error["field"] if "index" not in error else f"{error['index']}.{error['field']}"
        found.setdefault(key, []).append(error["message"])
    return found


# --- Ingestion -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "resolved"),
    [("confirmed", True), ("assumed", True), ("escalated", False), ("abandoned", False)],
)
def test_an_outcome_says_whether_the_ai_resolved_it(ingest_client, frozen_now, outcome, resolved):
    response = post(ingest_client, conversation("s", outcome=outcome))
    assert response.status_code == 201, response.content
    assert (response.json()["outcome"], response.json()["resolved_by_ai"]) == (outcome, resolved)
    stored = Conversation.objects.get()
    assert (stored.outcome, stored.resolved_by_ai) == (outcome, resolved)
    # Both given and agreeing: the same.
    assert post(ingest_client, conversation("s", outcome=outcome, resolved_by_ai=resolved)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"outcome": "confirmed", "resolved_by_ai": False}, "outcome", "Contradicts resolved_by_ai"),
        ({"outcome": "abandoned", "resolved_by_ai": True}, "outcome", "Contradicts resolved_by_ai"),
        ({"outcome": "resolved", "resolved_by_ai": True}, "outcome", "Input should be"),
        ({"outcome": 1, "resolved_by_ai": True}, "outcome", "Input should be"),
        ({}, "resolved_by_ai", "This field is required."),
        ({"outcome": None}, "resolved_by_ai", "This field is required."),
        ({"resolved_by_ai": True, "escalation_reason": "no docs"}, "escalation_reason", "did not resolve"),
        ({"outcome": "assumed", "escalation_reason": "no docs"}, "escalation_reason", "did not resolve"),
        ({"resolved_by_ai": False, "escalation_reason": "  "}, "escalation_reason", "empty"),
        ({"resolved_by_ai": False, "escalation_reason": "x" * 101}, "escalation_reason", "100 characters"),
        ({"resolved_by_ai": False, "escalation_reason": "a\x00b"}, "escalation_reason", "Null characters"),
        ({"resolved_by_ai": True, "customer_id": 12345}, "customer_id", "valid string"),
        ({"resolved_by_ai": True, "customer_id": 1.5}, "customer_id", "valid string"),
        ({"resolved_by_ai": True, "customer_id": ""}, "customer_id", "may not be blank"),
        ({"resolved_by_ai": True, "customer_id": "c" * 256}, "customer_id", "255 characters"),
        ({"resolved_by_ai": True, "customer_id": "a\x00b"}, "customer_id", "Null characters"),
        ({"resolved_by_ai": True, "customer_id": ["a"]}, "customer_id", "valid string"),
    ],
)
def test_a_bad_new_field_is_a_400_that_names_it_and_nothing_is_stored(
    ingest_client, frozen_now, body, field, message
):
    good = conversation("good", resolved_by_ai=True)
    response = post(ingest_client, [good, conversation("bad", **body)])
    found = errors_of(response)
    assert list(found) == [f"1.{field}"], found
    assert any(message in text for text in found[f"1.{field}"]), found
    assert not Conversation.objects.exists()


def test_escalation_reasons_are_normalized_like_topics(ingest_client, frozen_now):
    response = post(
        ingest_client, conversation("s", outcome="escalated", escalation_reason="  Missing   DOCS ")
    )
    assert response.json()["escalation_reason"] == "missing docs"
    assert Conversation.objects.get().escalation_reason == "missing docs"


def test_the_customer_id_is_stored_only_as_its_keyed_hash(ingest_client, frozen_now):
    response = post(ingest_client, conversation("s", resolved_by_ai=True, customer_id="ann@example.com"))
    assert response.json()["has_customer_id"] is True
    stored = Conversation.objects.get()
    assert bytes(stored.customer_hash) == customer_hash("ann@example.com")
    assert len(bytes(stored.customer_hash)) == 32
    # Keyed: another key, another hash (and no plain SHA-256 of the id).
    with override_settings(CUSTOMER_ID_HASH_KEY="another key"):
        assert customer_hash("ann@example.com") != bytes(stored.customer_hash)
    import hashlib

    assert hashlib.sha256(b"ann@example.com").digest() != bytes(stored.customer_hash)


def test_a_re_post_clears_an_omitted_outcome_and_reason_but_keeps_customer_and_csat(
    ingest_client, frozen_now
):
    first = conversation("s", outcome="escalated", escalation_reason="no docs", customer_id="ann", csat=2)
    assert post(ingest_client, first).status_code == 201
    response = post(ingest_client, conversation("s", resolved_by_ai=False))
    assert response.status_code == 200
    body = response.json()
    assert (body["outcome"], body["escalation_reason"], body["has_customer_id"], body["csat"]) == (
        None,
        None,
        True,
        2,
    )
    stored = Conversation.objects.get()
    assert (stored.outcome, stored.escalation_reason, bytes(stored.customer_hash)) == (
        "",
        "",
        customer_hash("ann"),
    )

    # Explicit nulls clear the customer and the score.
    body = post(ingest_client, conversation("s", resolved_by_ai=False, customer_id=None, csat=None)).json()
    assert (body["has_customer_id"], body["csat"]) == (False, None)
    assert Conversation.objects.get().customer_hash is None


def test_a_tutorial_line_still_posts_as_it_is(ingest_client, frozen_now):
    line = {
        "timestamp": "2026-03-14T11:00:00.123456",
        "session_id": "tutorial",
        "turns": 4,
        "resolved_by_ai": True,
        "topics": ["billing"],
        "avg_response_ms": 850.5,
        "csat": None,
    }
    body = post(ingest_client, line).json()
    assert (body["outcome"], body["escalation_reason"], body["has_customer_id"]) == (None, None, False)


# --- The raw customer id is shown nowhere ------------------------------------------------------

RAW_ID = "Cust-SECRET-4242@example.com"


def test_the_raw_customer_id_appears_in_no_response_page_csv_or_log_line(
    ingest_client, read_client, client, django_user_model, frozen_now, caplog, capfd
):
    caplog.set_level(logging.DEBUG)
    client.force_login(django_user_model.objects.create_superuser(username="root", email="", password=None))
    seen: list[str] = []

    def keep(response):
        seen.append(response.content.decode("utf-8", "replace"))
        return response

    keep(post(ingest_client, conversation("one", outcome="assumed", customer_id=RAW_ID)))
    two = conversation("two", outcome="escalated", customer_id=RAW_ID, escalation_reason="no docs")
    keep(post(ingest_client, [{**two, "timestamp": (T0 - 2 * DAY).isoformat()}]))
    # Refused posts that carry it: a too-long id made of it, a contradiction beside it.
    keep(post(ingest_client, conversation("bad", resolved_by_ai=True, customer_id=RAW_ID * 20)))
    keep(
        post(
            ingest_client, conversation("bad", outcome="confirmed", resolved_by_ai=False, customer_id=RAW_ID)
        )
    )
    keep(post(ingest_client, [conversation("bad", resolved_by_ai=True, customer_id=RAW_ID), {"turns": "x"}]))
    keep(
        ingest_client.post(
            URL, '{"session_id": "x", "customer_id": "' + RAW_ID, content_type="application/json"
        )
    )
    assert Conversation.objects.filter(customer_hash=customer_hash(RAW_ID)).count() == 2

    for path in ("/api/analytics", "/api/analytics/topics/", "/api/analytics/timeseries/"):
        keep(read_client.get(path, {"hours": 72}))
    for path in ("/dashboard/", "/dashboard/topics.csv", "/dashboard/timeseries.csv"):
        response = client.get(path, {"hours": 72})
        assert response.status_code == 200
        keep(response)
    changelist = reverse("admin:conversations_conversation_changelist")
    keep(client.get(changelist))
    # A search for the raw id finds the customer's conversations on a page that shows only the hash.
    found = client.get(changelist, {"q": RAW_ID}, follow=True)
    keep(found)
    assert {c.session_id for c in found.context["cl"].result_list} == {"one", "two"}
    assert customer_hash(RAW_ID).hex()[:12] in found.content.decode()
    keep(
        client.get(
            reverse(
                "admin:conversations_conversation_change",
                args=[Conversation.objects.get(session_id="one").pk],
            )
        )
    )

    captured = capfd.readouterr()
    everything = [*seen, *(record.getMessage() for record in caplog.records), captured.out, captured.err]
    for text in everything:
        assert RAW_ID not in text
        assert RAW_ID.lower() not in text.lower()
    assert len(seen) == 15


# --- Repeat contacts: the edges of the window --------------------------------------------------


# Ann's unless said otherwise.
item = functools.partial(conversation_in, customer="ann")


def flags() -> dict[str, bool]:
    return dict(Conversation.objects.values_list("session_id", "followed_up"))


def ingest(*items: ConversationIn) -> None:
    services.conversations_ingest(items=list(items))
    assert_follow_ups_exact()


@pytest.mark.parametrize(
    ("later", "followed"),
    [(WEEK, True), (WEEK + MICROSECOND, False), (MICROSECOND, True), (timedelta(0), False)],
)
def test_a_follow_up_counts_up_to_exactly_the_window_after_and_strictly_after(later, followed):
    start = T0 - 30 * DAY
    ingest(item("first", start), item("second", start + later))
    assert flags()["first"] is followed
    assert flags()["second"] is False  # nothing after it


def test_a_late_conversation_between_two_stored_ones_and_moves_and_deletes_keep_every_flag():
    start = T0 - 30 * DAY
    ingest(item("a", start))
    ingest(item("c", start + 10 * DAY))
    assert flags() == {"a": False, "c": False}
    ingest(item("b", start + 5 * DAY))  # arrives late, between them: both change
    assert flags() == {"a": True, "b": True, "c": False}
    ingest(item("b", start + 15 * DAY))  # moved after c
    assert flags() == {"a": False, "b": False, "c": True}
    ingest(item("b", start + 15 * DAY, customer="bob"))  # another customer now
    assert flags() == {"a": False, "b": False, "c": False}
    # Moved back without a customer_id field: still bob's.
    ingest(replace(item("b", start + 9 * DAY), customer_hash=None, customer_given=False))
    assert bytes(Conversation.objects.get(session_id="b").customer_hash) == customer_hash("bob")
    assert flags() == {"a": False, "b": False, "c": False}
    ingest(item("b", start + 9 * DAY, customer="ann"))
    assert flags() == {"a": False, "b": True, "c": False}
    services.conversations_delete(session_ids=["c"])
    assert_follow_ups_exact()
    assert flags() == {"a": False, "b": False}


def test_several_conversations_of_one_customer_in_one_batch():
    start = T0 - 30 * DAY
    services.conversations_ingest(items=[item(f"s{i}", start + i * 3 * DAY) for i in range(6)] + [
        item(f"pad{i}", start, customer=None) for i in range(services._SMALL_BATCH_MAX)
    ])  # fmt: skip
    assert_follow_ups_exact()
    assert [flags()[f"s{i}"] for i in range(6)] == [True] * 5 + [False]


def summary_block(totals) -> dict:
    return {
        "settled": totals.settled,
        "settled_ai_resolved": totals.settled_ai_resolved,
        "followed_up": totals.followed_up,
    }


def test_settled_means_ended_at_least_the_window_before_the_read():
    period = Period(start=T0 - 60 * DAY, end=T0)
    ingest(item("old", T0 - WEEK), item("older", T0 - WEEK - DAY), item("new", T0 - WEEK + MICROSECOND))
    with time_machine.travel(T0, tick=False):
        totals = selectors.window_totals(period=period, filters=Filters())
        assert totals == full_scan(period, Filters())
    # "older" and "old" were followed up ("old" a day later, "new" a microsecond later);
    # "new" is not settled yet.
    assert summary_block(totals) == {"settled": 2, "settled_ai_resolved": 2, "followed_up": 2}


def test_the_summary_shows_outcomes_reasons_and_repeat_contacts(read_client):
    start = T0 - 20 * DAY
    services.conversations_ingest(
        items=[
            item("c1", start, outcome="confirmed"),
            item("c2", start + DAY, outcome="assumed"),  # ann came back: c1 followed up
            item("c3", start + 2 * DAY, customer="bob", outcome="assumed"),
            item("c4", start + 3 * DAY, customer="bob", resolved=False, outcome="escalated",
                 escalation_reason="no docs"),  # bob came back: c3 followed up
            item("c5", start + 4 * DAY, customer=None, resolved=False, outcome="abandoned",
                 escalation_reason="angry"),
            item("c6", start + 5 * DAY, customer=None, resolved=False, escalation_reason="no docs"),
            item("c7", start + 6 * DAY, customer=None, resolved=False, escalation_reason="angry"),
            item("c8", T0 - DAY, customer="cy"),  # not settled yet
            item("c9", start + 6 * DAY, customer=None, resolved=False, escalation_reason="billing"),
            item("c10", start + 6 * DAY, customer=None, resolved=False, escalation_reason="billing"),
        ]
    )  # fmt: skip
    with time_machine.travel(T0, tick=False):
        body = read_client.get("/api/analytics", {"hours": 24 * 30}).json()
    assert body["total_conversations"] == 10
    assert body["ai_resolution_rate"] == 40.0
    assert body["escalated_conversations"] == 6  # abandoned ones included
    assert body["outcomes"] == {"confirmed": 1, "assumed": 2, "escalated": 1, "abandoned": 1, "unreported": 5}
    assert body["outcome_coverage"] == 50.0
    assert (body["confirmed_resolution_rate"], body["assumed_resolution_rate"], body["abandonment_rate"]) == (
        10.0,
        20.0,
        10.0,
    )
    # Highest first, ties by name.
    assert body["escalation_reasons"] == [["angry", 2], ["billing", 2], ["no docs", 2]]
    assert without_intervals(body["repeat_contact"]) == {
        "window_days": 7,
        "settled": 4,  # c1-c4 (c8 ended a day ago)
        "settled_ai_resolved": 3,
        "followed_up": 2,
        "repeat_contact_rate": 66.7,
        "durable_resolution_rate": 25.0,  # (3 - 2) / 4
        "customer_id_coverage": 50.0,
    }
    with time_machine.travel(T0, tick=False):
        filtered = read_client.get(
            "/api/analytics", {"hours": 24 * 30, "escalation_reason": " No DOCS"}
        ).json()
    assert filtered["filters"]["escalation_reason"] == "no docs"
    assert filtered["total_conversations"] == 2
    assert filtered["escalation_reasons"] == [["no docs", 2]]


def test_escalation_reasons_list_at_most_ten():
    services.conversations_ingest(
        items=[
            item(f"s{i}-{j}", T0 - DAY, customer=None, resolved=False, escalation_reason=f"reason {i:02d}")
            for i in range(12)
            for j in range(i + 1)
        ]
    )
    summary = selectors.summary(period=Period(start=T0 - 2 * DAY, end=T0), filters=Filters())
    assert summary.escalation_reasons == [(f"reason {i:02d}", i + 1) for i in range(11, 1, -1)]


@pytest.fixture
def reasons_and_topics():
    """Conversations with reasons, topics, channels and customers over ten days, written as
    single posts (deltas) and as a batch (rollups)."""
    start = T0 - 10 * DAY
    batch = []
    for i in range(60):
        resolved = i % 3 == 0
        batch.append(
            item(
                f"s{i}",
                start + timedelta(hours=4 * i, minutes=7 * i),
                customer=("ann", "bob", None)[i % 3],
                resolved=resolved,
                escalation_reason="" if resolved else ("no docs", "angry")[i % 2],
                topics=(("billing",), ("refund", "billing"), ())[i % 3],
                channel=("web", "email")[i % 2],
            )
        )
    services.conversations_ingest(items=batch[:40])
    for one in batch[40:]:
        services.conversations_ingest(items=[one])


@pytest.mark.parametrize(
    "filters",
    [
        Filters(escalation_reason="no docs"),
        Filters(escalation_reason="angry", channel="web"),
        Filters(escalation_reason="no docs", topic="billing"),
        Filters(escalation_reason="unknown"),
        Filters(topic="refund"),
    ],
)
def test_the_escalation_reason_filter_equals_a_full_scan(reasons_and_topics, filters):
    period = Period(start=T0 - 9 * DAY + timedelta(minutes=23), end=T0 - DAY - timedelta(minutes=7))
    with time_machine.travel(T0, tick=False):
        summary = selectors.summary(period=period, filters=filters)
        assert summary.totals == full_scan(period, filters)
        raw = Conversation.objects.filter(timestamp__gte=period.start, timestamp__lt=period.end)
        if filters.topic:
            raw = raw.with_topic(filters.topic)
        if filters.channel:
            raw = raw.filter(channel=filters.channel)
        if filters.escalation_reason:
            raw = raw.filter(escalation_reason=filters.escalation_reason)
        counts: dict[str, int] = {}
        for reason in raw.exclude(escalation_reason="").values_list("escalation_reason", flat=True):
            counts[reason] = counts.get(reason, 0) + 1
        assert summary.escalation_reasons == sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        topics = selectors.topic_breakdown(period=period, filters=filters)
        for topic in topics:
            expected = full_scan(period, replace(filters, topic=topic.topic))
            # No response-time histogram per topic (no percentile per topic).
            assert topic.totals == replace(expected, response_ms_histogram=histogram.EMPTY)
        buckets = selectors.timeseries(
            period=period, filters=filters, granularity=Granularity.DAY, tz=T0.tzinfo
        )
        assert_buckets_equal_full_scans(buckets, period, filters)


def test_rebuild_rollups_after_the_window_changes_recomputes_every_flag():
    start = T0 - 30 * DAY
    ingest(item("a", start), item("b", start + 3 * DAY), item("c", start + 10 * DAY))
    assert flags() == {"a": True, "b": True, "c": False}  # c came exactly 7 days after b
    with override_settings(REPEAT_CONTACT_DAYS=2):
        with transaction.atomic():
            rollups.rebuild()
        assert flags() == {"a": False, "b": False, "c": False}
        assert_follow_ups_exact()
    with override_settings(REPEAT_CONTACT_DAYS=8):
        call_command("rebuild_rollups", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert flags() == {"a": True, "b": True, "c": False}
        period = Period(start=start, end=T0)
        assert selectors.window_totals(period=period, filters=Filters()) == full_scan(period, Filters())
