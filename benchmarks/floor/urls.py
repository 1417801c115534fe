"""What a single POST costs without our write: the same body posted to views that stop at
each layer of the stack (benchmarks/floor.py). Served by the bench's gunicorn only."""

from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.apis import ConversationIngestApi

SCRATCH_TABLE = "floor_scratch"


def _insert(request) -> None:
    """One INSERT in autocommit: the cheapest durable write of the request."""
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {SCRATCH_TABLE} (body) VALUES (%s)", [request.body.decode()])


@csrf_exempt
def django_view(request):
    return JsonResponse({"ok": True}, status=201)


@csrf_exempt
def django_insert_view(request):
    _insert(request)
    return JsonResponse({"ok": True}, status=201)


class OpenApi(APIView):
    """DRF, with no authentication, permission or throttle."""

    schema = None
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def post(self, request):
        request.data  # noqa: B018 (parse the body, as the ingest view does)
        return Response({"ok": True}, status=201)


class KeyApi(APIView):
    """DRF with the ingest view's API-key authentication and permission, no throttle."""

    schema = None
    permission_classes = ConversationIngestApi.permission_classes
    throttle_classes = []

    def post(self, request):
        request.data  # noqa: B018
        return Response({"ok": True}, status=201)


class ThrottledKeyApi(KeyApi):
    """...and its throttle (DRF's default throttle classes, the ingest scope)."""

    throttle_classes = APIView.throttle_classes
    throttle_scope = ConversationIngestApi.throttle_scope


class ThrottledKeyInsertApi(ThrottledKeyApi):
    """...and one INSERT."""

    def post(self, request):
        request.data  # noqa: B018
        _insert(request)
        return Response({"ok": True}, status=201)


urlpatterns = [
    path("floor/django/", django_view),
    path("floor/django-insert/", django_insert_view),
    path("floor/drf/", OpenApi.as_view()),
    path("floor/drf-key/", KeyApi.as_view()),
    path("floor/drf-key-throttle/", ThrottledKeyApi.as_view()),
    path("floor/drf-key-throttle-insert/", ThrottledKeyInsertApi.as_view()),
    path("", include("supportanalytics.urls")),
]
