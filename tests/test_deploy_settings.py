"""Production settings pass `manage.py check --deploy`; local mode keeps plain HTTP.

The settings are read at import time from the environment, so each mode is loaded in a
subprocess of its own, with only the variables that mode sets.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management.utils import get_random_secret_key
from django.test import Client

PRODUCTION = {
    # Never connected to: `check` runs no database checks unless asked to.
    "DATABASE_URL": "postgresql://supportanalytics:secret@db.example.invalid:5432/supportanalytics",
    "DJANGO_SECRET_KEY": get_random_secret_key(),  # 50 random characters
    "CUSTOMER_ID_HASH_KEY": "k" * 64,
    "DJANGO_ALLOWED_HOSTS": "analytics.example.com",
}
SECURITY_SETTINGS = [
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what the test sets: no DJANGO_DEBUG, no DATABASE_URL of the developer's shell.
    clean = {
        name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_", "DATABASE_"))
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "supportanalytics.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def loaded_settings(env: dict[str, str]) -> dict:
    names = [*SECURITY_SETTINGS, "LOCAL_MODE"]
    script = (
        "import json; from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {names!r}}} "
        "| {'OPTIONS': s.DATABASES['default'].get('OPTIONS', {})}))"
    )
    result = run("-c", script, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("behind_tls_proxy", [False, True])
def test_check_deploy_reports_nothing_in_production(behind_tls_proxy):
    env = PRODUCTION | ({"DJANGO_TRUST_X_FORWARDED_PROTO": "1"} if behind_tls_proxy else {})

    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "System check identified no issues (0 silenced).\n",
        "",
    )


def test_check_deploy_does_report_what_a_deployment_turns_off():
    # The test above can see a warning: switching the redirect off (a proxy that redirects
    # by itself) is reported, as Django should.
    env = PRODUCTION | {"DJANGO_SECURE_SSL_REDIRECT": "0"}

    result = run("manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 1
    assert "security.W008" in result.stderr
    assert "identified 1 issue" in result.stderr


def test_production_settings_are_https_only_and_fail_fast_on_a_lost_database():
    assert loaded_settings(PRODUCTION) == {
        "DEBUG": False,
        "LOCAL_MODE": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": None,  # only with DJANGO_TRUST_X_FORWARDED_PROTO=1
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "OPTIONS": {"connect_timeout": 5, "tcp_user_timeout": 10_000, "prepare_threshold": 1_000_000},
    }
    proxied = loaded_settings(PRODUCTION | {"DJANGO_TRUST_X_FORWARDED_PROTO": "1"})
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    tuned = loaded_settings(PRODUCTION | {"DJANGO_SECURE_HSTS_SECONDS": "0", "DATABASE_CONNECT_TIMEOUT": "3"})
    assert tuned["SECURE_HSTS_SECONDS"] == 0
    assert not tuned["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and not tuned["SECURE_HSTS_PRELOAD"]
    assert tuned["OPTIONS"]["connect_timeout"] == 3


def test_local_mode_keeps_plain_http():
    local = loaded_settings({})

    assert local["LOCAL_MODE"] is True
    assert not any(local[name] for name in SECURITY_SETTINGS)
    assert local["OPTIONS"]["connect_timeout"] == 5


@pytest.mark.django_db
@pytest.mark.skipif(not settings.LOCAL_MODE, reason="DATABASE_URL is set: production settings")
def test_local_mode_serves_http_127_0_0_1_without_redirects():
    client = Client()

    response = client.get("/accounts/login/", HTTP_HOST="127.0.0.1:8000")

    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response
    assert not response.cookies["csrftoken"]["secure"]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("CUSTOMER_ID_HASH_KEY", "CUSTOMER_ID_HASH_KEY must be set when DATABASE_URL is set"),
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY must be set when DATABASE_URL is set"),
    ],
)
def test_production_refuses_to_start_without_its_keys(missing, message):
    env = {name: value for name, value in PRODUCTION.items() if name != missing}
    result = run("-c", "from django.conf import settings; settings.DEBUG", env=env)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("days", ["0", "91", "seven", "-1"])
def test_a_repeat_contact_window_outside_1_to_90_days_is_refused(days):
    result = run(
        "-c",
        "from django.conf import settings; settings.DEBUG",
        env={**PRODUCTION, "REPEAT_CONTACT_DAYS": days},
    )
    assert result.returncode != 0
    assert "REPEAT_CONTACT_DAYS must be a whole number of days from 1 to 90" in result.stderr
