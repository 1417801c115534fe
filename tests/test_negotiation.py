"""The content negotiation's short cut gives the answer DRF's own negotiation gives."""

from __future__ import annotations

import pytest
from django.http import Http404
from django.test import RequestFactory
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from conversations.negotiation import FastContentNegotiation

RENDERER_SETS = [
    [JSONRenderer()],
    [OpenApiYamlRenderer(), OpenApiJsonRenderer()],  # drf-spectacular's schema view
    [JSONRenderer(), BrowsableAPIRenderer()],
]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=2",
    "text/html",
    "application/vnd.oai.openapi",
    "application/vnd.oai.openapi+json",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "",
]
QUERIES = ["", "format=json", "format=openapi-json", "hours=24"]


def answer(negotiation, renderers, accept, query):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get(f"/api/analytics?{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    except Http404:  # a format no renderer has
        return "404"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("renderers", RENDERER_SETS, ids=lambda r: "+".join(type(x).__name__ for x in r))
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", QUERIES)
def test_the_short_cut_answers_as_drf_does(renderers, accept, query):
    drf = answer(DefaultContentNegotiation(), renderers, accept, query)
    assert answer(FastContentNegotiation(), renderers, accept, query) == drf


def test_the_api_answers_json_and_refuses_what_it_cannot_render(read_client):
    assert read_client.get("/api/analytics")["Content-Type"] == "application/json"
    refused = read_client.get("/api/analytics", HTTP_ACCEPT="text/html")
    assert refused.status_code == 406
