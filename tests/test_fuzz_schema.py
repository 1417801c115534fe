"""Schemathesis fuzzes every operation of the project's own OpenAPI schema, in process (WSGI).

Each operation gets a bounded, derandomized set of generated requests, once with an API key of
scope `all` and once without any credentials. Every answer must be a non-5xx and conform to the
schema: a documented status code, content type, headers and body.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings

from conversations.models import ApiKey
from supportanalytics.wsgi import application

# The schema exactly as /api/schema/ serves it (built here, without a request or the database,
# since the module is imported before pytest-django lets a test reach PostgreSQL).
SCHEMA = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
)
SCHEMA.app = application  # requests go to the WSGI app in this process, as from_wsgi would set

# ~25 cases per operation and credential keep the whole module at a few seconds; derandomize
# makes the cases the same on every run (a failure reproduces).
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


# ST202 (positive_data_acceptance: "a request valid by the schema must get a 2xx") is left out:
# the API enforces rules OpenAPI 3.0 cannot state, and answers them with a 400 naming the field,
# which is the behaviour we want: `hours` or `start`/`end`, not both (query parameters cannot be
# mutually exclusive); `ai_cost` has at most 6 decimals (a JSON number's precision has no schema
# keyword; `multipleOf: 0.000001` fails on binary floats); `timestamp` at most 5 minutes ahead of
# now; `response_times` or `avg_response_ms`, not both. Every other check runs, ST101 (no 5xx)
# and the response conformance checks (status code, content type, headers, body) included.
# ST201 (negative_data_rejection: "a request invalid by the schema must get a 4xx") is left out
# too, for the opposite reason: the API is more lenient than its schema on purpose. An empty
# query parameter (`topic=`, `tz=`, as an HTML form sends them) means "not given", and a JSON
# number for a label (`"bot_version": 0`) is taken as its text, as DRF's CharField does.
EXCLUDED_CHECKS = [schemathesis.checks.positive_data_acceptance, schemathesis.checks.negative_data_rejection]


@pytest.fixture(autouse=True)
def keep_the_test_transaction():
    """The WSGI handler closes the database connection at each request's start and end, which
    would end the test's transaction; Django's test client disconnects the same receivers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def all_scope_key(db) -> str:
    return ApiKey.objects.create_key(name="fuzz", scope=ApiKey.Scope.ALL)[1]


@SCHEMA.parametrize()
@FUZZ
def test_authenticated_requests_conform_to_the_schema(case, all_scope_key):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {all_scope_key}"},
        excluded_checks=EXCLUDED_CHECKS,
    )


@SCHEMA.parametrize()
@FUZZ
def test_anonymous_requests_conform_to_the_schema(case, db):
    case.call_and_validate(excluded_checks=EXCLUDED_CHECKS)
