"""DRF's content negotiation, answered at once in the common case."""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation


class FastContentNegotiation(DefaultContentNegotiation):
    """DRF's `DefaultContentNegotiation`, which parses and ranks the Accept header on every
    request, a visible share of a single POST's Python time
    (docs/benchmarks.md, "Content negotiation"). A request without an Accept header, with
    `*/*` or with exactly the first renderer's media type, and without a format override,
    gets the first renderer: the answer DRF gives it too (tests/test_negotiation.py).
    Anything else goes through DRF's negotiation as before.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        accept = request.META.get("HTTP_ACCEPT")
        if (
            renderers
            and not format_suffix
            and not request.META.get("QUERY_STRING")
            and accept in (None, "*/*", renderers[0].media_type)
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
