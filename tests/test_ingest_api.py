import json
from datetime import timedelta
from decimal import Decimal

import pytest

from conversations import services
from conversations.models import ApiKey, Conversation, Topic
from conversations.services import ConversationIn
from tests.conftest import T0
from tests.factories import ConversationFactory
from tests.scans import topic_links, topic_names

URL = "/api/conversations/"

pytestmark = pytest.mark.django_db


def post(client, payload, **kwargs):
    return client.post(URL, payload, format="json", **kwargs)


def minimal(**overrides):
    return {"session_id": "s-1", "turns": 3, "resolved_by_ai": True, **overrides}


# --- Storing -----------------------------------------------------------------------


def test_single_conversation_is_created_and_returned_normalized(ingest_client, frozen_now):
    response = post(
        ingest_client,
        {
            "session_id": "abc-123",
            "turns": 4,
            "resolved_by_ai": False,
            "topics": ["  Billing   Issues ", "refund", "billing issues"],
            "response_times": [800, 1200.5],
            "csat": 2,
            "timestamp": "2026-03-14T11:00:00",
            "channel": "email",
            "bot_version": "2.1",
            "ai_cost": 0.07,
            "unknown_field": "ignored",
        },
    )

    assert response.status_code == 201, response.json()
    assert response.json() == {
        "session_id": "abc-123",
        "timestamp": "2026-03-14T11:00:00Z",
        "turns": 4,
        "resolved_by_ai": False,
        "topics": ["billing issues", "refund"],
        "avg_response_ms": 1000.25,
        "response_count": 2,
        "csat": 2,
        "channel": "email",
        "bot_version": "2.1",
        "ai_cost": 0.07,
        "outcome": None,
        "escalation_reason": None,
        "has_customer_id": False,
        "received_at": "2026-03-14T12:00:00Z",
    }
    stored = Conversation.objects.get()
    assert stored.ai_cost == Decimal("0.070000")
    assert topic_names(stored) == ["billing issues", "refund"]


def test_tutorial_tracker_line_posts_as_is(ingest_client, frozen_now):
    # Exactly what the tutorial's AnalyticsTracker.log_conversation writes to analytics.jsonl.
    line = (
        '{"timestamp": "2026-03-14T10:15:30.123456", "session_id": "t-1", "turns": 6, '
        '"resolved_by_ai": true, "topics": ["shipping"], "avg_response_ms": 950.0, "csat": null}'
    )
    response = ingest_client.post(URL, line, content_type="application/json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["timestamp"] == "2026-03-14T10:15:30.123456Z"
    assert body["avg_response_ms"] == 950.0
    assert body["response_count"] is None
    assert body["csat"] is None


def test_timestamp_defaults_to_time_of_receipt(ingest_client, frozen_now):
    response = post(ingest_client, minimal())
    assert response.json()["timestamp"] == "2026-03-14T12:00:00Z"


def test_timestamp_with_offset_is_stored_in_utc(ingest_client, frozen_now):
    response = post(ingest_client, minimal(timestamp="2026-03-14T13:30:00+02:00"))
    assert response.json()["timestamp"] == "2026-03-14T11:30:00Z"


def test_timestamp_exactly_five_minutes_ahead_is_accepted(ingest_client, frozen_now):
    ahead = (T0 + timedelta(minutes=5)).isoformat()
    assert post(ingest_client, minimal(timestamp=ahead)).status_code == 201


def test_empty_response_times_store_no_average(ingest_client, frozen_now):
    # The tutorial writes 0 for an empty list; "no responses" is not "0 ms".
    body = post(ingest_client, minimal(response_times=[])).json()
    assert (body["avg_response_ms"], body["response_count"]) == (None, 0)


def test_repost_replaces_and_never_counts_twice(ingest_client, frozen_now):
    assert post(ingest_client, minimal(turns=3, topics=["a", "b"], channel="web")).status_code == 201
    response = post(ingest_client, minimal(turns=9, topics=["c"], resolved_by_ai=False))

    assert response.status_code == 200
    assert Conversation.objects.count() == 1
    stored = Conversation.objects.get()
    assert (stored.turns, stored.resolved_by_ai, stored.channel) == (9, False, "")
    assert topic_names(stored) == ["c"]
    assert topic_links() == 1


def test_repost_without_csat_keeps_the_later_survey_score(ingest_client, frozen_now):
    post(ingest_client, minimal())
    ingest_client.post(f"{URL}s-1/csat/", {"csat": 5}, format="json")

    post(ingest_client, minimal(turns=7))  # a retried post, no csat field
    assert Conversation.objects.get().csat == 5

    post(ingest_client, minimal(csat=None))  # an explicit null clears it
    assert Conversation.objects.get().csat is None


def test_array_counts_created_and_updated(ingest_client, frozen_now):
    ConversationFactory(session_id="old")
    response = post(
        ingest_client,
        [minimal(session_id="old"), minimal(session_id="new-1"), minimal(session_id="new-2")],
    )

    assert response.status_code == 200
    assert response.json() == {"created": 2, "updated": 1}
    assert Conversation.objects.count() == 3


def test_same_session_twice_in_one_array_last_wins(ingest_client, frozen_now):
    response = post(
        ingest_client,
        [minimal(turns=1, topics=["x"]), minimal(session_id="other"), minimal(turns=2, topics=["y"])],
    )

    assert response.json() == {"created": 2, "updated": 0}
    stored = Conversation.objects.get(session_id="s-1")
    assert stored.turns == 2
    assert topic_names(stored) == ["y"]


def test_array_of_1000_is_accepted(ingest_client, frozen_now):
    items = [minimal(session_id=f"s-{i}", topics=[f"t{i % 7}"]) for i in range(1000)]
    response = post(ingest_client, items)
    assert response.json() == {"created": 1000, "updated": 0}
    assert Topic.objects.count() == 7


def test_empty_array_stores_nothing(ingest_client):
    response = post(ingest_client, [])
    assert (response.status_code, response.json()) == (200, {"created": 0, "updated": 0})


# --- Bad input: a clear 4xx, nothing stored ----------------------------------------------


BAD_FIELDS = [
    ({"session_id": ""}, "session_id"),
    ({"session_id": "x" * 256}, "session_id"),
    ({"session_id": None}, "session_id"),
    ({"session_id": "a\x00b"}, "session_id"),
    ({"turns": -1}, "turns"),
    ({"turns": 10_001}, "turns"),
    ({"turns": "3"}, "turns"),
    ({"turns": 2.5}, "turns"),
    ({"turns": True}, "turns"),
    ({"resolved_by_ai": "yes"}, "resolved_by_ai"),
    ({"resolved_by_ai": 1}, "resolved_by_ai"),
    ({"resolved_by_ai": None}, "resolved_by_ai"),
    ({"topics": "billing"}, "topics"),
    ({"topics": [f"t{i}" for i in range(21)]}, "topics"),
    ({"topics": ["ok", "   "]}, "topics.1"),
    ({"topics": ["x" * 101]}, "topics.0"),
    ({"topics": ["a\x00"]}, "topics.0"),
    ({"response_times": [100, -1]}, "response_times.1"),
    ({"response_times": [100, "fast"]}, "response_times.1"),
    ({"response_times": [1], "avg_response_ms": 5}, "avg_response_ms"),
    ({"avg_response_ms": -0.5}, "avg_response_ms"),
    ({"response_count": 3}, "response_count"),
    ({"csat": 0}, "csat"),
    ({"csat": 6}, "csat"),
    ({"csat": "5"}, "csat"),
    ({"csat": 4.5}, "csat"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "2026-03-14T12:05:01Z"}, "timestamp"),  # > 5 minutes ahead of T0
    ({"timestamp": 1700000000}, "timestamp"),
    ({"timestamp": "0001-01-01T00:00:00+01:00"}, "timestamp"),
    ({"channel": "c" * 65}, "channel"),
    ({"bot_version": "v" * 65}, "bot_version"),
    ({"ai_cost": -0.01}, "ai_cost"),
    ({"ai_cost": "cheap"}, "ai_cost"),
    ({"ai_cost": 0.0000001}, "ai_cost"),
    ({"avg_response_ms": 10**400}, "avg_response_ms"),
    ({"avg_response_ms": 86_400_001}, "avg_response_ms"),
    ({"response_times": [10**400]}, "response_times.0"),
    ({"response_times": [1.7e308, 1.7e308]}, "response_times.0"),
    ({"avg_response_ms": 1000, "response_count": 2**40}, "response_count"),
    ({"timestamp": "1899-12-31T23:59:59Z"}, "timestamp"),
]


@pytest.mark.parametrize(("override", "field"), BAD_FIELDS, ids=[repr(o)[:40] for o, _ in BAD_FIELDS])
def test_bad_field_is_named_and_nothing_is_stored(ingest_client, frozen_now, override, field):
    response = post(ingest_client, minimal(**override))

    assert response.status_code == 400
    body = response.json()
    assert field in [error["field"] for error in body["errors"]], body
    assert body["detail"]
    assert Conversation.objects.count() == 0
    assert Topic.objects.count() == 0


@pytest.mark.parametrize("missing", ["session_id", "turns", "resolved_by_ai"])
def test_required_field_missing(ingest_client, missing):
    payload = minimal()
    del payload[missing]
    response = post(ingest_client, payload)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": missing, "message": "This field is required."}]


def test_one_bad_item_rejects_the_whole_array_and_names_its_index(ingest_client, frozen_now):
    items = [minimal(session_id="good-1"), minimal(session_id="bad", csat=9), minimal(session_id="good-2")]
    items.append({"session_id": "worse", "turns": -5, "resolved_by_ai": True})

    response = post(ingest_client, items)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "2 problems in the request.",
        "errors": [
            {"index": 1, "field": "csat", "message": "Ensure this value is less than or equal to 5."},
            {"index": 3, "field": "turns", "message": "Ensure this value is greater than or equal to 0."},
        ],
    }
    assert Conversation.objects.count() == 0


def test_non_object_items_in_array_are_named(ingest_client):
    response = post(ingest_client, [minimal(), 42])
    assert response.status_code == 400
    assert response.json()["errors"][0]["index"] == 1
    assert Conversation.objects.count() == 0


def test_array_over_1000_is_rejected(ingest_client):
    response = post(ingest_client, [minimal(session_id=f"s{i}") for i in range(1001)])
    assert response.status_code == 400
    assert "1,000" in response.json()["detail"]
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ("", "application/json", 400),
        ("{}", "application/json", 400),
        ('"a string"', "application/json", 400),
        ("42", "application/json", 400),
        ("null", "application/json", 400),
        ('{"session_id": "s", "turns": NaN, "resolved_by_ai": true}', "application/json", 400),
        ("[" * 100_000 + "]" * 100_000, "application/json", 400),
        (b'{"session_id": "\xff\xfe", "turns": 1, "resolved_by_ai": true}', "application/json", 400),
        ("session_id=s&turns=1", "application/x-www-form-urlencoded", 415),
        ("<xml/>", "text/xml", 415),
    ],
    ids=[
        "malformed",
        "empty",
        "empty-object",
        "string",
        "number",
        "null",
        "nan",
        "deep",
        "bad-utf8",
        "form",
        "xml",
    ],
)
def test_unparseable_bodies_get_4xx_with_a_reason(ingest_client, body, content_type, status):
    response = ingest_client.post(URL, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["detail"]
    assert Conversation.objects.count() == 0


# --- Authentication ----------------------------------------------------------------------


def test_no_key_is_401_with_bearer_challenge(anon_client):
    response = post(anon_client, minimal())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert Conversation.objects.count() == 0


@pytest.mark.parametrize("header", ["Bearer nope.nope", "Bearer ", "Bearer unknownprefix"])
def test_bad_key_is_401(anon_client, header):
    response = post(anon_client, minimal(), HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_a_known_prefix_with_the_wrong_secret_is_401(anon_client):
    _, key = ApiKey.objects.create_key(name="bot", scope=ApiKey.Scope.INGEST)
    prefix = key.partition(".")[0]
    assert post(anon_client, minimal(), HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 201
    response = post(anon_client, minimal(), HTTP_AUTHORIZATION=f"Bearer {prefix}.not-the-secret")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or revoked API key."}
    assert Conversation.objects.count() == 1


def test_revoked_key_is_401_at_once(ingest_client):
    assert post(ingest_client, minimal(session_id="before")).status_code == 201
    ApiKey.objects.update(revoked=True)
    assert post(ingest_client, minimal(session_id="after")).status_code == 401
    assert list(Conversation.objects.values_list("session_id", flat=True)) == ["before"]


def test_expired_key_is_401(ingest_client, frozen_now):
    ApiKey.objects.update(expiry_date=T0 - timedelta(seconds=1))
    assert post(ingest_client, minimal()).status_code == 401


def test_read_only_key_cannot_ingest(read_client):
    response = post(read_client, minimal())
    assert response.status_code == 403
    assert "ingest" in response.json()["detail"]


def test_all_scope_key_can_ingest(all_client, frozen_now):
    assert post(all_client, minimal()).status_code == 201


def test_staff_session_without_key_cannot_ingest(staff_client):
    assert post(staff_client, minimal()).status_code in (401, 403)
    assert Conversation.objects.count() == 0


# --- Late CSAT -----------------------------------------------------------------------------


def test_csat_arrives_later(ingest_client, frozen_now):
    post(ingest_client, minimal(session_id="sess/with/slashes"))

    response = ingest_client.post(f"{URL}sess/with/slashes/csat/", {"csat": 4}, format="json")

    assert response.status_code == 200
    assert response.json()["csat"] == 4
    assert Conversation.objects.get().csat == 4


@pytest.mark.parametrize("path_id", ["a%00b", "x" * 256])
def test_csat_for_an_impossible_session_id_is_404(ingest_client, path_id):
    response = ingest_client.post(f"{URL}{path_id}/csat/", {"csat": 4}, format="json")
    assert response.status_code == 404


def test_session_ids_are_stored_exactly_as_sent(ingest_client, frozen_now):
    assert post(ingest_client, minimal(session_id="  padded  ")).status_code == 201
    assert post(ingest_client, minimal(session_id="padded")).status_code == 201
    assert Conversation.objects.count() == 2
    response = ingest_client.post(f"{URL}%20%20padded%20%20/csat/", {"csat": 3}, format="json")
    assert response.status_code == 200
    assert Conversation.objects.get(session_id="  padded  ").csat == 3


def test_body_over_2_mb_is_413_in_json_and_stores_nothing(ingest_client, frozen_now):
    items = [minimal(session_id=f"s{i}", topics=["x" * 100] * 20) for i in range(1000)]
    body = json.dumps(items)
    assert len(body) > 2 * 1024 * 1024
    response = ingest_client.post(URL, body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "2 MB" in response.json()["detail"]
    assert Conversation.objects.count() == 0


def test_csat_for_unknown_session_is_404(ingest_client):
    response = ingest_client.post(f"{URL}nobody/csat/", {"csat": 4}, format="json")
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


@pytest.mark.parametrize("payload", [{"csat": 0}, {"csat": 6}, {"csat": "4"}, {}, {"score": 4}])
def test_bad_csat_update_is_400_and_changes_nothing(ingest_client, frozen_now, payload):
    post(ingest_client, minimal(csat=3))
    response = ingest_client.post(f"{URL}s-1/csat/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "csat"
    assert Conversation.objects.get().csat == 3


def test_csat_update_needs_ingest_scope(read_client, anon_client):
    ConversationFactory(session_id="s-1")
    assert read_client.post(f"{URL}s-1/csat/", {"csat": 4}, format="json").status_code == 403
    assert anon_client.post(f"{URL}s-1/csat/", {"csat": 4}, format="json").status_code == 401


def test_errors_are_json_not_html(ingest_client, frozen_now):
    # The body of an error is always JSON, never an HTML page.
    response = ingest_client.post(URL, "{", content_type="application/json")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["detail"].startswith("JSON parse error")


def test_an_ingest_result_has_per_conversation_details_only_when_asked(frozen_now):
    # Batches (the API's arrays, the import) only need counts; the single POST asks for more.
    item = ConversationIn(session_id="d-1", timestamp=T0, turns=2, resolved_by_ai=True, topics=("billing",))
    counted = services.conversations_ingest(items=[item])
    detailed = services.conversations_ingest(items=[item], details=True)

    assert (counted.created, counted.updated) == (1, 0)
    assert (detailed.created, detailed.updated) == (0, 1)
    stored = detailed.conversation("d-1")
    assert (stored.pk, stored.turns, stored.topic_names) == (Conversation.objects.get().pk, 2, ["billing"])
    with pytest.raises(ValueError, match="details=True"):
        counted.conversation("d-1")
