"""Fault scenarios: the platform's processes on 127.0.0.1, faults injected, invariants checked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import rabbitmq
from tests.faults.harness import Service, Stack, wait_until
from tests.leads.factories import api_key_for
from tests.routing.conftest import market, simulator, start_simulator  # noqa: F401 - fixtures
from tests.workers import final_count


def pytest_collection_modifyitems(config, items):
    if shutil.which("redis-server"):
        return
    skip = pytest.mark.skip(reason="the scenarios start a private Redis: install redis-server")
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture
def stack(request, transactional_db, tmp_path) -> Iterator[Stack]:
    """A private Redis for the scenario, and its broker; the test starts the rest. Everything
    stops afterwards.

    The broker is the private Redis unless the test asks for another (harness.BROKERS) with
    `@pytest.mark.parametrize("stack", [...], indirect=True)`.
    """
    broker = getattr(request, "param", "redis")
    if broker != "redis":
        rabbitmq.require()
    started = Stack(tmp_path, broker=broker)
    try:
        started.start_redis()
        if broker != "redis":
            started.start_broker()
        yield started
    finally:
        started.stop()


# Contracts whose breakers open on failures only: on a loaded 2-core machine every answer can look
# slower than the default 200 ms limit, and a scenario about lost workers is not about latency.
PATIENT = {"latency_limit_ms": 10_000}


def submission(number: int, *, vertical: str, sub_id: str = "") -> dict:
    return {
        "vertical": vertical,
        "sub_id": sub_id,
        "fields": {
            "first_name": "Mary",
            "last_name": "Major",
            "email": f"mary.major.{number}@example.com",
            "phone": f"(212) 555-{number % 10000:04d}",
            "zip_code": "60601",
            "state": "IL",
        },
    }


def submit(stack: Stack, to, numbers, *, sub_id: str = "", expect: int = 202) -> list[str]:
    """Submit one lead per number to a market through gunicorn, eight at a time; return ids."""
    key = api_key_for(to.source)
    session = requests.Session()

    def one(number: int) -> str:
        response = session.post(
            f"{stack.web_url}/api/v1/leads/",
            json=submission(number, vertical=to.vertical.slug, sub_id=sub_id),
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == expect, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, numbers))


def wait_all_final(
    stack: Stack, lead_ids, *, seconds: float, what: str, watch: list[Service] = ()
) -> float:
    """Wait until every lead is in a final state; return how long it took, or fail saying what."""
    return wait_until(
        lambda: final_count(lead_ids) == len(lead_ids),
        seconds=seconds,
        what=what,
        watch=watch,
        logs=stack.logs,
    )


def wait_for_posts(
    stack: Stack, buyer, count: int, *, what: str, watch: list[Service] = ()
) -> float:
    """Wait until a simulated buyer has received `count` posts (routing is under way)."""
    return wait_until(
        lambda: buyer.ledger.requests["post"] >= count,
        seconds=60,
        what=what,
        watch=watch,
        logs=stack.logs,
    )
