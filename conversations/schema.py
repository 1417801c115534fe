"""The ingest rules (conversations/ingest_rules.py, annotation_rules.py) in the OpenAPI schema,
from their one definition.

drf-spectacular's own pydantic extension writes pydantic's JSON Schema (2020-12: `"type": "null"`
in an `anyOf`, titles, `default: null`), which is not valid in the OpenAPI 3.0 document we serve.
This one writes the same schema as OpenAPI 3.0 (`nullable: true`) under the serializer's old
name (`ConversationInputRequest`), so clients generated from it see no change.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from conversations.annotation_rules import AnnotationInput
from conversations.ingest_rules import ConversationInput


class OpenApi30JsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema in OpenAPI 3.0's dialect, without titles and defaults."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        return {**inner, "nullable": True}

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def float_schema(self, schema: core_schema.FloatSchema) -> JsonSchemaValue:
        return {**super().float_schema(schema), "format": "double"}

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> JsonSchemaValue:
        json_schema = super().typed_dict_schema(schema)
        json_schema.pop("title", None)
        json_schema["type"] = "object"
        return json_schema


class _PydanticInputExtension(OpenApiSerializerExtension):
    """A request body that a pydantic TypedDict defines, under the TypedDict's name."""

    def get_name(self, auto_schema, direction) -> str:
        return self.target_class.__name__  # spectacular adds "Request" (COMPONENT_SPLIT_REQUEST)

    def map_serializer(self, auto_schema, direction) -> dict:
        return TypeAdapter(self.target_class).json_schema(
            mode="validation", schema_generator=OpenApi30JsonSchema
        )


class ConversationInputExtension(_PydanticInputExtension):
    target_class = ConversationInput

    def map_serializer(self, auto_schema, direction) -> dict:
        schema = super().map_serializer(auto_schema, direction)
        # Required unless `outcome` says it (ingest_rules._derive_resolved fills it in before
        # the fields are checked, so the definition itself keeps it required).
        schema["required"] = [name for name in schema["required"] if name != "resolved_by_ai"]
        schema["properties"]["resolved_by_ai"]["description"] = (
            "Whether the bot resolved it without a human. Required unless outcome is given (then "
            "derived from it: confirmed/assumed true, escalated/abandoned false; both given must agree)."
        )
        return schema


class AnnotationInputExtension(_PydanticInputExtension):
    target_class = AnnotationInput
