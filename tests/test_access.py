"""Who may open what: every URL × every kind of caller, each with exactly one expected answer.

Decisions the table records:
- The API answers 401 with `WWW-Authenticate: Bearer` to a missing, unknown, revoked or expired
  key, and 403 to a valid key or login without the needed scope. Staff logins read the
  analytics API but do not post conversations (that is the bot's key).
- /api/schema/ and /api/docs/ are public: they describe the API and hold no data, the bot's
  developers need them without a staff login, and a browser cannot send a Bearer key to load
  a page. A *bad* key is still refused there (401), as everywhere in the API.
- The dashboard and its CSV exports: anonymous (a key is no login there) to the login page,
  logged-in non-staff 403, staff 200. The admin: the admin's login page unless staff; a staff
  account without model permissions sees the index but gets 403 on a change list.
- Alert rules (/api/alert-rules/): API keys with the `all` scope only, as the issue says; staff
  logins manage them in the admin, not over the API (403).
- /healthz answers everyone (a load balancer has no credentials).
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.admin.utils import quote as admin_quote
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import AlertRule, Annotation, ApiKey
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

CALLERS = ["anonymous", "ingest", "read", "all", "revoked", "expired", "user", "staff", "superuser"]

CONVERSATION = {"session_id": "access-test", "turns": 2, "resolved_by_ai": True}
ANNOTATION = {"title": "Bot 2.5.0 released", "kind": "release", "bot_version": "2.5.0"}
KNOWN_ANNOTATION_ID = 424242  # test_access stores it with this id
ALERT_RULE = {
    "name": "CSAT low",
    "metric": "avg_csat",
    "condition": "below",
    "threshold": 3,
    "window_minutes": 60,
}
KNOWN_ALERT_RULE_ID = 434343  # likewise

LOGIN = "/accounts/login/?next="
ADMIN_LOGIN = "/admin/login/?next="


def row(*answers):
    """One URL's answers, in the order of CALLERS; an answer is a status or (302, Location)."""
    assert len(answers) == len(CALLERS)
    return dict(zip(CALLERS, answers, strict=True))


def api(ok: int, *, staff: int):
    return row(401, *ok, 401, 401, 403, staff, staff)


TABLE = [
    ("POST", "/api/conversations/", CONVERSATION, api((201, 403, 201), staff=403)),
    ("POST", "/api/conversations/known/csat/", {"csat": 4}, api((200, 403, 200), staff=403)),
    ("GET", "/api/analytics", None, api((403, 200, 200), staff=200)),
    ("GET", "/api/analytics?hours=1", None, api((403, 200, 200), staff=200)),
    ("GET", "/api/analytics/topics/", None, api((403, 200, 200), staff=200)),
    ("GET", "/api/analytics/timeseries/", None, api((403, 200, 200), staff=200)),
    ("GET", "/api/analytics/compare/?a_channel=web&b_channel=email", None, api((403, 200, 200), staff=200)),
    ("POST", "/api/annotations/", ANNOTATION, api((201, 403, 201), staff=403)),
    ("GET", "/api/annotations/", None, api((403, 200, 200), staff=200)),
    (
        "GET",
        f"/api/annotations/{KNOWN_ANNOTATION_ID}/impact/",
        None,
        api((403, 200, 200), staff=200),
    ),
    ("GET", "/api/alert-rules/", None, api((403, 403, 200), staff=403)),
    ("POST", "/api/alert-rules/", ALERT_RULE, api((403, 403, 201), staff=403)),
    *[
        (method, f"/api/alert-rules/{KNOWN_ALERT_RULE_ID}/", body, api((403, 403, ok), staff=403))
        for method, body, ok in [
            ("GET", None, 200),
            ("PUT", ALERT_RULE, 200),
            ("PATCH", {"enabled": False}, 200),
            ("DELETE", None, 204),
        ]
    ],
    ("GET", "/api/schema/", None, row(200, 200, 200, 200, 401, 401, 200, 200, 200)),
    ("GET", "/api/docs/", None, row(200, 200, 200, 200, 401, 401, 200, 200, 200)),
    *[
        ("GET", path, None, row(*[(302, LOGIN + quote(path))] * 6, 403, 200, 200))
        for path in (
            "/dashboard/",
            "/dashboard/compare/",
            f"/dashboard/annotations/{KNOWN_ANNOTATION_ID}/",
            "/dashboard/topics.csv",
            "/dashboard/timeseries.csv",
        )
    ],
    ("GET", "/", None, row(*[(302, "/dashboard/")] * 9)),
    ("GET", "/admin/", None, row(*[(302, ADMIN_LOGIN + "/admin/")] * 7, 200, 200)),
    (
        "GET",
        "/admin/conversations/conversation/",
        None,
        row(*[(302, ADMIN_LOGIN + quote("/admin/conversations/conversation/"))] * 7, 403, 200),
    ),
    (
        "GET",
        "/admin/conversations/alertrule/",
        None,
        row(*[(302, ADMIN_LOGIN + quote("/admin/conversations/alertrule/"))] * 7, 403, 200),
    ),
    (
        "GET",
        "/admin/conversations/apikey/",
        None,
        row(*[(302, ADMIN_LOGIN + quote("/admin/conversations/apikey/"))] * 7, 403, 200),
    ),
    ("GET", "/healthz", None, row(*[200] * 9)),
]


def key_client(*, scope: str, **fields) -> Client:
    _, key = ApiKey.objects.create_key(name=f"access-{scope}", scope=scope, **fields)
    return Client(headers={"authorization": f"Bearer {key}"})


def caller_client(caller: str, django_user_model) -> Client:
    if caller in ("ingest", "read", "all"):
        return key_client(scope=caller)
    if caller == "revoked":
        return key_client(scope=ApiKey.Scope.ALL, revoked=True)
    if caller == "expired":
        return key_client(scope=ApiKey.Scope.ALL, expiry_date=timezone.now() - timedelta(seconds=1))
    client = Client()
    if caller == "user":
        client.force_login(django_user_model.objects.create_user(username="agent"))
    elif caller == "staff":
        client.force_login(django_user_model.objects.create_user(username="lead", is_staff=True))
    elif caller == "superuser":
        client.force_login(django_user_model.objects.create_superuser(username="root", email=""))
    return client


@pytest.mark.parametrize(
    ("method", "path", "body", "caller", "expected"),
    [
        pytest.param(method, path, body, caller, answers[caller], id=f"{method} {path} {caller}")
        for method, path, body, answers in TABLE
        for caller in CALLERS
    ],
)
def test_access(method, path, body, caller, expected, django_user_model):
    ConversationFactory(session_id="known")
    Annotation.objects.create(
        id=KNOWN_ANNOTATION_ID, timestamp=timezone.now() - timedelta(days=1), title="known", kind="other"
    )
    AlertRule.objects.create(id=KNOWN_ALERT_RULE_ID, **ALERT_RULE)
    client = caller_client(caller, django_user_model)

    if method == "GET":
        response = client.get(path)
    else:
        response = client.generic(
            method, path, json.dumps(body) if body else "", content_type="application/json"
        )

    status, location = expected if isinstance(expected, tuple) else (expected, None)
    assert response.status_code == status, response.content[:300]
    if location:
        assert response["Location"] == location
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    if status in (401, 403) and path.startswith(
        ("/api/analytics", "/api/conversations", "/api/annotations", "/api/alert-rules")
    ):
        assert list(response.json()) == ["detail"]


def test_every_url_of_the_project_is_in_the_table():
    """A new route must get a row here (routes with parameters by their example path)."""
    from django.urls import get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    routes = {route for route in walk(get_resolver().url_patterns) if not route.startswith("admin/")}
    assert routes == {
        "",
        "favicon.ico",
        "dashboard/",
        "dashboard/compare/",
        "dashboard/annotations/<int:annotation_id>/",
        "dashboard/topics.csv",
        "dashboard/timeseries.csv",
        "accounts/login/",
        "accounts/logout/",
        "api/conversations/",
        "api/^conversations/(?P<session_id>.+)/csat/?$",
        "api/^analytics/?$",
        "api/analytics/topics/",
        "api/analytics/timeseries/",
        "api/analytics/compare/",
        "api/annotations/",
        "api/annotations/<int:annotation_id>/impact/",
        "api/alert-rules/",
        "api/alert-rules/<int:rule_id>/",
        "api/schema/",
        "api/docs/",
    }


def test_keys_are_stored_hashed():
    api_key, key = ApiKey.objects.create_key(name="bot", scope=ApiKey.Scope.INGEST)
    secret = key.partition(".")[2]

    stored = ApiKey.objects.values().get()
    assert [column for column, value in stored.items() if secret in str(value)] == []
    assert "$" in stored["hashed_key"]  # algorithm$salt$hash, checked with Django's hashers
    assert api_key.prefix == key.partition(".")[0]  # only the public prefix is kept in clear


@pytest.mark.parametrize("how", ["model", "admin"])
def test_a_revoked_key_is_refused_on_the_very_next_request(how, django_user_model):
    api_key, key = ApiKey.objects.create_key(name="bot", scope=ApiKey.Scope.ALL)
    bot = Client(headers={"authorization": f"Bearer {key}"})
    assert bot.get("/api/analytics").status_code == 200

    if how == "model":
        api_key.revoked = True
        api_key.save()
    else:
        admin = Client()
        admin.force_login(django_user_model.objects.create_superuser(username="root", email=""))
        saved = admin.post(
            reverse("admin:conversations_apikey_change", args=[admin_quote(api_key.pk)]),
            {"name": "bot", "scope": "all", "revoked": "on", "expiry_date_0": "", "expiry_date_1": ""},
        )
        assert saved.status_code == 302

    refused = bot.post("/api/conversations/", CONVERSATION, content_type="application/json")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid or revoked API key."}
