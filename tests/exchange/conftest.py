"""Fixtures for the exchange: routing's market (a vertical with ping and personal fields, its
source and buyers on the simulator) and a partner's ping and post through the URL router."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.test import Client

from tests.leads.factories import api_key_for

# Routing's fixtures: its market and buyers on the simulator, tasks in process unless a test
# starts a worker.
from tests.routing.conftest import (  # noqa: F401 - fixtures
    _routing_runs_in_process,
    market,
    routing_queue,
    simulator,
    start_simulator,
    start_worker,
)

PINGS = "/api/v1/pings/"
LEADS = "/api/v1/leads/"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Seller:
    """A source's partner client: pings and posts with its own key."""

    def __init__(self, client: Client, key: str, vertical: str) -> None:
        self.client, self.key, self.vertical = client, key, vertical

    def ping(self, fields: dict[str, Any] | None = None, **envelope: Any):
        body = {"vertical": self.vertical, "fields": fields or {"zip_code": "10001"}, **envelope}
        return self.client.post(
            PINGS, data=body, content_type="application/json", HTTP_AUTHORIZATION=self.auth
        )

    def post(self, ping_id: str | None, number: int = 1, *, headers=None, **fields: Any):
        body: dict[str, Any] = {
            "vertical": self.vertical,
            "fields": {
                "first_name": "Mary",
                "last_name": "Major",
                "email": f"mary.major.{number}@example.com",
                "phone": f"(212) 555-{number:04d}",
                "zip_code": "10001",
                **fields,
            },
        }
        if ping_id is not None:
            body["ping_id"] = ping_id
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
        return self.client.post(
            LEADS, data=body, content_type="application/json", HTTP_AUTHORIZATION=self.auth, **extra
        )

    @property
    def auth(self) -> str:
        return f"Bearer {self.key}"


@pytest.fixture
def seller(client, market) -> Seller:  # noqa: F811 - an imported fixture
    return Seller(client, api_key_for(market.source), market.vertical.slug)
