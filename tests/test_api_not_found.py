"""Unknown paths and wrong methods under /api/ answer JSON in the API's error shape
(conversations/errors.py); every other unknown path keeps Django's HTML 404 page."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/nope",
        "/api/nope/",
        "/api/analytics/nope/",
        "/api/conversations/abc/",  # a session id without /csat/
        "/api/docs/nope/",
    ],
)
@pytest.mark.parametrize("caller", ["anonymous", "read key"])
def test_an_unknown_api_path_is_a_json_404(path, caller, read_client):
    client = read_client if caller == "read key" else Client()

    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": f"No API endpoint at {path}. The endpoints are listed at /api/docs/."
    }


def test_the_json_404_has_the_shape_of_drfs_own_not_found(ingest_client):
    drf = ingest_client.post("/api/conversations/nobody/csat/", {"csat": 4}, format="json")
    ours = ingest_client.post("/api/conversations/nobody/csat/x", {"csat": 4}, format="json")

    assert (drf.status_code, ours.status_code) == (404, 404)
    assert drf["Content-Type"] == ours["Content-Type"] == "application/json"
    assert list(drf.json()) == list(ours.json()) == ["detail"]


@pytest.mark.parametrize("path", ["/nope", "/dashboard/nope/", "/apiary/", "/static/nope.css"])
def test_other_unknown_paths_keep_the_html_404(path):
    response = Client().get(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_path_missing_its_trailing_slash_is_still_redirected(read_client):
    response = read_client.get("/api/analytics/topics")

    assert (response.status_code, response["Location"]) == (301, "/api/analytics/topics/")


@pytest.mark.parametrize(
    ("method", "path"),
    [("delete", "/api/analytics"), ("post", "/api/analytics/topics/"), ("get", "/api/conversations/")],
)
def test_a_wrong_method_on_an_api_path_is_a_json_405(method, path, all_client):
    response = getattr(all_client, method)(path)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}


@pytest.mark.parametrize("path", ["/api/docs/", "/api/schema/"])
def test_the_api_docs_still_answer(path):
    assert Client().get(path).status_code == 200
