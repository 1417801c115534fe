"""One shape for every API error, so a client can always find what was wrong.

    {"detail": "<one sentence>", "errors": [{"index": 3, "field": "turns", "message": "..."}]}

`errors` appears on validation failures (400) only; `index` only when the body was an array.
An unknown path under /api/ answers 404 in this shape too (`not_found`, the project's handler404).
When PostgreSQL cannot be reached the answer is 503 with a `Retry-After` header, never a 500
(`DatabaseUnavailable` here for the API, `supportanalytics.outage` for the other pages).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

# What a request meets when PostgreSQL is down, restarting, failing over, out of connections
# or drops the connection: Django wraps the driver's errors into its own, psycopg's are here
# for any that reach us unwrapped. All are transient, so the answer is "retry", not a 500.
# (Bugs in SQL are ProgrammingError/DataError/IntegrityError, and stay errors.)
DATABASE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# Long enough for a restart or a failover to finish, short enough for the bot's retry queue.
RETRY_AFTER_SECONDS = 10
DATABASE_UNAVAILABLE = (
    "The database is unavailable. Retry in a few seconds (posting a conversation again is safe)."
)


def is_api_request(request: HttpRequest) -> bool:
    """Whether an answer made outside DRF (a 404, a 503) should be the API's JSON."""
    return request.path_info == "/api" or request.path_info.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: under /api/ an unknown path answers JSON, as DRF's NotFound does.

    A handler rather than a catch-all route, so that CommonMiddleware still redirects a path
    missing its trailing slash (it only does for a path that resolves to nothing). With
    DJANGO_DEBUG=1 Django shows its debug page instead, as for every 404.
    """
    if is_api_request(request):
        detail = f"No API endpoint at {request.path}. The endpoints are listed at {reverse('api-docs')}."
        return JsonResponse({"detail": detail}, status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def _flatten(detail: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(detail, dict):
        return [pair for key, value in detail.items() for pair in _flatten(value, (*path, str(key)))]
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [(path, str(item)) for item in detail]
        return [pair for index, value in enumerate(detail) for pair in _flatten(value, (*path, str(index)))]
    return [(path, str(detail))]


def _field_name(path: tuple[str, ...]) -> str | None:
    parts = [part for part in path if part != "non_field_errors"]
    return ".".join(parts) or None


def validation_errors(detail: Any, *, per_item: bool) -> list[dict[str, Any]]:
    """DRF's nested error detail as a flat list; per_item: the top level is a list of items."""
    errors = []
    for path, message in _flatten(detail):
        entry: dict[str, Any] = {}
        if per_item and path and path[0].isdigit():
            entry["index"] = int(path[0])
            path = path[1:]
        entry["field"] = _field_name(path)
        entry["message"] = message
        errors.append(entry)
    return errors


def rules_detail(errors: list[dict[str, Any]]) -> dict:
    """Errors of the ingest rules (`ingest_rules.errors_of`) as DRF's nested detail, which
    `api_exception_handler` flattens back into the same list for the 400 (an `index` key level
    only for an array)."""
    detail: dict = {}
    for error in errors:
        item = detail.setdefault(error["index"], {}) if "index" in error else detail
        item.setdefault(error["field"] or "non_field_errors", []).append(error["message"])
    return detail


def _describe(error: dict[str, Any]) -> str:
    where = []
    if "index" in error:
        where.append(f"item {error['index']}")
    if error["field"]:
        where.append(error["field"])
    return f"{', '.join(where)}: {error['message']}" if where else error["message"]


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = DATABASE_UNAVAILABLE
    default_code = "database_unavailable"
    # DRF's exception_handler turns `wait` into the Retry-After header (as for throttling).
    wait = RETRY_AFTER_SECONDS


def api_exception_handler(exc: Exception, context: dict[str, Any]):
    if isinstance(exc, DATABASE_ERRORS):
        logger.warning("Database unavailable: %s", str(exc).strip() or type(exc).__name__)
        exc = DatabaseUnavailable()
    elif isinstance(exc, RequestDataTooBig):
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE; left alone it
        # becomes an HTML "Bad Request".
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        exc = RequestTooLarge(
            f"Request body too large: at most {limit_mb} MB. Send fewer conversations per request."
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        # A many=True serializer reports {index: errors} for its bad items only.
        per_item = isinstance(detail, dict) and bool(detail) and all(isinstance(key, int) for key in detail)
        errors = validation_errors(detail, per_item=per_item)
        summary = _describe(errors[0]) if len(errors) == 1 else f"{len(errors)} problems in the request."
        response.data = {"detail": summary, "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response
