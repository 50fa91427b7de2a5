"""Describe every active vertical's fields in the OpenAPI schema (a drf-spectacular hook)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from leads.models import FieldType, Vertical


class SourceKeyScheme(OpenApiAuthenticationExtension):
    target_class = "leads.api.auth.SourceKeyAuthentication"
    name = "SourceKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A source API key (lsk_…), minted in the admin or by create_source.",
        }


FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    FieldType.STRING: {"type": "string"},
    FieldType.EMAIL: {"type": "string", "format": "email"},
    FieldType.PHONE: {"type": "string", "examples": ["(212) 555-0142"]},
    FieldType.ZIP: {"type": "string", "pattern": r"^\d{5}(-?\d{4})?$", "examples": ["10001"]},
    FieldType.STATE: {"type": "string", "examples": ["NY"]},
    FieldType.INTEGER: {"type": ["integer", "string"]},
    FieldType.DECIMAL: {"type": ["number", "string"]},
    FieldType.BOOLEAN: {"type": ["boolean", "string"]},
    FieldType.DATE: {"type": "string", "format": "date"},
    FieldType.CHOICE: {"type": "string"},
}


def _component_name(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.replace("_", "-").split("-")) + "Fields"


def field_schema(field: Any) -> dict[str, Any]:
    schema = dict(FIELD_SCHEMAS.get(field.field_type, {"type": "string"}))
    if field.label:
        schema["title"] = field.label
    if field.help_text:
        schema["description"] = field.help_text
    if field.field_type == FieldType.CHOICE and field.choices:
        schema["enum"] = list(field.choices)
    if field.max_length:
        schema["maxLength"] = field.max_length
    if field.min_value is not None:
        schema["minimum"] = float(field.min_value)
    if field.max_value is not None:
        schema["maximum"] = float(field.max_value)
    return schema


def describe_vertical_fields(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Turn the submission body into one variant per active vertical, with its fields."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    submission = schemas.get("LeadSubmission")
    if submission is None:
        return result
    try:
        verticals = list(Vertical.objects.filter(active=True).prefetch_related("fields"))
    except DatabaseError:
        # `manage.py check` generates the schema too, possibly before any migration ran.
        return result
    variants = []
    for vertical in verticals:
        fields = sorted(vertical.fields.all(), key=lambda f: (f.position, f.pk))
        name = _component_name(vertical.slug)
        schemas[name] = {
            "type": "object",
            "title": f"{vertical.name} fields",
            "properties": {f.name: field_schema(f) for f in fields},
            "required": [f.name for f in fields if f.required],
            "additionalProperties": False,
        }
        variants.append(
            {
                "type": "object",
                "title": vertical.name,
                "properties": {
                    **submission.get("properties", {}),
                    "vertical": {"const": vertical.slug},
                    "fields": {"$ref": f"#/components/schemas/{name}"},
                },
                "required": ["vertical", "fields"],
                "additionalProperties": False,
            }
        )
    if variants:
        schemas["LeadSubmission"] = {
            "oneOf": variants,
            "description": "A lead for one of the verticals; `vertical` says which.",
        }
    return result
