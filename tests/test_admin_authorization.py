"""Authorization probes of the admin's contract pages and tools, lead pages, re-route, source tools.

Each page is called by nobody, a partner's source key, a buyer's key, staff of no group, Sales,
Ops and Admin (tests/staff.py). Keys are not sessions: their holders are sent to log in. Sales
read leads with personal data masked and are refused a contract's page, its parts and its tools
(403), as staff of no group are refused everything; a refused request changes nothing and its
page names no consumer, buyer or endpoint. Generated object ids never get a server error, and a
refused caller gets the same 403 whether the object exists or not.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import quote, unquote

import pytest
from django.contrib.admin.models import LogEntry
from django.http import HttpResponse
from django.urls import Resolver404, resolve, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyers.models import Contract, ContractStatus, EndpointKind, TerritoryRule
from leads.models import Lead, LeadStatus
from reporting.services import buyer_api_key_create
from routing.models import AttemptOutcome
from tests.buyers.factories import BuyerFactory, ContractFactory, DeliveryEndpointFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFieldFactory, api_key_for
from tests.routing.factories import AttemptFactory, AuctionFactory
from tests.staff import CALLERS, ROLES, client_as

pytestmark = pytest.mark.django_db
# Each example opens six admin pages as each of four roles: fewer examples than the APIs get.
FUZZ_ADMIN = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
EMAIL, PHONE = "mary.major@example.com", "+13125550142"
BUYER, CONTRACT = "Summit Mutual Insurance", "Summit auto, Midwest"
ENDPOINT_URL = "http://127.0.0.1:9100/post?accept=1&price=31.00"
TOOLS = ("test", "pause", "resume", "clone", "zips")


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


class Scene:
    """A contract with an endpoint, and an unsold lead with personal data that it was posted."""

    def __init__(self) -> None:
        self.contract = ContractFactory(name=CONTRACT, buyer=BuyerFactory(company=BUYER))
        self.endpoint = DeliveryEndpointFactory(contract=self.contract, url=ENDPOINT_URL)
        self.lead = LeadFactory(
            vertical=self.contract.vertical,
            status=LeadStatus.UNSOLD,
            email=EMAIL,
            phone=PHONE,
            data={"first_name": "Mary", "email": EMAIL, "phone": PHONE, "zip_code": "60601"},
            remote_ip="203.0.113.7",
        )
        for name in ("first_name", "email", "phone"):
            VerticalFieldFactory(vertical=self.lead.vertical, name=name, is_pii=True)
        self.attempt = AttemptFactory(
            auction=AuctionFactory(lead=self.lead, status="unsold"),
            contract=self.contract,
            kind=EndpointKind.POST,
            outcome=AttemptOutcome.REJECTED,
            url=ENDPOINT_URL,
            request_body=f'{{"Email": "{EMAIL}", "Phone": "312-555-0142"}}',
            response_body='{"status": "rejected", "reason": "Out of area"}',
            price=Decimal("31.00"),
        )
        self.keys = {
            "partner_key": api_key_for(SourceFactory()),
            "buyer_key": buyer_api_key_create(buyer=self.contract.buyer)[1],
        }

    def pages(self) -> dict[str, str]:
        contract_id = self.contract.pk
        pages = {
            "contract page": reverse("admin:buyers_contract_change", args=[contract_id]),
            "contract history": reverse("admin:buyers_contract_history", args=[contract_id]),
            "endpoint page": reverse(
                "admin:buyers_deliveryendpoint_change", args=[self.endpoint.pk]
            ),
            **{
                f"contract {tool}": reverse(f"admin:buyers_contract_{tool}", args=[contract_id])
                for tool in TOOLS
            },
            "lead list": reverse("admin:leads_lead_changelist"),
            "lead page": reverse("admin:leads_lead_change", args=[self.lead.pk]),
            "attempt page": reverse("admin:routing_attempt_change", args=[self.attempt.pk]),
            "lead re-route": reverse("admin:leads_lead_reroute", args=[self.lead.pk]),
        }
        pages["contract test with the lead"] = (
            f"{pages['contract test']}?kind=post&lead={self.lead.pk}"
        )
        return pages

    def state(self) -> tuple:
        """Everything a tool or a re-route could change."""
        self.contract.refresh_from_db()
        return (
            self.contract.status,
            self.contract.paused_reason,
            Contract.objects.count(),
            TerritoryRule.objects.count(),
            Lead.objects.get(pk=self.lead.pk).status,
            LogEntry.objects.count(),
        )


@pytest.fixture
def scene(db) -> Scene:
    return Scene()


def text(response: HttpResponse) -> str:
    return response.content.decode()


def assert_nothing_leaks(response: HttpResponse) -> None:
    body = text(response)
    for secret in (EMAIL, PHONE, "312-555-0142", "203.0.113.7", BUYER, CONTRACT, ENDPOINT_URL):
        assert secret not in body, secret


SALES_MAY_OPEN = {"lead list", "lead page", "attempt page"}


def expected_status(caller: str, page: str) -> int:
    if caller in ("anonymous", "partner key", "buyer key"):
        return 302  # to the admin's login: a key is not a session
    if caller == "staff of no group":
        return 403
    if caller == "Sales":
        return 200 if page in SALES_MAY_OPEN else 403
    return 200


@pytest.mark.parametrize("caller", CALLERS)
def test_each_admin_page_answers_each_caller_by_its_role(scene, caller):
    client = client_as(caller, **scene.keys)

    for page, url in scene.pages().items():
        response = client.get(url)

        expected = expected_status(caller, page)
        assert response.status_code == expected, (caller, page, response.status_code)
        if expected == 302:
            assert response["Location"].startswith("/admin/login/?next=")
        if expected != 200:
            assert_nothing_leaks(response)


def test_sales_read_the_lead_and_what_the_buyer_was_sent_masked(scene):
    client = client_as("Sales")

    for page in ("lead list", "lead page", "attempt page"):
        body = text(client.get(scene.pages()[page]))

        for secret in (EMAIL, PHONE, "312-555-0142", "203.0.113.7"):
            assert secret not in body, (page, secret)
        assert "m***@example.com" in body, page
    assert "***0142" in text(client.get(scene.pages()["lead page"]))


@pytest.mark.parametrize("role", ["Ops", "Admin"])
def test_ops_and_admin_read_the_lead_unmasked(scene, role):
    client = client_as(role)

    assert EMAIL in text(client.get(scene.pages()["lead page"]))
    assert "312-555-0142" in text(client.get(scene.pages()["attempt page"]))


def tool_posts(scene: Scene) -> list[tuple[str, dict]]:
    """A valid request to every tool that changes something, and to re-route."""
    pages = scene.pages()
    return [
        (pages["contract pause"], {"reason": "not theirs to pause"}),
        (pages["contract resume"], {"reason": "not theirs to resume"}),
        (
            pages["contract clone"],
            {
                "name": "a copy",
                "buyer": scene.contract.buyer_id,
                "vertical": scene.contract.vertical_id,
            },
        ),
        (pages["contract zips"], {"mode": "include", "values": "60601 60602"}),
        (pages["contract test"], {"kind": "ping", "send": "1"}),
        (pages["lead re-route"], {"post": "yes"}),
    ]


@pytest.mark.parametrize("caller", ["anonymous", "partner key", "buyer key", "staff of no group"])
def test_a_caller_without_a_role_changes_nothing_with_a_tool(scene, caller):
    client = client_as(caller, **scene.keys)
    before = scene.state()

    for url, data in tool_posts(scene):
        response = client.post(url, data)

        assert response.status_code in (302, 403), (url, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/")
        assert_nothing_leaks(response)
    assert scene.state() == before


def test_sales_change_nothing_with_a_tool_or_a_reroute(scene):
    client = client_as("Sales")
    before = scene.state()

    for url, data in tool_posts(scene):
        response = client.post(url, data)

        assert response.status_code == 403, url
        assert_nothing_leaks(response)
    assert scene.state() == before


@pytest.mark.parametrize("role", ["Ops", "Admin"])
def test_ops_and_admin_use_the_tools_the_others_are_refused(scene, role):
    client = client_as(role)
    pages = scene.pages()

    client.post(pages["contract pause"], {"reason": "budget review"})
    scene.contract.refresh_from_db()
    assert scene.contract.status == ContractStatus.PAUSED
    client.post(pages["contract zips"], {"mode": "include", "values": "60601"})
    assert TerritoryRule.objects.filter(contract=scene.contract).exists()
    client.post(pages["lead re-route"], {"post": "yes"})
    assert Lead.objects.get(pk=scene.lead.pk).status == LeadStatus.ACCEPTED


ID_PROBES = st.one_of(
    st.integers().map(str),
    st.uuids().map(str),
    st.text(min_size=1, max_size=24),
)


def probe_urls(contract_id: object, lead_id: object) -> list[str]:
    contract, lead = quote(str(contract_id), safe=""), quote(str(lead_id), safe="")
    return [
        *(f"/admin/buyers/contract/{contract}/{tool}/" for tool in TOOLS),
        f"/admin/leads/lead/{lead}/reroute/",
    ]


def routed(url: str) -> bool:
    try:
        resolve(unquote(url))
    except Resolver404:
        return False
    return True


@pytest.fixture
def staff_clients(db) -> dict:
    return {role: client_as(role) for role in ("staff of no group", *ROLES)}


@FUZZ_ADMIN
@given(probe=ID_PROBES)
def test_generated_ids_on_the_tools_never_fail_and_tell_a_refused_caller_nothing(
    scene, staff_clients, probe
):
    for role, client in staff_clients.items():
        for url in probe_urls(probe, probe):
            response = client.get(url)

            if not routed(url):
                # No view runs (a newline in the id, say): the same 404 for everyone.
                assert response.status_code == 404, (role, url, response.status_code)
            elif role in ("staff of no group", "Sales"):
                # The same 403 for an id that exists and one that does not.
                assert response.status_code == 403, (role, url, response.status_code)
            else:
                assert response.status_code in (200, 302, 404), (role, url, response.status_code)


@pytest.mark.parametrize("role", ["staff of no group", "Sales"])
def test_a_refused_caller_cannot_tell_a_real_contract_or_lead_from_a_made_up_one(scene, role):
    client = client_as(role)
    real = probe_urls(scene.contract.pk, scene.lead.pk)
    made_up = probe_urls(scene.contract.pk + 1000, uuid.uuid4())

    for mine, theirs in zip(real, made_up, strict=True):
        answered, unknown = client.get(mine), client.get(theirs)
        assert answered.status_code == unknown.status_code == 403, (mine, theirs)
        assert text(answered) == text(unknown)


@pytest.mark.parametrize(
    ("role", "view"),
    [
        ("staff of no group", "mint_key"),
        ("staff of no group", "instructions"),
        ("Sales", "mint_key"),
    ],
)
def test_a_refused_caller_cannot_tell_a_real_source_from_a_made_up_one(scene, role, view):
    client = client_as(role)
    source = scene.lead.source

    answered = client.get(reverse(f"admin:leads_source_{view}", args=[source.pk]))
    unknown = client.get(reverse(f"admin:leads_source_{view}", args=[source.pk + 1000]))

    assert answered.status_code == unknown.status_code == 403
    assert text(answered) == text(unknown)
