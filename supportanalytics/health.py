"""GET /healthz for load balancers and uptime checks: is this process up, does PostgreSQL answer?

    200 {"status": "ok", "database": "ok"}
    503 {"status": "error", "database": "unavailable"}

Answered by a middleware that sits first in MIDDLEWARE, before anything that could turn a
probe away: SecurityMiddleware's redirect to HTTPS (a load balancer probes the instance over
plain HTTP) and the ALLOWED_HOSTS check that CommonMiddleware runs on every request (a probe's
Host header is usually the instance's IP address). Skipping the host check is safe here: the
answer does not depend on the Host header and builds no URL from it. It also needs no
session, cookie, CSRF token or authentication, and costs one `SELECT 1` on the process's
persistent database connection.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from conversations.errors import DATABASE_ERRORS

logger = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/healthz/"})
# A probe must answer quickly either way. Connecting is bounded by the connect_timeout
# in settings.DATABASES; this bounds the query on a connection that is already open.
STATEMENT_TIMEOUT = "2s"


def database_answers(alias: str = DEFAULT_DB_ALIAS) -> bool:
    """True when PostgreSQL answers `SELECT 1` within STATEMENT_TIMEOUT."""
    try:
        # SET LOCAL (set_config(..., true)) ends with this transaction, so the persistent
        # connection goes back to the next request without the short timeout.
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [STATEMENT_TIMEOUT])
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DATABASE_ERRORS as error:
        logger.warning("Health check: database unavailable: %s", str(error).strip() or type(error).__name__)
        return False


def health_response() -> HttpResponse:
    if database_answers():
        response = JsonResponse({"status": "ok", "database": "ok"})
    else:
        response = JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    response["Cache-Control"] = "no-store"
    return response


class HealthCheckMiddleware:
    """Answers /healthz itself; every other request goes on down the middleware stack."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in HEALTH_PATHS:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        return health_response()
