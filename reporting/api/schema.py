"""The reporting and returns API's schema: every error documented as problem+json."""

from __future__ import annotations

from typing import Any

from config.problems import problems_document

COMMON_PROBLEMS = {"406": "The Accept header rules out JSON."}
RESPONSE_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "required": True,
            "description": "The scheme to authenticate with: Bearer.",
        }
    }
}


def document_problems(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Describe each operation's 4xx answers as problem documents, with the Problem schema."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Problem",
        {
            "type": "object",
            "description": "An RFC 9457 problem: see /api/problems/ for every type.",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["type", "title", "status", "detail"],
        },
    )
    # A return refuses, by name, any member it does not have (ReturnRequestSerializer).
    if "ReturnRequest" in schemas:
        schemas["ReturnRequest"]["additionalProperties"] = False
    return problems_document(result, common=COMMON_PROBLEMS, headers=RESPONSE_HEADERS)
