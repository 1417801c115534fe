"""Alert rules over REST and in the admin (issue 18, first part): whole answers, every
validation rule, scopes, the webhook secret shown once, and an edit resetting the state."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from conversations import alerts
from conversations.models import AlertRule
from tests.conftest import T0

pytestmark = pytest.mark.django_db

URL = "/api/alert-rules/"

DROP_RULE = {
    "name": "AI resolution fell",
    "metric": "ai_resolution_rate",
    "condition": "drop",
    "min_change": 5,
    "window_minutes": 1440,
    "filters": {"channel": " web ", "topic": "  Billing   Issues "},
    "emails": ["leads@example.com"],
    "webhooks": ["https://hooks.example.com/alerts"],
}
BELOW_RULE = {
    "name": "CSAT low",
    "metric": "avg_csat",
    "condition": "below",
    "threshold": 3.5,
    "window_minutes": 60,
}


def stored(rule_id: int, **changes) -> dict:
    """The answer for DROP_RULE as stored, with `changes`."""
    return {
        "id": rule_id,
        "name": "AI resolution fell",
        "metric": "ai_resolution_rate",
        "condition": "drop",
        "threshold": None,
        "min_change": 5.0,
        "window_minutes": 1440,
        "min_sample_size": 30,
        "for_minutes": 0,
        "renotify_minutes": 0,
        "delay_minutes": 0,
        "filters": {
            "channel": "web",
            "bot_version": None,
            "topic": "billing issues",
            "escalation_reason": None,
        },
        "emails": ["leads@example.com"],
        "webhooks": ["https://hooks.example.com/alerts"],
        "enabled": True,
        "state": "ok",
        "state_changed_at": None,
        **changes,
    }


def test_create_answers_the_stored_rule_with_its_webhook_secret_once(all_client):
    created = all_client.post(URL, DROP_RULE, format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    rule = AlertRule.objects.get()
    secret = body.pop("webhook_secret")
    assert len(secret) == 64 and secret == rule.webhook_secret
    assert body == stored(rule.id)

    got = all_client.get(f"{URL}{rule.id}/")
    assert got.status_code == 200
    assert got.json() == stored(rule.id)
    listed = all_client.get(URL)
    assert listed.json() == [stored(rule.id)]
    patched = all_client.patch(f"{URL}{rule.id}/", {"name": "Renamed"}, format="json")
    assert patched.json() == stored(rule.id, name="Renamed")
    assert secret not in str(all_client.put(f"{URL}{rule.id}/", DROP_RULE, format="json").content)


def test_a_rule_without_webhooks_has_no_secret_until_its_first_webhook(all_client):
    created = all_client.post(URL, BELOW_RULE, format="json").json()
    assert "webhook_secret" not in created
    assert AlertRule.objects.get().webhook_secret == ""

    added = all_client.patch(
        f"{URL}{created['id']}/", {"webhooks": ["http://hooks.example.com/a"]}, format="json"
    ).json()
    assert added.pop("webhook_secret") == AlertRule.objects.get().webhook_secret
    again = all_client.patch(
        f"{URL}{created['id']}/", {"webhooks": ["http://hooks.example.com/b"]}, format="json"
    ).json()
    assert "webhook_secret" not in again


def test_list_is_ordered_by_id_and_defaults_apply(all_client):
    first = all_client.post(URL, BELOW_RULE, format="json").json()
    second = all_client.post(URL, {**BELOW_RULE, "name": "Second"}, format="json").json()

    listed = all_client.get(URL).json()
    assert [rule["id"] for rule in listed] == [first["id"], second["id"]]
    assert listed[0] == {
        "id": first["id"],
        "name": "CSAT low",
        "metric": "avg_csat",
        "condition": "below",
        "threshold": 3.5,
        "min_change": None,
        "window_minutes": 60,
        "min_sample_size": 30,
        "for_minutes": 0,
        "renotify_minutes": 0,
        "delay_minutes": 0,
        "filters": {"channel": None, "bot_version": None, "topic": None, "escalation_reason": None},
        "emails": [],
        "webhooks": [],
        "enabled": True,
        "state": "ok",
        "state_changed_at": None,
    }


def test_put_replaces_the_whole_rule(all_client):
    rule_id = all_client.post(URL, DROP_RULE, format="json").json()["id"]
    replacement = {
        "name": "Slow answers",
        "metric": "response_time.p95_ms",
        "condition": "above",
        "threshold": 4000,
        "window_minutes": 15,
        "min_sample_size": 0,
        "for_minutes": 10,
        "renotify_minutes": 120,
        "delay_minutes": 5,
        "filters": {"bot_version": "2.5.0", "escalation_reason": " Needs  Human "},
        "enabled": False,
    }

    replaced = all_client.put(f"{URL}{rule_id}/", replacement, format="json")

    assert replaced.status_code == 200, replaced.content
    expected = stored(
        rule_id,
        **{
            **replacement,
            "threshold": 4000.0,
            "min_change": None,
            "emails": [],
            "webhooks": [],
            "filters": {
                "channel": None,
                "bot_version": "2.5.0",
                "topic": None,
                "escalation_reason": "needs human",
            },
        },
    )
    assert replaced.json() == expected
    assert all_client.get(f"{URL}{rule_id}/").json() == expected


def test_put_takes_back_an_answer_as_it_was_given(all_client):
    answer = all_client.post(URL, BELOW_RULE, format="json").json()
    again = all_client.put(f"{URL}{answer['id']}/", answer, format="json")
    assert again.status_code == 200, again.content
    assert again.json() == answer


def test_patch_changes_only_what_it_names(all_client):
    rule_id = all_client.post(URL, DROP_RULE, format="json").json()["id"]

    patched = all_client.patch(
        f"{URL}{rule_id}/", {"filters": {"bot_version": "3.0"}, "enabled": False}, format="json"
    )

    assert patched.status_code == 200, patched.content
    assert patched.json() == stored(
        rule_id,
        enabled=False,
        filters={
            "channel": "web",
            "bot_version": "3.0",
            "topic": "billing issues",
            "escalation_reason": None,
        },
    )


def test_patch_to_another_condition_needs_the_other_number(all_client):
    rule_id = all_client.post(URL, DROP_RULE, format="json").json()["id"]
    url = f"{URL}{rule_id}/"

    refused = all_client.patch(url, {"condition": "below"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {"field": "min_change", "message": "Only for drop and rise; below compares with threshold."}
    ]
    switched = all_client.patch(
        url, {"condition": "below", "min_change": None, "threshold": 60}, format="json"
    )
    assert switched.status_code == 200, switched.content
    assert (switched.json()["threshold"], switched.json()["min_change"]) == (60.0, None)


def test_delete(all_client):
    rule_id = all_client.post(URL, BELOW_RULE, format="json").json()["id"]

    deleted = all_client.delete(f"{URL}{rule_id}/")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert not AlertRule.objects.exists()
    assert all_client.delete(f"{URL}{rule_id}/").status_code == 404


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_an_unknown_id_is_404_in_the_api_shape(all_client, method):
    response = getattr(all_client, method)(f"{URL}999999/", BELOW_RULE, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No alert rule with id 999999."}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": "x" * 201}, "name", "Ensure this field has no more than 200 characters."),
        ({"metric": "avg_turns"}, "metric", '"avg_turns" is not a valid choice.'),
        ({"condition": "equals"}, "condition", '"equals" is not a valid choice.'),
        ({"threshold": None}, "threshold", "Required for below."),
        ({"threshold": "3.5"}, "threshold", "A valid number is required."),
        ({"threshold": True}, "threshold", "A valid number is required."),
        ({"threshold": 3.555}, "threshold", "Ensure that there are no more than 2 decimal places."),
        ({"threshold": 5.01}, "threshold", "Must be between 1 and 5 for avg_csat."),
        ({"threshold": 0.99}, "threshold", "Must be between 1 and 5 for avg_csat."),
        (
            {"metric": "ai_resolution_rate", "threshold": 100.1},
            "threshold",
            "Must be between 0 and 100 for ai_resolution_rate.",
        ),
        (
            {"metric": "total_conversations", "threshold": -1},
            "threshold",
            "Must be at least 0 for total_conversations.",
        ),
        ({"min_change": 1}, "min_change", "Only for drop and rise; below compares with threshold."),
        ({"condition": "drop"}, "threshold", "Only for below and above; drop needs min_change."),
        ({"condition": "rise", "threshold": None}, "min_change", "Required for rise (the metric's unit)."),
        (
            {"condition": "rise", "threshold": None, "min_change": 0},
            "min_change",
            "Must be more than 0 and at most 4 for avg_csat (the metric's unit).",
        ),
        (
            {"condition": "rise", "threshold": None, "min_change": 4.5},
            "min_change",
            "Must be more than 0 and at most 4 for avg_csat (the metric's unit).",
        ),
        (
            {"metric": "csat.score", "condition": "drop", "threshold": None, "min_change": 101},
            "min_change",
            "Must be more than 0 and at most 100 for csat.score (points).",
        ),
        (
            {"metric": "total_conversations", "condition": "drop", "threshold": None, "min_change": -5},
            "min_change",
            "Must be more than 0 for total_conversations (percent).",
        ),
        (
            {"metric": "response_time.p95_ms", "condition": "rise", "threshold": None, "min_change": 10},
            "condition",
            "response_time.p95_ms has no test of a change: use below or above.",
        ),
        ({"window_minutes": 14}, "window_minutes", "Ensure this value is greater than or equal to 15."),
        ({"window_minutes": 10081}, "window_minutes", "Ensure this value is less than or equal to 10080."),
        ({"window_minutes": "60"}, "window_minutes", "Must be a JSON integer."),
        ({"min_sample_size": -1}, "min_sample_size", "Ensure this value is greater than or equal to 0."),
        (
            {"min_sample_size": 1_000_001},
            "min_sample_size",
            "Ensure this value is less than or equal to 1000000.",
        ),
        ({"for_minutes": 10081}, "for_minutes", "Ensure this value is less than or equal to 10080."),
        (
            {"renotify_minutes": 43201},
            "renotify_minutes",
            "Ensure this value is less than or equal to 43200.",
        ),
        ({"delay_minutes": 1441}, "delay_minutes", "Ensure this value is less than or equal to 1440."),
        ({"delay_minutes": -1}, "delay_minutes", "Ensure this value is greater than or equal to 0."),
        (
            {"filters": {"channel": "x" * 65}},
            "filters.channel",
            "Ensure this field has no more than 64 characters.",
        ),
        (
            {"filters": {"topic": "x" * 101}},
            "filters.topic",
            "Ensure this field has no more than 100 characters.",
        ),
        ({"filters": {"escalation_reason": 3}}, "filters.escalation_reason", "Not a valid string."),
        ({"filters": {"chanel": "web"}}, "filters.chanel", "Unknown field."),
        ({"filters": "web"}, "filters", "Invalid data. Expected a dictionary, but got str."),
        ({"emails": ["not-an-email"]}, "emails.0", "Enter a valid email address."),
        ({"emails": "a@example.com"}, "emails", 'Expected a list of items but got type "str".'),
        ({"emails": ["a@example.com", "A@example.com"]}, "emails", "A@example.com is given twice."),
        (
            {"emails": [f"a{n}@example.com" for n in range(21)]},
            "emails",
            "Ensure this field has no more than 20 elements.",
        ),
        ({"webhooks": ["ftp://hooks.example.com/x"]}, "webhooks.0", "Enter a valid URL."),
        ({"webhooks": ["https://"]}, "webhooks.0", "Enter a valid URL."),
        ({"webhooks": ["javascript:alert(1)"]}, "webhooks.0", "Enter a valid URL."),
        (
            {"webhooks": [f"https://h{n}.example.com" for n in range(11)]},
            "webhooks",
            "Ensure this field has no more than 10 elements.",
        ),
        ({"enabled": "true"}, "enabled", "Must be a JSON boolean."),
        ({"treshold": 3}, "treshold", "Unknown field."),
    ],
)
def test_every_bad_field_is_a_400_naming_it(all_client, change, field, message):
    response = all_client.post(URL, {**BELOW_RULE, **change}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == [{"field": field, "message": message}]
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize("missing", ["name", "metric", "condition", "window_minutes"])
def test_required_fields(all_client, missing):
    body = {name: value for name, value in BELOW_RULE.items() if name != missing}
    response = all_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": missing, "message": "This field is required."}]


def test_a_body_that_is_no_object_is_400(all_client):
    response = all_client.post(URL, [BELOW_RULE], format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Expected a JSON object."}


def test_every_listed_metric_takes_below_and_above_and_the_changeable_ones_drop(all_client):
    from conversations.alert_rules import ALERT_METRICS, CHANGE_METRICS

    assert set(ALERT_METRICS) - CHANGE_METRICS == {"response_time.p95_ms"}
    for metric in ALERT_METRICS:
        above = all_client.post(
            URL, {**BELOW_RULE, "metric": metric, "condition": "above", "threshold": 2}, format="json"
        )
        assert above.status_code == 201, (metric, above.content)
        if metric in CHANGE_METRICS:
            drop = {**BELOW_RULE, "metric": metric, "condition": "drop", "threshold": None, "min_change": 1}
            assert all_client.post(URL, drop, format="json").status_code == 201, metric


@pytest.mark.parametrize(
    ("client_name", "status"),
    [("anon_client", 401), ("ingest_client", 403), ("read_client", 403), ("staff_client", 403)],
)
def test_only_keys_with_the_all_scope_manage_rules(request, all_client, client_name, status):
    rule_id = all_client.post(URL, BELOW_RULE, format="json").json()["id"]
    client = request.getfixturevalue(client_name)

    for method, url in [
        ("get", URL),
        ("post", URL),
        ("get", f"{URL}{rule_id}/"),
        ("put", f"{URL}{rule_id}/"),
        ("patch", f"{URL}{rule_id}/"),
        ("delete", f"{URL}{rule_id}/"),
    ]:
        response = getattr(client, method)(url, BELOW_RULE, format="json")
        assert response.status_code == status, (method, url)
        assert list(response.json()) == ["detail"]
    assert AlertRule.objects.get().name == "CSAT low"


def _firing(rule_id: int) -> None:
    AlertRule.objects.filter(pk=rule_id).update(state="firing", state_changed_at=T0)


@pytest.mark.parametrize("method", ["put", "patch"])
def test_an_edit_resets_a_firing_rule_to_ok(all_client, frozen_now, method):
    rule_id = all_client.post(URL, BELOW_RULE, format="json").json()["id"]
    _firing(rule_id)
    assert all_client.get(f"{URL}{rule_id}/").json()["state"] == "firing"

    edited = getattr(all_client, method)(f"{URL}{rule_id}/", {**BELOW_RULE, "threshold": 3}, format="json")

    assert edited.status_code == 200
    assert (edited.json()["state"], edited.json()["state_changed_at"]) == ("ok", "2026-03-14T12:00:00Z")
    assert AlertRule.objects.get().state == "ok"


def test_an_edit_that_changes_nothing_keeps_the_state(all_client):
    rule_id = all_client.post(URL, BELOW_RULE, format="json").json()["id"]
    _firing(rule_id)

    same = all_client.put(f"{URL}{rule_id}/", BELOW_RULE, format="json")

    assert same.json()["state"] == "firing"


def test_the_database_refuses_what_the_rules_refuse(db):
    base = {"name": "x", "metric": "avg_csat", "window_minutes": 60}
    for fields in [
        {"condition": "below"},  # no threshold
        {"condition": "drop", "min_change": 1, "threshold": 2},
        {"condition": "drop", "min_change": 0},
        {"condition": "drop", "metric": "response_time.p95_ms", "min_change": 1},
        {"condition": "below", "threshold": 2, "window_minutes": 14},
        {"condition": "below", "threshold": 2, "delay_minutes": 1441},
        {"condition": "below", "threshold": 2, "metric": "avg_turns"},
        {"condition": "below", "threshold": 2, "state": "maybe"},
        {"condition": "below", "threshold": 2, "name": ""},
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            AlertRule.objects.create(**{**base, **fields})


def test_the_admin_saves_through_the_services(django_user_model, client, frozen_now):
    client.force_login(django_user_model.objects.create_superuser(username="root", email=""))
    form = {
        "name": "Escalations up",
        "metric": "escalated_conversations",
        "condition": "rise",
        "threshold": "",
        "min_change": "50",
        "window_minutes": "60",
        "min_sample_size": "30",
        "for_minutes": "0",
        "renotify_minutes": "0",
        "delay_minutes": "0",
        "channel": " web ",
        "bot_version": "",
        "topic": " Refund  Status",
        "escalation_reason": "",
        "emails": "a@example.com,b@example.com",
        "webhooks": "https://hooks.example.com/x",
        "enabled": "on",
    }

    added = client.post(reverse("admin:conversations_alertrule_add"), form)
    assert added.status_code == 302, added.content.decode()[:2000]
    rule = AlertRule.objects.get()
    assert (rule.channel, rule.topic, rule.emails) == (
        "web",
        "refund status",
        ["a@example.com", "b@example.com"],
    )
    assert len(rule.webhook_secret) == 64

    _firing(rule.id)
    change_url = reverse("admin:conversations_alertrule_change", args=[rule.id])
    page = client.get(change_url).content.decode()
    assert rule.webhook_secret not in page and rule.webhook_secret[:6] in page
    assert client.post(change_url, {**form, "min_change": "60"}).status_code == 302
    rule.refresh_from_db()
    assert (rule.min_change, rule.state, rule.webhook_secret) == (60, "ok", rule.webhook_secret)

    refused = client.post(change_url, {**form, "threshold": "5"})
    assert refused.status_code == 200
    assert "Only for below and above; rise needs min_change." in refused.content.decode()
    listed = client.get(reverse("admin:conversations_alertrule_changelist") + "?q=Escal")
    assert "Escalations up" in listed.content.decode()


def test_services_refuse_what_the_api_refuses(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        alerts.alert_rule_create(
            values={"name": "x", "metric": "avg_csat", "condition": "drop", "window_minutes": 60}
        )
    assert refused.value.message_dict == {"min_change": ["Required for drop (the metric's unit)."]}
