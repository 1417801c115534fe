"""503 + Retry-After, never a 500, while PostgreSQL is down or unreachable.

The API's views map database errors themselves (DRF's exception handler,
`conversations.errors`). This covers everything else that needs the database: the dashboard,
its CSV exports, the login page and the admin (a view's error reaches
`DatabaseUnavailableMiddleware.process_exception`), and, as a backstop, an error raised
outside a view, e.g. by a middleware saving the session (`server_error`, the project's
handler500).

No reconnect logic is needed here: a connection that failed is closed at the end of the
request (Django's `close_old_connections`), a reused one is checked before its first query
(`conn_health_checks`, unless it answered within the last half second:
supportanalytics/postgresql/base.py), so the first request after PostgreSQL is back connects
again.
"""

from __future__ import annotations

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from conversations.errors import DATABASE_ERRORS, DATABASE_UNAVAILABLE, RETRY_AFTER_SECONDS, is_api_request

logger = logging.getLogger(__name__)

# A person reads these (dashboard, admin, login), so a page rather than JSON; written out
# here, not rendered from a template, so that it needs nothing that might itself be broken.
_PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Temporarily unavailable · Support Analytics</title>
<h1>Temporarily unavailable</h1>
<p>The database cannot be reached right now. Nothing is lost: reload this page in a minute.</p>
</html>
"""


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON in the API's error shape under /api/, a short page elsewhere."""
    if is_api_request(request):
        response = JsonResponse({"detail": DATABASE_UNAVAILABLE}, status=503)
    else:
        response = HttpResponse(_PAGE, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Answers 503 when a view fails because the database is unavailable."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        logger.warning("Database unavailable: %s", str(exception).strip() or type(exception).__name__)
        return database_unavailable_response(request)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: Django's own 500 page, unless the uncaught error was the database's.

    Django calls it inside its `except` block, so the error is `sys.exc_info()`.
    """
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        return database_unavailable_response(request)
    return defaults.server_error(request)
