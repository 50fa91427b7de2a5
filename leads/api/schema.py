"""The partner API's OpenAPI schema: each vertical's fields and the problem responses.

`describe_vertical_fields` is the drf-spectacular postprocessing hook the settings register.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError

from config.api_keys import BearerScheme
from config.problems import problems_document
from leads.models import FieldType, Vertical

# What the one base of every partner endpoint (authentication, permission, content negotiation,
# throttling; see REST_FRAMEWORK) may answer, whatever the endpoint.
COMMON_PROBLEMS = {
    "401": "Missing, unknown or revoked API key.",
    "403": "The source is inactive.",
    "406": "The Accept header rules out JSON.",
    "429": "Over the source's rate limit: retry after `Retry-After` seconds.",
    "503": "The database is unreachable for a moment: retry after `Retry-After` seconds.",
}
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "201": {
        "Location": {
            "schema": {"type": "string", "format": "uri"},
            "required": True,
            "description": "The lead's status URL.",
        }
    },
    "202": {
        "Location": {
            "schema": {"type": "string", "format": "uri"},
            "required": True,
            "description": "The lead's status URL.",
        }
    },
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": "The scheme to authenticate with: Bearer.",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
            "description": "Seconds to wait before the next request.",
        }
    },
    "503": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
            "description": "Seconds to wait before retrying.",
        }
    },
}

# A URL's optional port, as urlsplit reads one: empty, or a number up to 65535.
URL_PORT = "(:0*([0-9]{0,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
# A URL's host name (no brackets: intake cannot read a bracketed host) and optional port.
URL_HOST = f"[^/?#\\[\\]@:]+{URL_PORT}([/?#]|$)"
# Consent as intake reads it (leads/intake.py, normalise_consent): every member optional, an empty
# or null one taken as absent, nothing else allowed.
CONSENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The consumer's consent (TCPA), kept as evidence with the lead.",
    "properties": {
        "text": {
            "type": ["string", "null"],
            "maxLength": 10_000,
            "description": "The TCPA disclosure the consumer saw.",
        },
        "timestamp": {
            "anyOf": [{"type": "string", "format": "date-time"}, {"enum": ["", None]}],
            "description": "When, with its time zone.",
        },
        "ip": {
            "anyOf": [
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"},
                {"enum": ["", None]},
            ],
            "description": "The consumer's IPv4 or IPv6 address.",
        },
        "trustedform_cert_url": {
            "anyOf": [
                {
                    "type": "string",
                    "maxLength": 1000,
                    "pattern": f"^https?://([^/?#\\[\\]@:]+[.])?trustedform[.]com{URL_PORT}([/?#]|$)",
                },
                {"enum": ["", None]},
            ],
            "description": "A TrustedForm certificate URL (on trustedform.com).",
        },
        "jornaya_leadid": {"type": ["string", "null"], "maxLength": 1000},
        "sellers": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "The companies the consumer agreed to hear from.",
        },
        "page_url": {
            "anyOf": [
                {"type": "string", "maxLength": 1000, "pattern": f"^https?://{URL_HOST}"},
                {"enum": ["", None]},
            ],
            "description": "The page the consumer agreed on (http or https).",
        },
        "user_agent": {"type": ["string", "null"], "maxLength": 1000},
    },
    "additionalProperties": False,
}

# OpenAPI links: which answer feeds which next call. They tell a partner where a lead's outcome
# is read, and drive schemathesis's stateful phase (tests/leads/test_schemathesis.py).
READ_THE_LEAD = {
    "GetLead": {
        "operationId": "leads_retrieve",
        "parameters": {"id": "$response.body#/id"},
        "description": "The lead's status and outcome, by the id this answer gave.",
    }
}
RESPONSE_LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("post", "/api/v1/leads/"): {"201": READ_THE_LEAD, "202": READ_THE_LEAD},
}
# Query filters whose empty value (`?status=`) is the filter not given, as the views read it.
EMPTY_MEANS_NOT_GIVEN = {
    ("get", "/api/v1/leads/"): {
        "page_size",
        "status",
        "vertical",
        "sub_id",
        "received_after",
        "received_before",
        "test",
    },
}


class SourceKeyScheme(BearerScheme):
    target_class = "leads.api.auth.SourceKeyAuthentication"
    name = "SourceKey"
    description = "A source API key (lsk_…), minted in the admin or by create_source."


FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    FieldType.STRING: {"type": "string"},
    FieldType.EMAIL: {"type": "string", "format": "email"},
    FieldType.PHONE: {"type": "string", "examples": ["(212) 555-0142"]},
    # [0-9], not \d: a JSON Schema regex may read \d as any Unicode digit.
    FieldType.ZIP: {"type": "string", "pattern": "^[0-9]{5}(-?[0-9]{4})?$", "examples": ["10001"]},
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


def document_problems(result: dict) -> dict:
    """Document every operation's problem responses as application/problem+json.

    Each operation gains the problems the common API base may answer; the headers that go
    with a status (Location, WWW-Authenticate, Retry-After) are described where it appears.
    """
    return problems_document(result, common=COMMON_PROBLEMS, headers=RESPONSE_HEADERS)


def link_responses(result: dict) -> dict:
    """Add the OpenAPI links of RESPONSE_LINKS to the answers they start from."""
    for (method, path), by_status in RESPONSE_LINKS.items():
        responses = result.get("paths", {}).get(path, {}).get(method, {}).get("responses", {})
        for status, links in by_status.items():
            if status in responses:
                responses[status]["links"] = links
    return result


def allow_empty_filters(result: dict) -> dict:
    """Say which query filters take an empty value as not given (allowEmptyValue)."""
    for (method, path), names in EMPTY_MEANS_NOT_GIVEN.items():
        operation = result.get("paths", {}).get(path, {}).get(method, {})
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") in names:
                parameter["allowEmptyValue"] = True
    return result


def describe_vertical_fields(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Turn the submission body into one variant per active vertical, with its fields.

    Being the hook the settings register, it also documents the problem responses, the links
    and the filters an empty value leaves out.
    """
    document_problems(result)
    link_responses(result)
    allow_empty_filters(result)
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
                    # Intake takes null for an absent sub-id, consent or test flag.
                    "sub_id": {"type": ["string", "null"], "maxLength": 255},
                    "consent": {
                        "anyOf": [{"$ref": "#/components/schemas/Consent"}, {"type": "null"}]
                    },
                    "test": {
                        "type": ["boolean", "null"],
                        "default": False,
                        "description": "Route only to test buyers; nothing is paid.",
                    },
                },
                "required": ["vertical", "fields"],
                "additionalProperties": False,
            }
        )
    if variants:
        schemas["Consent"] = CONSENT_SCHEMA
        schemas["LeadSubmission"] = {
            "oneOf": variants,
            "description": "A lead for one of the verticals; `vertical` says which.",
        }
    return result
