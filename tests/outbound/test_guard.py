"""Outbound calls never reach the platform's own networks (SSRF): checked on save and on connect."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from buyers.models import DeliveryEndpoint, EndpointKind
from leads.models import LeadStatus, Postback, PostbackStatus
from leads.tasks import send_postback
from outbound.guard import address_refusal, url_refusal
from routing.engine import lead_route
from routing.models import Attempt, AttemptOutcome
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def nothing_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("fe80::1", "link-local (cloud metadata)"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved or non-public"),
        ("192.0.2.10", "private"),
    ],
)
def test_internal_addresses_are_refused_and_say_what_they_are(nothing_allowed, address, kind):
    refusal = address_refusal(address)
    assert refusal.endswith(f"is a {kind} address, which the platform never connects to")


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.114.7", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(nothing_allowed, address):
    assert address_refusal(address) == ""


def test_an_allow_listed_network_is_reachable_and_nothing_beside_it(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32", "10.20.0.0/16"]
    assert address_refusal("127.0.0.1") == ""
    assert address_refusal("10.20.3.4") == ""
    assert address_refusal("127.0.0.2") != ""
    assert address_refusal("10.21.0.1") != ""


def test_urls_are_judged_by_their_host(nothing_allowed, monkeypatch):
    assert "loopback" in url_refusal("http://localhost:8000/ping")
    assert "loopback" in url_refusal("http://[::1]:8000/ping")
    assert "cloud metadata" in url_refusal("http://169.254.169.254/latest/meta-data/")
    assert url_refusal("ftp://") == "the URL has no host"

    def resolves_inside(host, *args, **kwargs):
        return [(2, 1, 6, "", ("10.0.0.7", 0))]

    monkeypatch.setattr("socket.getaddrinfo", resolves_inside)
    assert url_refusal("https://rebound.example.com/post") == (
        "rebound.example.com resolves to 10.0.0.7 is a private address, which the platform "
        "never connects to"
    )
    assert url_refusal("https://rebound.example.com/post", resolve=False) == ""


def test_a_name_that_does_not_resolve_now_is_left_to_the_connect_time_check(
    nothing_allowed, monkeypatch
):
    def unknown(host, *args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr("socket.getaddrinfo", unknown)
    assert url_refusal("https://buyer-not-yet-live.example.com/post") == ""


def test_an_endpoint_pointing_at_the_metadata_service_fails_validation(nothing_allowed):
    endpoint = DeliveryEndpoint(
        contract=ContractFactory(),
        kind=EndpointKind.POST,
        url="http://169.254.169.254/latest/meta-data/iam",
    )
    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()
    assert "may not call this address" in refused.value.message_dict["url"][0]


def test_a_postback_url_into_the_private_network_fails_validation(nothing_allowed):
    source = SourceFactory.build(postback_url="http://10.0.0.5/hook")
    with pytest.raises(ValidationError) as refused:
        source.full_clean(exclude=["verticals"])
    assert "10.0.0.5 is a private address" in refused.value.message_dict["postback_url"][0]


def test_the_admin_refuses_a_loopback_endpoint_with_a_form_error(admin_client, nothing_allowed):
    contract = ContractFactory()
    response = admin_client.post(
        reverse("admin:buyers_deliveryendpoint_add"),
        {
            "contract": contract.pk,
            "kind": EndpointKind.POST,
            "url": "http://127.0.0.1:6379/",
            "method": "POST",
            "body_format": "json",
            "connect_timeout_ms": 1000,
            "read_timeout_ms": 5000,
            "auth_type": "none",
            "headers": "{}",
        },
        secure=True,
    )
    assert response.status_code == 200
    assert "127.0.0.1 is a loopback address" in response.content.decode()
    assert not DeliveryEndpoint.objects.exists()


def _ping_attempt(lead) -> Attempt:
    return Attempt.objects.get(lead=lead, kind=EndpointKind.PING)


def test_a_ping_to_a_forbidden_literal_address_is_refused_at_connect_time(
    market, settings, start_simulator
):
    own = start_simulator()
    contract = market.contract(ping="bid=10", sim=own)
    lead = market.lead()
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the endpoint was saved while it was allowed

    lead_route(lead_id=str(lead.pk))

    attempt = _ping_attempt(lead)
    assert attempt.contract_id == contract.pk
    assert attempt.outcome == AttemptOutcome.ERROR
    assert attempt.error.startswith("refused: 127.0.0.1 is a loopback address")
    assert own.ledger.requests == {}
    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNSOLD


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_at_connect_time(
    market, settings, start_simulator
):
    own = start_simulator()
    contract = market.contract(ping="bid=10", sim=own)
    contract.endpoints.filter(kind=EndpointKind.PING).update(
        url=own.base_url.replace("127.0.0.1", "localhost") + "/ping?bid=10"
    )
    lead = market.lead()
    settings.OUTBOUND_ALLOWED_NETWORKS = []

    lead_route(lead_id=str(lead.pk))

    attempt = _ping_attempt(lead)
    assert attempt.error.startswith("refused: localhost resolves to")
    assert own.ledger.requests == {}


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self):
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_is_never_followed(market, start_simulator):
    own = start_simulator()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    _Redirect.target = f"{own.base_url}/ping?bid=50"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        contract = market.contract(ping="bid=10")
        contract.endpoints.filter(kind=EndpointKind.PING).update(
            url=f"http://127.0.0.1:{server.server_address[1]}/ping"
        )
        lead = market.lead()
        lead_route(lead_id=str(lead.pk))
    finally:
        server.shutdown()
        server.server_close()

    attempt = _ping_attempt(lead)
    assert (attempt.response_status, attempt.outcome) == (302, AttemptOutcome.DECLINED)
    assert own.ledger.requests == {}


def test_a_postback_to_a_private_address_is_refused_and_never_retried(nothing_allowed):
    source = SourceFactory(postback_url="http://10.255.0.1/hook")
    lead = LeadFactory(source=source, status=LeadStatus.UNSOLD)

    send_postback.apply(args=[str(lead.pk)])

    postback = Postback.objects.get(lead=lead)
    assert postback.status == PostbackStatus.FAILED
    assert postback.error.startswith("refused: 10.255.0.1 is a private address")
    assert postback.response_status is None
