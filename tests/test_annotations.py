"""Annotations (issue 17): the model's constraints, POST and GET /api/annotations/, the admin."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from conversations import services
from conversations.analytics import selectors
from conversations.models import Annotation, AnnotationKind, BotVersion
from conversations.services import AnnotationIn
from tests.conftest import T0

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

URL = "/api/annotations/"
HOOK = {
    "timestamp": "2026-03-14T09:30:00Z",
    "title": "Bot 2.5.0: new refund flow",
    "kind": "release",
    "bot_version": "2.5.0",
    "external_id": "deploy-8812",
}


def annotation(*, at, title="note", kind=AnnotationKind.OTHER, **fields) -> Annotation:
    return Annotation.objects.create(timestamp=at, title=title, kind=kind, **fields)


def answer(stored: Annotation) -> dict:
    """An annotation as the API answers it, from its stored row."""
    return {
        "id": stored.id,
        "timestamp": stored.timestamp.isoformat().replace("+00:00", "Z"),
        "title": stored.title,
        "kind": stored.kind,
        "channel": stored.channel or None,
        "bot_version": stored.bot_version or None,
        "external_id": stored.external_id or None,
    }


# --- The model's constraints, in the database -------------------------------------------


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"title": ""}, "annotation_title_not_empty"),
        ({"kind": "deploy"}, "annotation_kind_valid"),
    ],
)
def test_the_database_refuses_an_annotation_without_a_title_or_with_an_unknown_kind(fields, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        annotation(at=T0, **{"title": "x", "kind": "other", **fields})


def test_an_external_id_is_unique_when_set_and_many_annotations_have_none():
    annotation(at=T0, external_id="a")
    annotation(at=T0)
    annotation(at=T0)  # "" twice: no id, no conflict
    with pytest.raises(IntegrityError, match="annotation_external_id_unique"), transaction.atomic():
        annotation(at=T0, external_id="a")
    assert Annotation.objects.count() == 3


def test_a_bot_version_record_needs_a_version_and_one_per_version():
    BotVersion.objects.create(version="2.0", first_seen=T0)
    with pytest.raises(IntegrityError, match="bot_version_not_empty"), transaction.atomic():
        BotVersion.objects.create(version="", first_seen=T0)
    with pytest.raises(IntegrityError, match="bot_version_version_unique"), transaction.atomic():
        BotVersion.objects.create(version="2.0", first_seen=T0 - timedelta(days=1))


# --- POST /api/annotations/ ------------------------------------------------------------------


def test_the_release_hook_posts_an_annotation_and_gets_it_back_whole(ingest_client):
    response = ingest_client.post(URL, HOOK, format="json")

    assert response.status_code == 201
    stored = Annotation.objects.get()
    assert response.json() == {
        "id": stored.id,
        "timestamp": "2026-03-14T09:30:00Z",
        "title": "Bot 2.5.0: new refund flow",
        "kind": "release",
        "channel": None,
        "bot_version": "2.5.0",
        "external_id": "deploy-8812",
    }
    assert (stored.channel, stored.created_at) == ("", T0)


def test_a_repeated_external_id_returns_the_stored_annotation_unchanged(ingest_client):
    first = ingest_client.post(URL, HOOK, format="json")
    retried = ingest_client.post(URL, {**HOOK, "title": "Changed", "kind": "incident"}, format="json")

    assert (first.status_code, retried.status_code) == (201, 200)
    assert retried.json() == first.json()
    assert Annotation.objects.get().title == "Bot 2.5.0: new refund flow"


def test_without_an_external_id_every_post_is_a_new_annotation(ingest_client):
    body = {"title": "FAQ on refunds updated", "kind": "knowledge_base"}
    ids = [ingest_client.post(URL, body, format="json").json()["id"] for _ in range(2)]

    assert len(set(ids)) == 2
    assert Annotation.objects.count() == 2


def test_defaults_and_normalization_follow_the_conversation_ingest(ingest_client):
    response = ingest_client.post(
        URL,
        {
            "title": "  Outage  ",
            "kind": "incident",
            "channel": "  web ",
            "bot_version": "",
            "external_id": " x",
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    # No timestamp: the time of receipt. Title and labels trimmed, as the conversations' labels
    # are; "" means unscoped; the external id is kept exactly as sent (an opaque id).
    assert {key: body[key] for key in ("timestamp", "title", "channel", "bot_version", "external_id")} == {
        "timestamp": "2026-03-14T12:00:00Z",
        "title": "Outage",
        "channel": "web",
        "bot_version": None,
        "external_id": " x",
    }


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-03-14T10:30:00+01:00", "2026-03-14T09:30:00Z"),
        ("2026-03-14T09:30:00", "2026-03-14T09:30:00Z"),  # naive means UTC, as for a conversation
        ("2026-03-14T12:05:00Z", "2026-03-14T12:05:00Z"),  # exactly the 5 minutes ahead allowed
    ],
)
def test_timestamps_are_read_as_a_conversations_are(ingest_client, sent, stored):
    response = ingest_client.post(URL, {"title": "t", "kind": "other", "timestamp": sent}, format="json")
    assert response.status_code == 201
    assert response.json()["timestamp"] == stored


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            [
                {"field": "title", "message": "This field is required."},
                {"field": "kind", "message": "This field is required."},
            ],
        ),
        (
            {"title": "   ", "kind": "deploy"},
            [
                {"field": "title", "message": "This field may not be blank."},
                {
                    "field": "kind",
                    "message": "Input should be 'release', 'knowledge_base', 'incident' or 'other'",
                },
            ],
        ),
        (
            {"title": "x" * 201, "kind": "other", "channel": "c" * 65, "bot_version": 2},
            [
                {"field": "title", "message": "Ensure this field has no more than 200 characters."},
                {"field": "channel", "message": "Ensure this field has no more than 64 characters."},
                {"field": "bot_version", "message": "Not a valid string."},
            ],
        ),
        (
            {"title": "t", "kind": "other", "timestamp": "2026-03-14T12:05:00.000001Z"},
            [{"field": "timestamp", "message": "May not be more than 5 minutes in the future."}],
        ),
        (
            {"title": "t", "kind": "other", "timestamp": "yesterday"},
            [{"field": "timestamp", "message": "Datetime has wrong format. Use ISO 8601."}],
        ),
        (
            {"title": "t", "kind": "other", "timestamp": "1899-12-31T23:00:00Z"},
            [{"field": "timestamp", "message": "Must be between the years 1900 and 9000."}],
        ),
        (
            {"title": "t\x00", "kind": "other", "external_id": ""},
            [
                {"field": "title", "message": "Null characters are not allowed."},
                {"field": "external_id", "message": "This field may not be blank."},
            ],
        ),
        (
            {"title": "t", "kind": None, "external_id": "e" * 256},
            [
                {
                    "field": "kind",
                    "message": "Input should be 'release', 'knowledge_base', 'incident' or 'other'",
                },
                {"field": "external_id", "message": "Ensure this field has no more than 255 characters."},
            ],
        ),
    ],
)
def test_a_bad_annotation_gets_a_400_naming_each_field(ingest_client, body, errors):
    response = ingest_client.post(URL, body, format="json")

    assert response.status_code == 400
    detail = f"{errors[0]['field']}: {errors[0]['message']}" if len(errors) == 1 else None
    assert response.json() == {
        "detail": detail or f"{len(errors)} problems in the request.",
        "errors": errors,
    }
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("payload", "content_type"),
    [
        ('{"title": "t", "kind": ', "application/json"),  # broken JSON
        ("title=t&kind=other", "application/x-www-form-urlencoded"),
        ("[]", "application/json"),
    ],
)
def test_a_body_that_is_no_json_object_gets_what_the_conversation_ingest_answers(
    ingest_client, payload, content_type
):
    response = ingest_client.post(URL, payload, content_type=content_type)
    ingest = ingest_client.post("/api/conversations/", payload, content_type=content_type)

    if payload == "[]":  # an array is fine for conversations: not for an annotation
        assert response.status_code == 400
        assert response.json() == {"detail": "Expected a JSON object."}
    else:
        assert response.status_code == ingest.status_code
        assert response.status_code in (400, 415)
        assert response.json() == ingest.json()
    assert not Annotation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_of_one_new_external_id_store_it_once():
    item = AnnotationIn(timestamp=T0, title="Bot 3.0 released", kind="release", external_id="deploy-9")
    barrier = threading.Barrier(4)
    results, errors = [], []

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            stored, created = services.annotation_create(annotation=item)
            results.append((stored.id, created))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors, errors
    [stored] = Annotation.objects.all()
    assert sorted(results, key=lambda pair: not pair[1]) == [(stored.id, True)] + [(stored.id, False)] * 3


# --- GET /api/annotations/ -------------------------------------------------------------------


def test_the_list_is_start_inclusive_end_exclusive_in_time_order(read_client):
    start, end = T0 - timedelta(days=2), T0 - timedelta(days=1)
    tick = timedelta(microseconds=1)
    at_start = annotation(at=start, title="at start")
    before_end_b = annotation(at=end - tick, title="b")
    before_end_a = annotation(at=end - tick, title="a")  # same time: by id
    annotation(at=start - tick, title="just before")
    annotation(at=end, title="at end")
    inside = annotation(at=start + timedelta(hours=3), title="inside", channel="web", bot_version="2.0")

    response = read_client.get(URL, {"start": start.isoformat(), "end": end.isoformat()})

    assert response.status_code == 200
    assert response.json() == [answer(a) for a in (at_start, inside, before_end_b, before_end_a)]


def test_by_default_the_list_covers_the_last_90_days(read_client):
    tick = timedelta(microseconds=1)
    oldest = annotation(at=T0 - timedelta(days=90))
    newest = annotation(at=T0 - tick)
    too_old = annotation(at=T0 - timedelta(days=90) - tick)
    annotation(at=T0)  # end is now, exclusive

    assert read_client.get(URL).json() == [answer(oldest), answer(newest)]
    # start alone: until now; end alone: the 90 days before it.
    assert read_client.get(URL, {"start": (T0 - timedelta(days=1)).isoformat()}).json() == [answer(newest)]
    assert read_client.get(URL, {"end": (T0 - timedelta(days=1)).isoformat()}).json() == [
        answer(too_old),
        answer(oldest),
    ]


def test_a_channel_or_version_filter_keeps_what_applies_to_it(read_client):
    everywhere = annotation(at=T0 - timedelta(hours=5))
    web = annotation(at=T0 - timedelta(hours=4), channel="web")
    email = annotation(at=T0 - timedelta(hours=3), channel="email")
    web_v2 = annotation(at=T0 - timedelta(hours=2), channel="web", bot_version="2.0")
    v1 = annotation(at=T0 - timedelta(hours=1), bot_version="1.0")

    def listed(**query) -> list[dict]:
        return read_client.get(URL, query).json()

    assert listed(channel="web") == [answer(a) for a in (everywhere, web, web_v2, v1)]
    assert listed(bot_version="2.0") == [answer(a) for a in (everywhere, web, email, web_v2)]
    assert listed(channel="web", bot_version="1.0") == [answer(a) for a in (everywhere, web, v1)]
    assert len(listed()) == 5


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2026-03-10T00:00:00Z", "end": "2026-03-10T00:00:00Z"}, "end", "Must be after start."),
        ({"start": "2026-03-11T00:00:00Z", "end": "2026-03-10T00:00:00Z"}, "end", "Must be after start."),
        ({"start": "2026-03-14T12:00:00Z"}, "start", "Must be before end (default: now)."),
        (
            {"start": "last week"},
            "start",
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
        ),
        ({"end": "0001-01-01T00:00:00Z"}, "end", "Must be between the years 1900 and 9000."),
        ({"channel": "c" * 65}, "channel", "Ensure this field has no more than 64 characters."),
    ],
)
def test_a_bad_list_query_gets_a_400_naming_the_parameter(read_client, query, field, message):
    response = read_client.get(URL, query)

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"{field}: {message}",
        "errors": [{"field": field, "message": message}],
    }


def test_a_window_with_more_annotations_than_the_cap_asks_for_a_narrower_one(read_client):
    limit = selectors.ANNOTATIONS_LIMIT
    Annotation.objects.bulk_create(
        Annotation(timestamp=T0 - timedelta(minutes=n + 1), title=f"n{n}", kind="other") for n in range(limit)
    )
    assert len(read_client.get(URL).json()) == limit

    annotation(at=T0 - timedelta(days=1))
    response = read_client.get(URL)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "start", "message": "More than 1,000 annotations in the window: narrow it."}
    ]
    # The selector the charts call keeps the latest of the window.
    shown = selectors.annotations_in(start=T0 - timedelta(days=2), end=T0)
    assert len(shown) == limit
    assert shown[0].timestamp == T0 - timedelta(minutes=limit)


def test_a_staff_login_reads_the_list_but_cannot_post(staff_client):
    annotation(at=T0 - timedelta(hours=1))
    assert staff_client.get(URL).status_code == 200
    refused = staff_client.post(URL, HOOK, format="json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "An API key with the 'ingest' scope is required."}


def test_a_read_key_cannot_post_and_an_ingest_key_cannot_list(read_client, ingest_client):
    assert read_client.post(URL, HOOK, format="json").json() == {
        "detail": "This API key lacks the 'ingest' scope."
    }
    assert ingest_client.get(URL).json() == {"detail": "This API key lacks the 'read' scope."}
    assert not Annotation.objects.exists()


# --- Admin ---------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser(username="root", email="", password=None))
    return client


def admin_form(**fields) -> dict:
    return {
        "timestamp_0": "2026-03-13",
        "timestamp_1": "08:00:00",
        "title": "Refund article rewritten",
        "kind": "knowledge_base",
        "channel": "",
        "bot_version": "",
        "external_id": "",
        **fields,
    }


def test_staff_add_an_annotation_in_the_admin_normalized_as_the_api_does(superuser_client):
    response = superuser_client.post(
        reverse("admin:conversations_annotation_add"),
        admin_form(title="  Refund article rewritten ", channel=" web ", external_id=" kb-1 "),
    )

    assert response.status_code == 302, response.content[:2000]
    stored = Annotation.objects.get()
    assert (stored.timestamp, stored.title, stored.kind, stored.channel, stored.bot_version) == (
        T0 - timedelta(days=1, hours=4),
        "Refund article rewritten",
        "knowledge_base",
        "web",
        "",
    )
    assert stored.external_id == " kb-1 "  # an opaque id, kept as typed (as the API keeps it)


def test_the_admin_refuses_an_external_id_already_stored(superuser_client):
    annotation(at=T0, external_id="kb-1")
    response = superuser_client.post(
        reverse("admin:conversations_annotation_add"), admin_form(external_id="kb-1")
    )

    assert response.status_code == 200  # the form again, with the error
    assert response.context["adminform"].form.errors == {
        "__all__": ["An annotation with this external id exists already."]
    }
    assert Annotation.objects.count() == 1


def test_the_admin_list_searches_filters_by_kind_and_has_a_date_hierarchy(superuser_client):
    release = annotation(
        at=T0 - timedelta(days=1), title="Bot 2.0 released", kind="release", bot_version="2.0"
    )
    incident = annotation(
        at=T0 - timedelta(days=40), title="Payments outage", kind="incident", external_id="inc-7"
    )
    url = reverse("admin:conversations_annotation_changelist")

    def listed(**query) -> list[Annotation]:
        response = superuser_client.get(url, query)
        assert response.status_code == 200
        return list(response.context["cl"].result_list)

    assert listed() == [release, incident]  # newest first
    assert listed(kind__exact="incident") == [incident]
    assert listed(q="2.0") == [release]
    assert listed(q="inc-7") == [incident]
    assert listed(q="outage") == [incident]
    assert listed(timestamp__year="2026", timestamp__month="2") == [incident]
