"""The buyer simulator, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import aiohttp
import pytest
import requests
from django.core.management import CommandError, call_command

from simulator import server
from simulator.server import REASONS, SimulatorThread

TIMEOUT = 5


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(seed=1234) as running:
        yield running


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def get(sim: SimulatorThread, http: requests.Session) -> Callable[..., requests.Response]:
    def get(path: str, **params: Any) -> requests.Response:
        return http.get(f"{sim.base_url}{path}", params=params, timeout=TIMEOUT)

    return get


def many(get: Callable[..., requests.Response], path: str, count: int = 40, **params: Any) -> list:
    responses = [get(path, **params) for _ in range(count)]
    assert {response.status_code for response in responses} == {200}
    return [response.json() for response in responses]


# /ping


def test_it_bids_ten_dollars_by_default(get: Callable[..., requests.Response]) -> None:
    response = get("/ping")

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "bid"
    assert body["price"] == 10.0
    assert set(body) == {"status", "price", "bid_id"}


def test_it_bids_a_fixed_amount_with_a_unique_bid_id(get: Callable[..., requests.Response]) -> None:
    bodies = many(get, "/ping", count=20, bid="12.50")

    assert {body["price"] for body in bodies} == {12.5}
    assert len({body["bid_id"] for body in bodies}) == 20


def test_it_bids_within_a_range_rounded_to_cents(get: Callable[..., requests.Response]) -> None:
    prices = [body["price"] for body in many(get, "/ping", count=100, bid="8-20")]

    assert all(8 <= price <= 20 for price in prices)
    assert all(round(price, 2) == price for price in prices)
    assert len(set(prices)) > 10


def test_it_never_declines_when_decline_is_zero(get: Callable[..., requests.Response]) -> None:
    bodies = many(get, "/ping", decline="0")

    assert {body["status"] for body in bodies} == {"bid"}


def test_it_declines_every_ping_when_decline_is_one(get: Callable[..., requests.Response]) -> None:
    bodies = many(get, "/ping", decline="1")

    assert {body["status"] for body in bodies} == {"decline"}
    assert {body["reason"] for body in bodies} <= set(REASONS)
    assert all(set(body) == {"status", "reason"} for body in bodies)


@pytest.mark.parametrize("path", ["/ping", "/post"])
def test_it_fails_every_request_when_fail_is_one(
    get: Callable[..., requests.Response], path: str
) -> None:
    for _ in range(10):
        response = get(path, fail="1")

        assert response.status_code == 500
        assert response.json() == {"status": "error", "message": "simulated failure"}


@pytest.mark.parametrize("path", ["/ping", "/post"])
def test_it_never_fails_when_fail_is_zero(get: Callable[..., requests.Response], path: str) -> None:
    many(get, path, fail="0")


# /post


def test_it_accepts_every_post_when_accept_is_one(get: Callable[..., requests.Response]) -> None:
    bodies = many(get, "/post", accept="1")

    assert {body["status"] for body in bodies} == {"accepted"}
    assert len({body["lead_id"] for body in bodies}) == len(bodies)


def test_it_rejects_every_post_when_accept_is_zero(get: Callable[..., requests.Response]) -> None:
    bodies = many(get, "/post", accept="0")

    assert {body["status"] for body in bodies} == {"rejected"}
    assert {body["reason"] for body in bodies} <= set(REASONS)


def test_it_accepts_by_default_without_echoing_a_price(
    get: Callable[..., requests.Response],
) -> None:
    body = get("/post").json()

    assert body["status"] == "accepted"
    assert "price" not in body


def test_it_echoes_the_price_when_one_is_given(get: Callable[..., requests.Response]) -> None:
    body = get("/post", price="12.50").json()

    assert body["status"] == "accepted"
    assert body["price"] == 12.5


@pytest.mark.parametrize(
    ("path", "params"),
    [("/ping", {"decline": "1"}), ("/post", {"accept": "0"})],
)
def test_it_gives_the_reason_it_is_told_to(
    get: Callable[..., requests.Response], path: str, params: dict[str, str]
) -> None:
    body = get(path, reason="no coverage in Ohio", **params).json()

    assert body["reason"] == "no coverage in Ohio"


def test_it_answers_post_requests_and_counts_their_body_size() -> None:
    payload = b'{"phone": "+15555550100", "zip": "43004"}'
    with SimulatorThread() as sim:
        response = requests.post(f"{sim.base_url}/post?price=9", data=payload, timeout=TIMEOUT)

        assert response.json()["status"] == "accepted"
        assert sim.ledger.body_bytes["post"] == len(payload)


# Timing


@pytest.mark.parametrize("path", ["/ping", "/post"])
def test_it_waits_delay_ms_before_answering(
    get: Callable[..., requests.Response], path: str
) -> None:
    started = time.monotonic()
    response = get(path, delay_ms="300")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_it_does_not_answer_a_timeout_request_within_half_a_second(
    sim: SimulatorThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{sim.base_url}/ping?timeout=1", timeout=0.5)

    # The server notices the disconnect and drops the handler without a traceback.
    time.sleep(0.1)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert requests.get(f"{sim.base_url}/health", timeout=TIMEOUT).status_code == 200


def test_it_stops_promptly_while_a_request_hangs(caplog: pytest.LogCaptureFixture) -> None:
    sim = SimulatorThread().start()
    outcome: list[BaseException] = []

    def hang() -> None:
        try:
            requests.post(f"{sim.base_url}/post?timeout=1", timeout=30)
        except requests.exceptions.ConnectionError as exc:
            outcome.append(exc)

    client = threading.Thread(target=hang)
    client.start()
    while sim.ledger.requests["post"] == 0:
        time.sleep(0.01)

    started = time.monotonic()
    sim.stop()
    client.join(TIMEOUT)

    # aiohttp would otherwise wait 60 s for the hanging request.
    assert time.monotonic() - started < 5
    assert len(outcome) == 1, "the hanging client should see the connection close"
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_it_answers_a_thousand_concurrent_delayed_requests_at_once(
    sim: SimulatorThread,
) -> None:
    async def fetch_all() -> list[tuple[int, dict[str, Any]]]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def fetch(number: int) -> tuple[int, dict[str, Any]]:
                path = "/ping" if number % 2 else "/post"
                async with session.get(f"{sim.base_url}{path}?delay_ms=200") as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(fetch(number) for number in range(1000)))

    started = time.monotonic()
    results = asyncio.run(fetch_all())
    elapsed = time.monotonic() - started

    # One after another this would take 200 s.
    assert elapsed < 10
    assert {status for status, _ in results} == {200}
    assert {body["status"] for _, body in results} == {"bid", "accepted"}


# Errors


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/ping", "delay_ms=abc", "delay_ms"),
        ("/ping", "delay_ms=-5", "delay_ms"),
        ("/ping", "delay_ms=1.5", "delay_ms"),
        ("/ping", "delay_ms=99999999999", "delay_ms"),
        ("/ping", "decline=1.5", "decline"),
        ("/ping", "decline=often", "decline"),
        ("/ping", "decline=nan", "decline"),
        ("/ping", "fail=-0.1", "fail"),
        ("/ping", "bid=abc", "bid"),
        ("/ping", "bid=-3", "bid"),
        ("/ping", "bid=20-8", "bid"),
        ("/ping", "timeout=yes", "timeout"),
        ("/ping", "reason=", "reason"),
        ("/post", "accept=2", "accept"),
        ("/post", "price=free", "price"),
        ("/post", "fail=x", "fail"),
        # Validation comes before the hang, so a bad hanging request still answers at once.
        ("/post", "timeout=1&accept=-1", "accept"),
    ],
)
def test_it_rejects_a_bad_parameter_with_problem_json_naming_it(
    sim: SimulatorThread, http: requests.Session, path: str, query: str, field: str
) -> None:
    response = http.get(f"{sim.base_url}{path}?{query}", timeout=TIMEOUT)

    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == server.INVALID_PARAMETERS_TYPE
    assert problem["title"] == "Invalid query parameters"
    assert problem["status"] == 400
    assert problem["detail"].startswith(f"{field} ")
    assert list(problem["errors"]) == [field]
    assert problem["errors"][field][0].startswith(f"{field} ")


def test_it_reports_every_bad_parameter_at_once(get: Callable[..., requests.Response]) -> None:
    problem = get("/ping", delay_ms="-1", fail="2", bid="20-8").json()

    assert set(problem["errors"]) == {"delay_ms", "fail", "bid"}
    assert problem["detail"] == (
        "delay_ms must be a non-negative integer; fail must be a number between 0 and 1; "
        "bid range must not start above its end, got '20-8'"
    )


def test_it_ignores_parameters_the_endpoint_does_not_use(
    get: Callable[..., requests.Response],
) -> None:
    assert get("/post", bid="not a number", buyer="acme").json()["status"] == "accepted"


def test_it_answers_an_unknown_path_with_404_problem_json(
    get: Callable[..., requests.Response],
) -> None:
    response = get("/bid")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 404
    assert problem["title"] == "Not Found"
    assert "/bid" in problem["detail"]


def test_it_answers_an_unsupported_method_with_405_problem_json(
    sim: SimulatorThread, http: requests.Session
) -> None:
    response = http.put(f"{sim.base_url}/ping", timeout=TIMEOUT)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET,POST"
    assert response.json()["status"] == 405


# Health, ledger, seeds


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_it_reports_health(sim: SimulatorThread, http: requests.Session, method: str) -> None:
    response = http.request(method, f"{sim.base_url}/health", timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_counts_requests_received_per_endpoint_in_the_ledger() -> None:
    with SimulatorThread() as sim:

        def ledger() -> dict[str, int]:
            return requests.get(f"{sim.base_url}/_ledger", timeout=TIMEOUT).json()

        assert ledger() == {"ping": 0, "post": 0, "duplicate_posts": 0}
        for query in ("", "?decline=1", "?fail=1", "?delay_ms=bad"):
            requests.get(f"{sim.base_url}/ping{query}", timeout=TIMEOUT)
        requests.post(f"{sim.base_url}/post", json={"lead": 1}, timeout=TIMEOUT)
        requests.get(f"{sim.base_url}/health", timeout=TIMEOUT)
        requests.get(f"{sim.base_url}/nowhere", timeout=TIMEOUT)

        # Failures and rejected parameters were still received; health and 404s are not counted.
        assert ledger() == {"ping": 4, "post": 1, "duplicate_posts": 0}


def test_it_replays_the_same_outcomes_for_the_same_seed() -> None:
    def outcomes(seed: int) -> list[tuple[int, str | float | None]]:
        with SimulatorThread(seed=seed) as sim, requests.Session() as session:
            url = f"{sim.base_url}/ping?bid=1-1000&decline=0.3&fail=0.1"
            results = []
            for _ in range(30):
                response = session.get(url, timeout=TIMEOUT)
                body = response.json()
                results.append((response.status_code, body.get("price") or body.get("reason")))
            return results

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)


def test_it_reports_a_port_that_is_already_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        sim = SimulatorThread(port=port)

        with pytest.raises(OSError, match="address already in use"):
            sim.start()


# The management command


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",  # noqa: S104 - the point is to see it refused
        "192.0.2.10",
        "localhost",
        "::",
    ],
)
def test_the_command_refuses_a_host_that_is_not_loopback(host: str) -> None:
    with pytest.raises(CommandError, match="only listens on loopback addresses"):
        call_command("simulate_buyers", host=host, port=0)


def test_the_command_prints_the_base_url_and_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(
        host: str, port: int, *, seed: int | None, on_started: Callable[[str], None]
    ) -> None:
        assert (host, port, seed) == ("::1", 9200, 5)
        on_started("http://[::1]:9200")

    monkeypatch.setattr(server, "run", fake_run)
    out = StringIO()

    call_command("simulate_buyers", host="::1", port=9200, seed=5, stdout=out)

    assert "Buyer simulator listening on http://[::1]:9200 (seed 5)." in out.getvalue()
    assert "  http://[::1]:9200/ping?bid=12.50&delay_ms=40" in out.getvalue()
    assert "  http://[::1]:9200/_ledger" in out.getvalue()


def test_the_command_reports_a_port_that_is_already_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]

        with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("simulate_buyers", port=port)


def test_it_counts_a_body_posted_twice_to_one_url_as_a_duplicate_post() -> None:
    with SimulatorThread() as sim:
        for url, lead in (("/post?buyer=1", 1), ("/post?buyer=1", 2), ("/post?buyer=2", 1)):
            requests.post(f"{sim.base_url}{url}", json={"lead": lead}, timeout=TIMEOUT)
        assert sim.ledger.duplicate_posts == 0
        requests.post(f"{sim.base_url}/post?buyer=1", json={"lead": 1}, timeout=TIMEOUT)

        assert sim.ledger.duplicate_posts == 1
        assert requests.get(f"{sim.base_url}/_ledger", timeout=TIMEOUT).json() == {
            "ping": 0,
            "post": 4,
            "duplicate_posts": 1,
        }
        # A retry the buyer asked for with a 5xx is no duplicate; one after its answer is.
        for _ in range(3):
            requests.post(f"{sim.base_url}/post?fail=1", json={"lead": 3}, timeout=TIMEOUT)
        assert sim.ledger.duplicate_posts == 1


@pytest.mark.parametrize("endpoint", ["ping", "post"])
def test_it_misbehaves_on_request(sim: SimulatorThread, http: requests.Session, endpoint) -> None:
    url = f"{sim.base_url}/{endpoint}"

    malformed = http.post(f"{url}?malformed=1", timeout=TIMEOUT)
    assert malformed.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        malformed.json()

    huge = http.post(f"{url}?huge_kb=2048", timeout=TIMEOUT)
    assert len(huge.content) > 2048 * 1024
    assert huge.json()["status"] in {"bid", "accepted"}

    redirect = http.post(
        f"{url}?redirect=http://127.0.0.1:9/x", timeout=TIMEOUT, allow_redirects=False
    )
    assert (redirect.status_code, redirect.headers["Location"]) == (302, "http://127.0.0.1:9/x")

    refused = http.post(f"{url}?huge_kb=99999&redirect=ftp://x", timeout=TIMEOUT)
    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"huge_kb", "redirect"}
