"""The outbound HTTP client, through real sockets on 127.0.0.1: what it returns, what it refuses,
and which failures the shared rule calls transient."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from outbound import http
from outbound.guard import GuardedResolver
from outbound.rules import retryable
from tests.outbound.receiver import raw_server, receiving

TIMEOUT = (1.0, 2.0)


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def test_an_answer_is_returned_with_its_status_body_and_latency():
    with receiving(201) as receiver:
        outcome = http.send(
            "POST",
            receiver.url("/outcome?x=1"),
            body=b'{"id":1}',
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )

    assert (outcome.status, outcome.body, outcome.error) == (201, "ok", "")
    assert outcome.latency_ms >= 0
    assert not outcome.transient
    assert not outcome.ambiguous
    assert not outcome.refused
    (request,) = receiver.received
    assert (request["method"], request["path"], request["body"]) == (
        "POST",
        "/outcome?x=1",
        '{"id":1}',
    )
    assert request["headers"]["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_try_again_answers_are_transient(status):
    with receiving(status) as receiver:
        outcome = http.send("POST", receiver.url(), timeout=TIMEOUT)

    assert outcome.status == status
    assert outcome.transient
    assert not outcome.permanent


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 302])
def test_other_answers_are_permanent_and_redirects_are_not_followed(status):
    with receiving(status) as receiver:
        outcome = http.send("POST", receiver.url(), timeout=TIMEOUT)

    assert outcome.status == status
    assert outcome.permanent
    assert not retryable(outcome, idempotent=True)
    assert len(receiver.received) == 1


def test_a_closed_port_is_a_transient_connect_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = http.send("POST", f"http://127.0.0.1:{port}/hook", timeout=TIMEOUT)

    assert outcome.status is None
    assert outcome.error.startswith("cannot connect: ")
    assert outcome.transient
    assert not outcome.ambiguous


def test_no_answer_in_time_is_ambiguous_and_only_an_idempotent_call_tries_again():
    with receiving(200, delay_s=1.0) as receiver:
        outcome = http.send("POST", receiver.url(), timeout=(0.2, 0.2))

    assert outcome.status is None
    assert (outcome.ambiguous, outcome.timed_out, outcome.transient) == (True, True, False)
    assert outcome.error.startswith("no answer in time")
    assert retryable(outcome, idempotent=True)
    assert not retryable(outcome, idempotent=False)
    assert len(receiver.received) == 1


def test_an_answer_that_breaks_http_is_ambiguous_for_the_request_went_out():
    def answer_garbage(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\nok")

    with raw_server(answer_garbage) as port:
        outcome = http.send("POST", f"http://127.0.0.1:{port}/hook", timeout=TIMEOUT)

    assert outcome.status is None
    assert outcome.error.startswith("unreadable answer: ")
    assert outcome.ambiguous
    assert not outcome.transient


def test_a_forbidden_literal_address_is_refused_without_a_request(nothing_allowed):
    with receiving() as receiver:
        outcome = http.send("POST", receiver.url(), timeout=TIMEOUT)

    assert outcome.refused
    assert outcome.permanent
    assert outcome.error.startswith("refused: 127.0.0.1 is a loopback address")
    assert receiver.received == []


def test_a_name_resolving_to_a_forbidden_address_is_refused_without_a_request(nothing_allowed):
    with receiving() as receiver:
        outcome = http.send("POST", receiver.url(host="localhost"), timeout=TIMEOUT)

    assert outcome.refused
    assert outcome.error.startswith("refused: localhost resolves to ")
    assert "loopback" in outcome.error
    assert receiver.received == []


@pytest.mark.parametrize("url", ["http://", "ftp://files.example.com/x", "not a url"])
def test_an_invalid_url_is_refused_for_good(url):
    outcome = http.send("POST", url, timeout=TIMEOUT)

    assert outcome.status is None
    assert outcome.refused
    assert outcome.permanent


def test_a_batch_comes_back_in_order():
    with receiving(200) as ok, receiving(503) as down:
        requests = [
            http._Call(method="GET", url=down.url(), timeout=TIMEOUT),
            http._Call(method="GET", url=ok.url(), timeout=TIMEOUT),
        ]
        outcomes = http.send_all(requests, deadline=time.monotonic() + 3)

    assert [o.status for o in outcomes] == [503, 200]


class _Rebinding(AbstractResolver):
    """DNS that answers the allowed address once, then an address inside the platform."""

    def __init__(self) -> None:
        self.asked = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked += 1
        address = "127.0.0.1" if self.asked == 1 else "10.0.0.7"
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


def test_the_address_the_guard_checked_is_the_one_connected_to():
    dns = _Rebinding()
    client = http._Client(resolver=lambda: GuardedResolver(dns))
    try:
        with receiving(200) as receiver:
            (outcome,) = client.send_all(
                [http._Call(method="GET", url=receiver.url(host="partner.test"), timeout=TIMEOUT)],
                deadline=time.monotonic() + 3,
            )
    finally:
        client.close()

    assert outcome.status == 200
    assert dns.asked == 1  # resolved once, by the guard: no second look-up could rebind it
    assert receiver.received[0]["headers"]["Host"] == f"partner.test:{receiver.port}"


def test_a_name_with_any_forbidden_address_is_refused_by_the_resolver(nothing_allowed):
    class _Mixed(_Rebinding):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            public = await super().resolve(host, port, family)
            return [{**public[0], "host": "8.8.8.8"}, *public]

    resolver = GuardedResolver(_Mixed())
    with pytest.raises(OSError, match=r"partner\.test resolves to 127\.0\.0\.1 is a loopback"):
        asyncio.run(resolver.resolve("partner.test", 80))
