"""The inbound ping's place in the OpenAPI schema."""

from __future__ import annotations

from typing import Any


def ping_body_is_strict(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Say that a ping's body holds only the members it names, as exchange.rules reads it (the
    drf-spectacular postprocessing hook the settings register)."""
    ping = result.get("components", {}).get("schemas", {}).get("Ping")
    if ping is not None:
        ping["additionalProperties"] = False
    return result
