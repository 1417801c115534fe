"""One JSON log line per request, with the request id from X-Request-ID (or a new one), echoed
in the response and carried by every log line of the request, error logs included."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.test import Client

from supportanalytics.request_logging import JsonFormatter, RequestIdFilter


@pytest.fixture
def json_log():
    """Everything logged while the test runs, formatted as production formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def request_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "supportanalytics.requests"]


@pytest.mark.django_db
def test_a_request_is_one_json_line_with_the_request_id_from_its_header(json_log):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="bot-7f3a.42", REMOTE_ADDR="10.0.0.9")

    assert response["X-Request-ID"] == "bot-7f3a.42"
    [line] = request_lines(json_log())
    assert set(line) == {
        "time", "level", "logger", "message", "request_id",
        "method", "path", "status", "duration_ms", "remote_addr",
    }  # fmt: skip
    assert {key: line[key] for key in ("level", "request_id", "method", "path", "status", "remote_addr")} == {
        "level": "INFO",
        "request_id": "bot-7f3a.42",
        "method": "GET",
        "path": "/healthz",
        "status": 200,
        "remote_addr": "10.0.0.9",
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["message"].startswith("GET /healthz 200 ")


@pytest.mark.parametrize("header", [None, "", "has space", "line\nbreak", "x" * 129, "ünïcode", '{"a":1}'])
@pytest.mark.django_db
def test_a_missing_or_odd_request_id_is_replaced_by_a_new_one(json_log, header):
    extra = {} if header is None else {"HTTP_X_REQUEST_ID": header}
    first = Client().get("/healthz", **extra)
    second = Client().get("/healthz", **extra)

    generated = first["X-Request-ID"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert second["X-Request-ID"] != generated
    assert [line["request_id"] for line in request_lines(json_log())] == [generated, second["X-Request-ID"]]


class FailingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise ValueError("a bug")


@pytest.mark.django_db
def test_an_error_log_carries_the_request_id_and_the_traceback(json_log, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.test_request_logging.FailingMiddleware"]

    response = Client(raise_request_exception=False).get("/api/analytics", HTTP_X_REQUEST_ID="req-500")

    assert (response.status_code, response["X-Request-ID"]) == (500, "req-500")
    lines = json_log()
    [error] = [line for line in lines if line["logger"] == "django.request"]
    assert (error["level"], error["request_id"], error["status_code"]) == ("ERROR", "req-500", 500)
    assert "ValueError: a bug" in error["exception"]
    [access] = request_lines(lines)
    assert (access["request_id"], access["status"]) == ("req-500", 500)


def test_a_log_line_outside_a_request_has_no_request_id(json_log):
    logging.getLogger("conversations").warning("hello %s", "world", extra={"rows": 3})
    [line] = [line for line in json_log() if line["logger"] == "conversations"]
    assert (line["message"], line["request_id"], line["rows"]) == ("hello world", None, 3)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "text"),
        ({"LOG_FORMAT": "json"}, "json"),
        ({"DATABASE_URL": "postgresql://app@db.internal/app"}, "json"),
        ({"DATABASE_URL": "postgresql://app@db.internal/app", "LOG_FORMAT": "text"}, "text"),
    ],
)
def test_json_in_production_or_when_asked_plain_text_locally(environment, expected):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DATABASE_", "LOG_"))
    }
    env |= {
        "DJANGO_SECRET_KEY": "x" * 50,
        "CUSTOMER_ID_HASH_KEY": "k" * 64,
        "DJANGO_ALLOWED_HOSTS": "a.example",
        **environment,
    }
    code = "from supportanalytics import settings as s; print(s.LOGGING['handlers']['console']['formatter'])"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == expected, result.stderr
