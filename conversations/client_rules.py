"""What the bot-side client (`client/`, `supportanalytics_client`) checks before it spools a
conversation, taken from the server's own definitions and written into the client package as
`rules.json` (`manage.py client_rules`).

The client is standard library only, so it cannot import the ingest rules
(conversations/ingest_rules.py); it reads their JSON schema instead: the request bodies of
`conversations_ingest` and `conversations_set_csat` exactly as the served OpenAPI document has
them, the endpoints' paths, and the few limits the schema cannot say (the batch size, the body
size, the timestamp window, the cost's decimal places) from the constants the server enforces.
tests/test_client_rules.py fails when the committed file and this function disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings

RULES_FILE = Path(settings.BASE_DIR) / "client" / "src" / "supportanalytics_client" / "rules.json"

# operationId -> the name the client knows the endpoint by.
OPERATIONS = {
    "conversations_ingest": "ingest",
    "conversations_set_csat": "csat",
    "analytics_summary": "summary",
}


def _openapi_document() -> dict[str, Any]:
    """The OpenAPI document the server serves at /api/schema/, as plain JSON."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema))


def _inlined(document: dict[str, Any], schema: Any) -> Any:
    """`schema` with every `$ref` (and spectacular's `allOf: [{$ref}]` beside `nullable`)
    replaced by the component it names, so the client reads one self-contained schema."""
    if isinstance(schema, list):
        return [_inlined(document, item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if "$ref" in schema:
        component = document["components"]["schemas"][schema.pop("$ref").rpartition("/")[2]]
        schema = {**_inlined(document, component), **schema}
    if len(schema.get("allOf", ())) == 1:
        schema = {**_inlined(document, schema.pop("allOf")[0]), **schema}
    return {key: _inlined(document, value) for key, value in schema.items()}


def _request_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    return _inlined(document, operation["requestBody"]["content"]["application/json"]["schema"])


def client_rules() -> dict[str, Any]:
    """The rules file's content: derived, never edited by hand."""
    from conversations.apis import MAX_BATCH
    from conversations.ingest_rules import AI_COST_DIGITS, AI_COST_PLACES
    from conversations.models import FUTURE_TOLERANCE, MAX_YEAR, MIN_YEAR

    document = _openapi_document()
    paths, bodies = {}, {}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            name = OPERATIONS.get(operation.get("operationId"))
            if name:
                paths[name] = path
                if "requestBody" in operation:
                    bodies[name] = _request_schema(document, operation)
    return {
        "comment": (
            "Written by `python manage.py client_rules` from the server's ingest rules and its "
            "OpenAPI document; do not edit (tests/test_client_rules.py checks it)."
        ),
        "paths": paths,
        "conversation": bodies["ingest"],
        "csat": bodies["csat"],
        "limits": {
            "max_batch": MAX_BATCH,
            "max_body_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
            # Properties of format date-time: the years the server takes, and how far ahead of
            # its clock.
            "timestamp_years": [MIN_YEAR, MAX_YEAR],
            "timestamp_future_seconds": FUTURE_TOLERANCE.total_seconds(),
            # Decimal columns: the places and digits a value may have (numeric(12, 6)).
            "decimals": {"ai_cost": {"digits": AI_COST_DIGITS, "places": AI_COST_PLACES}},
        },
    }


def rules_text() -> str:
    return json.dumps(client_rules(), indent=1, ensure_ascii=False) + "\n"
