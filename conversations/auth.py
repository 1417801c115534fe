"""API authentication: `Authorization: Bearer <key>`, keys stored hashed (djangorestframework-api-key)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from conversations.models import ApiKey

KEYWORD = "Bearer"

# ApiKey.objects.get_from_key(key) as one plain statement: every API request looks its key
# up, and the ORM spent ~0.5 ms a request building this query (measured; the query itself
# takes ~0.1 ms). Same rule as the library's: a key that is not revoked, found by the prefix
# before its dot, then checked against its hash.
_KEY_FIELDS = [field.attname for field in ApiKey._meta.concrete_fields]
_KEY_SQL = f"SELECT {', '.join(_KEY_FIELDS)} FROM {ApiKey._meta.db_table} WHERE prefix = %s AND NOT revoked"


def usable_key(key: str) -> ApiKey | None:
    """The ApiKey of this full key (prefix.secret), unless unknown, revoked or wrong."""
    prefix, _, _ = key.partition(".")
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    api_key = ApiKey.from_db(connection.alias, _KEY_FIELDS, row)
    return api_key if api_key.is_valid(key) else None


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
        api_key = usable_key(key)
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
