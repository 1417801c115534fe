"""API authentication: `Authorization: Bearer <key>`, keys stored hashed (djangorestframework-api-key)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db import ProgrammingError, connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from conversations.db import raw_cursor
from conversations.models import ApiKey
from conversations.throttling import ApiKeyRateThrottle, counting_sql

KEYWORD = "Bearer"

# ApiKey.objects.get_from_key(key) as one plain statement, prepared (conversations.db): every
# API request looks its key up, and the ORM took longer to build this query than PostgreSQL to
# run it (docs/benchmarks.md, "API key lookup as one statement"). Same rule as the library's:
# a key that is not revoked, found by the prefix before its dot, then checked against its hash
# (in Python).
_KEY_FIELDS = [field.attname for field in ApiKey._meta.concrete_fields]
_KEY_SQL = (
    f"SELECT {', '.join(_KEY_FIELDS)} FROM {ApiKey._meta.db_table} WHERE prefix = %(prefix)s AND NOT revoked"
)
# The same, counting the request against the key's rate limit in the same statement (one round
# trip instead of two; conversations.throttling). Only a key given with its right secret is
# counted (the hashes are compared, never the key itself sent), so that someone who knows
# a key's public prefix cannot use up its limit.
_COUNT_RIGHT_KEY = counting_sql(
    "SELECT %(counter)s, %(window_start)s, 1 FROM api_key WHERE hashed_key = %(hashed_key)s"
)
_KEY_AND_COUNT_SQL = f"""
WITH api_key AS ({_KEY_SQL}), counted AS ({_COUNT_RIGHT_KEY})
SELECT api_key.*, (SELECT count FROM counted) FROM api_key
"""


def usable_key(key: str, *, throttle: ApiKeyRateThrottle | None = None) -> ApiKey | None:
    """The ApiKey of this full key (prefix.secret), unless unknown, revoked or wrong.

    With a `throttle` (`ApiKeyRateThrottle.for_key`), a right key is also counted in its
    window, and `throttle.count` set.
    """
    prefix, _, _ = key.partition(".")
    row = None
    if throttle is not None:
        params = {"prefix": prefix, "hashed_key": _hashed(key), **throttle.count_params}
        try:
            with raw_cursor() as cursor:
                cursor.execute(_KEY_AND_COUNT_SQL, params, prepare=True)
                row = cursor.fetchone()
        except ProgrammingError:
            # No counter table: the throttle says so, and lets requests through. (An API request
            # runs this in autocommit, before any transaction; inside one, as in a test, the
            # failed statement would abort it.)
            throttle = None
        else:
            if row is None:
                return None
            throttle.count, row = row[-1], row[:-1]
    if throttle is None:
        with raw_cursor() as cursor:
            cursor.execute(_KEY_SQL, {"prefix": prefix}, prepare=True)
            row = cursor.fetchone()
        if row is None:
            return None
    api_key = ApiKey.from_db(connection.alias, _KEY_FIELDS, row)
    return api_key if api_key.is_valid(key) else None


def _hashed(key: str) -> str:
    """The key as ApiKey.hashed_key stores it (the library's hasher, without make_password's
    checks around it)."""
    return ApiKey.objects.key_generator.preferred_hasher.encode(key, "")


class BearerApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a request by its API key; `request.auth` is then the `ApiKey`.

    A request without an Authorization header is left to the next authenticator (the
    staff session); a header that names a Bearer key which is unknown, revoked or expired
    is refused with 401 at once.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("Empty API key after 'Bearer'.")
        view = request.parser_context.get("view")
        throttle = ApiKeyRateThrottle.for_key(view, key.partition(".")[0]) if view else None
        api_key = usable_key(key, throttle=throttle)
        if throttle is not None and throttle.count is not None:
            request.counted_throttle = throttle  # ApiKeyRateThrottle.allow_request reads it
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        return AnonymousUser(), api_key

    def authenticate_header(self, request) -> str:
        return f'{KEYWORD} realm="api"'


class BearerApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "conversations.auth.BearerApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `manage.py create_api_token` (scope ingest, read or all).",
        }


class _HasScope(permissions.BasePermission):
    scope: str = ""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if isinstance(api_key, ApiKey):
            if api_key.allows(self.scope):
                return True
            self.message = f"This API key lacks the '{self.scope}' scope."
        return False


class CanIngest(_HasScope):
    """A key with the `ingest` (or `all`) scope."""

    scope = ApiKey.Scope.INGEST
    message = "An API key with the 'ingest' scope is required."


class CanRead(_HasScope):
    """A key with the `read` (or `all`) scope, or a logged-in staff user."""

    scope = ApiKey.Scope.READ
    message = "An API key with the 'read' scope, or a staff login, is required."

    def has_permission(self, request, view) -> bool:
        if request.user and request.user.is_authenticated and request.user.is_staff:
            return True
        return super().has_permission(request, view)


class CanManage(_HasScope):
    """A key with the `all` scope: alert rules (issue 18: "API keys with the `all` scope").
    Staff logins manage them in the admin, not over this API."""

    scope = ApiKey.Scope.ALL
    message = "An API key with the 'all' scope is required."
