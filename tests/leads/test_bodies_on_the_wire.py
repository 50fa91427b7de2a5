"""Bodies the test client cannot send, sent on real sockets to a live server on 127.0.0.1: a
chunked body without a Content-Length is refused with 411 and stored, never read as empty; and
JSON in another encoding than UTF-8 is refused with 400 and stored with its reason."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from pytest_django.live_server_helper import LiveServer

from exchange.models import InboundPing, PingStatus
from leads.intake import NOT_UTF8
from leads.models import Lead, LeadStatus
from tests.leads.conftest import LEADS, auto_lead, submit
from tests.live import live_server

PINGS = "/api/v1/pings/"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def live(settings, eager_celery) -> Iterator[LiveServer]:
    settings.SECURE_SSL_REDIRECT = False
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    with live_server() as server:
        yield server


def send_raw(
    server: LiveServer, path: str, key: str, framing: dict[str, str], body: bytes
) -> tuple[int, dict]:
    """POST one JSON body with the partner's key, framed by the `framing` headers and sent as
    written (body bytes as given); return status and JSON."""
    host, port = server.url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    head = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **framing}
    lines += [f"{name}: {value}" for name, value in head.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    header, _, content = answer.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    assert b"application/problem+json" in header.lower() or status < 400, header
    return status, json.loads(content) if content else {}


def chunked(body: bytes, size: int = 16) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


@pytest.mark.parametrize(("path", "kind"), [(LEADS, "lead"), (PINGS, "ping")])
def test_a_chunked_body_without_a_length_is_411_and_the_refusal_is_stored(
    live, partner, path, kind
):
    _, key = partner
    body = json.dumps(auto_lead(12)).encode()

    status, answer = send_raw(live, path, key, {"Transfer-Encoding": "chunked"}, chunked(body))

    assert status == 411
    assert answer["type"].endswith("/length-required")
    assert answer["detail"] == (
        "Send the body with a Content-Length header; a chunked body is not read."
    )
    if kind == "lead":
        stored = Lead.objects.get(pk=answer["id"])
        assert (stored.status, stored.reason) == (LeadStatus.INVALID, answer["detail"])
    else:
        stored = InboundPing.objects.get(pk=answer["id"])
        assert (stored.status, stored.reason) == (PingStatus.INVALID, answer["detail"])


def test_the_same_body_with_its_length_is_taken(live, partner):
    _, key = partner
    body = json.dumps(auto_lead(12)).encode()

    status, answer = send_raw(live, LEADS, key, {"Content-Length": str(len(body))}, body)

    assert status == 202, answer
    assert Lead.objects.get(pk=answer["id"]).raw_body == body.decode()


ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_json_in_utf16_or_utf32_is_400_and_stored_with_its_reason(client, partner, encoding):
    _, key = partner
    body = json.dumps(auto_lead(12)).encode(encoding)

    response = submit(client, key, body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["type"].endswith("/malformed-request")
    assert answer["detail"] == NOT_UTF8
    lead = Lead.objects.get(pk=answer["id"])
    assert (lead.status, lead.reason) == (LeadStatus.INVALID, NOT_UTF8)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_ping_in_utf16_or_utf32_is_400_and_stored_with_its_reason(client, partner, encoding):
    _, key = partner
    body = json.dumps({"vertical": "auto-insurance", "fields": {"zip_code": "10001"}})

    response = client.post(
        PINGS,
        data=body.encode(encoding),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )

    assert response.status_code == 400
    assert response.json()["detail"] == NOT_UTF8
    ping = InboundPing.objects.get(pk=response.json()["id"])
    assert (ping.status, ping.reason) == (PingStatus.INVALID, NOT_UTF8)


def test_utf8_with_or_without_a_bom_is_taken_and_stored_as_sent(client, partner):
    _, key = partner
    lead = auto_lead(12)
    lead["fields"]["first_name"] = "Zoë"
    body = json.dumps(lead, ensure_ascii=False).encode()

    plain = submit(client, key, body)
    with_bom = submit(client, key, b"\xef\xbb\xbf" + json.dumps(auto_lead(13)).encode())

    assert plain.status_code == 202, plain.content
    assert with_bom.status_code == 202, with_bom.content
    assert Lead.objects.get(pk=plain.json()["id"]).raw_body == body.decode()
