"""Failed staff logins are limited (django-axes): per username and IP, on both login pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.test import Client

from tests.conftest import T0

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


def attempt(client, path: str, password: str, *, ip: str = "127.0.0.1"):
    return client.post(path, {"username": "lead", "password": password}, REMOTE_ADDR=ip)


def test_the_settings_are_five_failures_and_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


@pytest.mark.parametrize("path", LOGIN_PAGES)
def test_five_failures_lock_the_username_from_that_ip_for_fifteen_minutes(client, staff_user, path):
    with time_machine.travel(T0, tick=False) as clock:
        failures = [attempt(client, path, f"wrong-{n}").status_code for n in range(4)]
        fifth = attempt(client, path, "wrong-4")
        # Locked: even the right password is refused, on both login pages.
        locked = [attempt(client, page, "pw-lead-123") for page in LOGIN_PAGES]
        elsewhere = attempt(Client(), "/accounts/login/", "pw-lead-123", ip="10.0.0.9")
        clock.shift(timedelta(minutes=14, seconds=59))
        still_locked = attempt(client, path, "pw-lead-123", ip="127.0.0.1")
        # A try during the lock started the 15 minutes again.
        clock.shift(timedelta(minutes=15, seconds=1))
        after = attempt(client, path, "pw-lead-123")

    assert failures == [200, 200, 200, 200]  # the login form again, with its error
    assert fifth.status_code == 429
    for response in [fifth, *locked, still_locked]:
        assert response.status_code == 429
        assert "Too many failed logins" in response.content.decode()
        assert "_auth_user_id" not in client.session
    assert "locked after 5 wrong passwords" in fifth.content.decode()
    # Another address (a colleague) logs in as usual.
    assert elsewhere.status_code == 302
    assert after.status_code == 302


def test_a_successful_login_resets_the_count(client, staff_user):
    with time_machine.travel(T0, tick=False):
        first = [attempt(client, "/accounts/login/", "wrong").status_code for _ in range(4)]
        success = attempt(client, "/accounts/login/", "pw-lead-123")
        client.logout()
        # Without the reset, the 5th of these 8 failures would lock.
        second = [attempt(client, "/accounts/login/", "wrong").status_code for _ in range(4)]
        again = attempt(client, "/accounts/login/", "pw-lead-123")

    assert first == second == [200, 200, 200, 200]
    assert success.status_code == again.status_code == 302


def test_other_usernames_from_the_same_ip_are_not_locked(client, staff_user, django_user_model):
    django_user_model.objects.create_user(username="ann", password="pw-ann-456", is_staff=True)
    for _ in range(5):
        attempt(client, "/accounts/login/", "wrong")

    response = client.post("/accounts/login/", {"username": "ann", "password": "pw-ann-456"})

    assert response.status_code == 302
