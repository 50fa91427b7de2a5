"""The configuration API's OpenAPI schema: one component per kind of the file, built from the
table of kinds (its fields as the file writes them), and the shape of a write's diff."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers

from marketplace.document import FORMAT_KEY
from marketplace.kinds import NATURAL_KEYS, SECTIONS, Kind
from marketplace.services import config_fields, is_secret

PLACEHOLDER_HELP = (
    "Secret, never shown: reads give a ${LEADSWITCH_SECRET_...} placeholder. Write the value "
    "itself to set it, the placeholder to keep the stored one, or '' to clear it."
)


def component(kind: Kind) -> str:
    return kind.model.__name__


def ref(kind: Kind) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component(kind)}"}


def _nullable(schema: dict[str, Any], f: models.Field) -> dict[str, Any]:
    if not f.null:
        return schema
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if "type" in schema:
        kind = schema["type"]
        return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}
    return schema


def _key_part(model: type[models.Model], name: str) -> dict[str, Any]:
    """One part of a natural key, typed as its field is (a version's number is an integer)."""
    f = model._meta.get_field(name)
    if f.is_relation:
        return _natural(f.related_model)
    return {"type": "integer"} if isinstance(f, models.IntegerField) else {"type": "string"}


def _natural(model: type[models.Model]) -> dict[str, Any]:
    names = NATURAL_KEYS[model]
    if len(names) == 1:
        return {
            **_key_part(model, names[0]),
            "description": f"The {model._meta.verbose_name}'s {names[0]}.",
        }
    return {
        "type": "object",
        "properties": {name: _key_part(model, name) for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


def field_schema(f: models.Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if is_secret(f):
        return {"type": "string", "description": PLACEHOLDER_HELP}
    if f.is_relation:
        schema = _natural(f.related_model)
    elif f.choices:
        schema = {"enum": [value for value, _ in f.flatchoices]}
    elif isinstance(f, models.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(f, models.IntegerField):
        schema = {"type": "integer"}
    elif isinstance(f, models.DecimalField):
        schema = {"type": ["string", "number"], "description": "A decimal, written as text."}
    elif isinstance(f, models.FloatField):
        schema = {"type": "number"}
    elif isinstance(f, models.DateField):
        schema = {"type": "string", "format": "date"}
    elif isinstance(f, models.TimeField):
        schema = {"type": "string", "description": "HH:MM or HH:MM:SS"}
    elif isinstance(f, models.JSONField):
        schema = {}
    else:
        schema = {"type": "string"}
    if f.help_text and "description" not in schema:
        schema["description"] = str(f.help_text)
    return _nullable(schema, f)


def kind_schema(kind: Kind) -> dict[str, Any]:
    """An object of the kind as the file writes it: its fields, its lists of natural keys, its
    parts."""
    properties: dict[str, Any] = {f.name: field_schema(f) for f in config_fields(kind)}
    for name in kind.m2m:
        related = kind.model._meta.get_field(name).related_model
        properties[name] = {"type": "array", "items": _natural(related)}
    for child in kind.children:
        properties[child.section] = (
            {"oneOf": [ref(child), {"type": "null"}]}
            if child.single
            else {"type": "array", "items": ref(child)}
        )
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "description": f"A {kind.noun}, as the configuration file writes it. Fields left out keep "
        "their stored value (a new object takes the default).",
    }
    if kind.personal:
        schema["description"] += (
            " Personal fields (" + ", ".join(sorted(kind.personal)) + ") are masked for staff "
            "who see personal data masked, who may not write them."
        )
    return schema


def _all(kinds: tuple[Kind, ...]) -> list[Kind]:
    found = []
    for kind in kinds:
        found.append(kind)
        found.extend(_all(kind.children))
    return found


DOCUMENT = {
    "type": "object",
    "description": "A configuration document, as `manage.py config export` writes it.",
    "properties": {
        FORMAT_KEY: {"const": 1},
        "scope": {
            "type": "object",
            "description": "Written by an export of some verticals only.",
        },
        **{kind.section: {"type": "array", "items": ref(kind)} for kind in SECTIONS},
    },
    "required": [FORMAT_KEY],
    "additionalProperties": False,
}


def document_kinds(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Add every kind's component and the document's."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for kind in _all(SECTIONS):
        schemas[component(kind)] = kind_schema(kind)
    schemas["ConfigDocument"] = DOCUMENT
    return result


# --- What a write did -------------------------------------------------------------------------


class FieldChangeSerializer(serializers.Serializer):
    name = serializers.CharField()
    old = serializers.CharField(help_text="As the diff shows it; a secret only as ••••.")
    new = serializers.CharField()


class ChangeSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="Where the object is in the document (`contracts[3].caps[0]`; for one object, "
        "in that object)."
    )
    label = serializers.CharField(help_text="The object's natural key, as text.")


class ChangedSerializer(ChangeSerializer):
    fields = FieldChangeSerializer(many=True)


class DiffSerializer(serializers.Serializer):
    applied = serializers.BooleanField(help_text="False for a dry run: nothing was changed.")
    created = ChangeSerializer(many=True)
    changed = ChangedSerializer(many=True)
    unchanged = ChangeSerializer(many=True)
    absent = ChangeSerializer(
        many=True, help_text="Stored, not in the document, left alone (without prune)."
    )
    deleted = ChangeSerializer(many=True)


class EntriesAddedSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    already_listed = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="Neither an e-mail address nor a phone number.")
