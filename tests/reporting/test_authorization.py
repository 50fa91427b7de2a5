"""Authorization probes of the staff and buyer surfaces outside the admin: the dashboards and their
CSV exports, the reporting API and the returns API.

Each is called by nobody, a partner's source key, a buyer's key, staff of no group, Sales, Ops and
Admin (tests/staff.py). Every refusal has the right status and says nothing of the data behind
it; generated filters, lead ids and bodies never get a server error; and a buyer never returns,
nor learns anything about, another buyer's sale. The admin's probes are in
tests/test_admin_authorization.py, the partner API's in tests/leads/test_abuse.py.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buyers.models import Contract
from config.masking import mask_email
from config.problems import PROBLEM_CONTENT_TYPE
from reporting.api.urls import urlpatterns as reporting_api_routes
from reporting.filters import PRESETS
from reporting.models import ReturnReason, SaleReturn
from reporting.services import (
    buyer_api_key_create,
    buyer_api_key_revoke,
    sale_return,
    staff_token_create,
)
from routing.models import Sale, SaleStatus
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory, api_key_for
from tests.reporting.conftest import PERIOD, World
from tests.reporting.conftest import staff_user as reporting_staff_user
from tests.routing.factories import SaleFactory
from tests.staff import CALLERS, client_as

pytestmark = pytest.mark.django_db
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
EXPORTS = ["summary", "timeseries", "buyers", "sources", "leads"]
DASHBOARD = [
    "/dashboard/",
    "/dashboard/buyers/",
    "/dashboard/sources/",
    *(f"/dashboard/export/{table}.csv" for table in EXPORTS),
]
# Every report the API routes, so that a new one is probed too.
REPORTS = [
    f"/api/v1/{route.pattern}"
    for route in reporting_api_routes
    if str(route.pattern).startswith("reports/")
]
RETURNS = "/api/v1/returns/"
LOGIN = "/admin/login/"


def body_of(response: HttpResponse) -> str:
    """The whole body, a streamed CSV export read to its end (where a late error would show)."""
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def assert_nothing_leaks(body: str, world: World) -> None:
    """A refusal names no buyer, source or consumer and no figure of the period."""
    for secret in ("Buyer X", "Buyer Y", "Source A", "Source B", world.leads["A1"].email, "50.00"):
        assert secret not in body, secret


@pytest.fixture
def keys(world: World) -> dict[str, str]:
    """A live key of a partner that sells to us and one of a buyer that buys from us."""
    return {
        "partner_key": api_key_for(world.source_a),
        "buyer_key": buyer_api_key_create(buyer=world.buyer_x)[1],
    }


# --- Dashboards and CSV exports (pages for a signed-in browser: the others go to log in) ------

# Staff are answered by their role alike on the dashboards and in the reporting API; the others
# are sent to log in (a page) or told to authenticate (the API).
STAFF_STATUS = {"staff of no group": 403, "Sales": 200, "Ops": 200, "Admin": 200}
OUTSIDERS = ("anonymous", "partner key", "buyer key")
DASHBOARD_STATUS = dict.fromkeys(OUTSIDERS, 302) | STAFF_STATUS


@pytest.mark.parametrize("caller", CALLERS)
def test_the_dashboards_and_exports_answer_each_caller_by_its_role(world, keys, caller):
    client = client_as(caller, **keys)
    email = world.leads["A1"].email

    for url in [*DASHBOARD, "/dashboard/export/salaries.csv"]:
        response = client.get(url, PERIOD)
        body = body_of(response)

        expected = DASHBOARD_STATUS[caller]
        if expected == 200 and "salaries" in url:
            expected = 404  # no such export; refused callers never learn which ones exist
        assert response.status_code == expected, (caller, url, response.status_code)
        if expected == 302:
            assert response["Location"].startswith(f"{LOGIN}?next=/dashboard/")
        if expected != 200:
            assert_nothing_leaks(body, world)
        elif url.endswith("leads.csv"):
            # Sales read the lead export masked; Ops and Admin see the consumer's address.
            assert (email in body) is (caller != "Sales"), caller
            assert (mask_email(email) in body) is (caller == "Sales"), caller


# --- Reporting API (staff by session or token; keys are not staff) --------------------------

REPORT_STATUS = dict.fromkeys(OUTSIDERS, 401) | STAFF_STATUS


@pytest.mark.parametrize("caller", CALLERS)
def test_the_reporting_api_answers_each_caller_by_its_role(world, keys, caller):
    client = client_as(caller, **keys)

    for url in REPORTS:
        response = client.get(url, PERIOD)

        assert response.status_code == REPORT_STATUS[caller], (caller, url)
        if response.status_code == 200:
            continue
        assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
        if response.status_code == 401:
            assert response["WWW-Authenticate"].startswith("Bearer")
        assert_nothing_leaks(response.content.decode(), world)


@pytest.mark.parametrize(
    ("groups", "is_staff", "is_active", "status"),
    [
        (["Sales"], True, True, 200),
        (["Ops"], True, True, 200),
        (["Admin"], True, True, 200),
        ([], True, True, 403),
        (["Sales"], False, True, 403),
        (["Sales"], True, False, 401),
    ],
    ids=["Sales", "Ops", "Admin", "staff of no group", "Sales not staff", "Sales deactivated"],
)
def test_a_staff_token_reads_reports_only_for_staff_with_the_dashboard_permission(
    world, groups, is_staff, is_active, status
):
    user = reporting_staff_user("bi-tool", *groups, is_staff=is_staff)
    user.is_active = is_active
    user.save(update_fields=["is_active"])
    _, token = staff_token_create(user=user, name="BI tool")

    for url in REPORTS:
        response = Client().get(url, PERIOD, HTTP_AUTHORIZATION=f"Bearer {token}")

        assert response.status_code == status, url
        if status != 200:
            assert_nothing_leaks(response.content.decode(), world)


def test_a_staff_token_opens_no_dashboard_and_no_export(world):
    _, token = staff_token_create(user=reporting_staff_user("bi-tool", "Ops"), name="BI tool")

    for url in DASHBOARD:
        response = Client().get(url, PERIOD, HTTP_AUTHORIZATION=f"Bearer {token}")

        assert response.status_code == 302, url  # pages are for a signed-in browser
        assert_nothing_leaks(body_of(response), world)


FILTER_NAMES = ["preset", "start", "end", "vertical", "source", "buyer"]
# Any date, and often one at an end of the calendar, where a period's arithmetic overflows.
DATES = st.one_of(
    st.dates(),
    st.dates(max_value=date(1, 12, 31)),
    st.dates(min_value=date(9999, 1, 1)),
)
FILTER_VALUES = st.one_of(
    st.text(max_size=20),
    DATES.map(date.isoformat),
    st.integers().map(str),
    st.sampled_from([value for value, _ in PRESETS]),
)
# Pages that read every selector behind the reports (the others share them).
FUZZED = [
    "/api/v1/reports/summary/",
    "/api/v1/reports/timeseries/",
    "/api/v1/reports/buyers/",
    "/dashboard/",
    "/dashboard/export/leads.csv",
]


@FUZZ
@given(
    params=st.dictionaries(st.sampled_from(FILTER_NAMES), FILTER_VALUES, max_size=4),
    period=st.none() | st.tuples(DATES, st.integers(min_value=0, max_value=450)),
)
def test_generated_report_filters_are_answered_or_refused_never_a_server_error(
    sales_client, world, params, period
):
    if period is not None:
        first, days = period
        last = first + timedelta(days=days) if (date.max - first).days >= days else date.max
        params = {**params, "start": first.isoformat(), "end": last.isoformat()}

    for url in FUZZED:
        response = sales_client.get(url, params)
        body_of(response)

        assert response.status_code in (200, 400), (url, params, response.status_code)


# --- Returns API (a buyer, by its key, and only its own sales) ------------------------------


def sold(contract: Contract, *, days_ago: float = 1, lead=None) -> Sale:
    lead = lead or LeadFactory(vertical=contract.vertical, status="sold")
    sale = SaleFactory(lead=lead, contract=contract, price=Decimal("24.00"))
    Sale.objects.filter(pk=sale.pk).update(sold_at=timezone.now() - timedelta(days=days_ago))
    sale.refresh_from_db()
    return sale


class Market:
    """Buyer A's sales in every state a return can find them in, and buyer B, who bought too."""

    def __init__(self) -> None:
        vertical = VerticalFactory()
        self.contract_a = ContractFactory(vertical=vertical, return_window_days=7)
        self.contract_b = ContractFactory(vertical=vertical, return_window_days=7)
        no_returns = ContractFactory(
            buyer=self.contract_a.buyer, vertical=vertical, return_window_days=0
        )
        self.returnable = sold(self.contract_a)
        self.past_window = sold(self.contract_a, days_ago=30)
        self.returned = sold(self.contract_a)
        sale_return(sale=self.returned, reason="fraud", returned_by="test")
        self.no_returns = sold(no_returns)
        # A shared lead: bought by A and by B.
        self.shared_a = sold(self.contract_a)
        self.shared_b = sold(self.contract_b, lead=self.shared_a.lead)
        self.a_key = buyer_api_key_create(buyer=self.contract_a.buyer)[1]
        self.b_key = buyer_api_key_create(buyer=self.contract_b.buyer)[1]

    @property
    def a_sales(self) -> list[Sale]:
        """A's sales of leads that B did not buy."""
        return [self.returnable, self.past_window, self.returned, self.no_returns]

    def a_states(self) -> dict[int, tuple[str, object]]:
        """Every sale of A's as it stands (the shared lead's too)."""
        rows = Sale.objects.filter(pk__in=[sale.pk for sale in [*self.a_sales, self.shared_a]])
        return {
            pk: (status, at) for pk, status, at in rows.values_list("pk", "status", "returned_at")
        }


@pytest.fixture
def market(db) -> Market:
    return Market()


def post_return(key: str | None, body: object, **extra) -> HttpResponse:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client(headers=headers).post(RETURNS, body, content_type="application/json", **extra)


def stable(response: HttpResponse) -> tuple[int, str, object]:
    """What a caller can tell a response by (status, content type and body)."""
    return response.status_code, response["Content-Type"], response.json()


RETURN_STATUS = {
    "anonymous": 401,
    "partner key": 401,
    "buyer key": 404,  # buyer B, who bought none of A's leads it names
    "staff of no group": 401,  # staff have no buyer key: the returns API knows no sessions
    "Sales": 401,
    "Ops": 401,
    "Admin": 401,
}


@pytest.mark.parametrize("caller", CALLERS)
def test_only_the_buyer_who_bought_a_lead_may_return_it(market, caller):
    partner = api_key_for(SourceFactory())
    client = client_as(caller, partner_key=partner, buyer_key=market.b_key)
    before = market.a_states()

    for sale in market.a_sales:
        response = client.post(
            RETURNS,
            {"lead_id": str(sale.lead_id), "reason": "fraud"},
            content_type="application/json",
        )

        assert response.status_code == RETURN_STATUS[caller], (caller, response.content)
        assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
        assert str(sale.lead_id) not in response.content.decode()
    assert market.a_states() == before
    assert SaleReturn.objects.count() == 1  # the one the market was built with


def test_another_buyers_lead_reads_exactly_as_a_lead_that_does_not_exist(market):
    """Past its window, already returned, on a contract without returns: B is told nothing."""
    for reason in ("fraud", "other"):  # "other" without a note is refused: after the lookup
        unknown = stable(
            post_return(market.b_key, {"lead_id": str(uuid.uuid4()), "reason": reason})
        )
        for sale in market.a_sales:
            probe = post_return(market.b_key, {"lead_id": str(sale.lead_id), "reason": reason})
            assert stable(probe) == unknown, (sale, reason)
    assert unknown[0] == 404


@FUZZ
@given(
    lead_id=st.one_of(
        st.uuids().map(str),
        st.text(max_size=40),
        st.integers(),
        st.none(),
        st.lists(st.uuids().map(str), max_size=2),
    ),
    reason=st.one_of(st.sampled_from(ReturnReason.values), st.text(max_size=12), st.none()),
    extra=st.dictionaries(
        st.text(max_size=12),
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        max_size=3,
    ),
)
def test_generated_returns_from_another_buyer_never_reach_nor_reveal_a_sale(
    market, lead_id, reason, extra
):
    before = market.a_states()
    for target in [lead_id, *(str(sale.lead_id) for sale in market.a_sales)]:
        body = {**extra, "lead_id": target, "reason": reason}
        response = post_return(market.b_key, body)

        assert response.status_code in (400, 404), (body, response.status_code)
        assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
        if target != lead_id:
            # A's real lead answers as a made-up one would: same status, same words.
            made_up = post_return(market.b_key, {**body, "lead_id": str(uuid.uuid4())})
            assert stable(response) == stable(made_up), body
    assert market.a_states() == before


@FUZZ
@given(body=st.recursive(st.none() | st.booleans() | st.text(max_size=10), st.lists, max_leaves=4))
def test_bodies_that_are_not_an_object_are_refused_not_failed(market, body):
    response = post_return(market.b_key, json.dumps(body))

    assert response.status_code == 400, (body, response.content)
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE


def test_read_only_members_of_a_return_are_refused_by_name(market):
    sale = market.returnable
    body = {
        "lead_id": str(sale.lead_id),
        "reason": "bad_phone",
        "refunded": "999.00",
        "returned_at": "2020-01-01T00:00:00Z",
        "status": "returned",
        "buyer": market.contract_b.buyer_id,
        "sale": sale.pk,
    }

    response = post_return(market.a_key, body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {"refunded", "returned_at", "status", "buyer", "sale"} <= set(errors)
    assert "Read-only" in errors["refunded"][0]
    assert "Unknown member" in errors["sale"][0]
    assert Sale.objects.get(pk=sale.pk).status == SaleStatus.SOLD


def test_the_returns_schema_says_a_return_has_no_other_members(client):
    schema = client.get("/api/schema/reporting/", {"format": "json"}).json()

    request = schema["components"]["schemas"]["ReturnRequest"]
    assert request["additionalProperties"] is False
    assert set(request["properties"]) == {"lead_id", "reason", "note"}


def test_a_buyer_returning_a_shared_lead_returns_its_own_sale_and_only_that(market):
    lead = market.shared_b.lead

    response = post_return(market.b_key, {"lead_id": str(lead.pk), "reason": "fraud"})

    assert response.status_code == 201, response.content
    assert response.json()["refunded"] == "24.00"
    statuses = dict(Sale.objects.filter(lead=lead).values_list("buyer_id", "status"))
    assert statuses == {
        market.contract_a.buyer_id: SaleStatus.SOLD,
        market.contract_b.buyer_id: SaleStatus.RETURNED,
    }
    assert SaleReturn.objects.filter(sale=market.shared_a).count() == 0


@pytest.mark.parametrize("key", ["revoked", "mistyped", "another scheme", "no prefix", "non-ascii"])
def test_a_key_that_is_not_a_live_buyer_key_is_unauthenticated(market, key):
    api_key, raw = buyer_api_key_create(buyer=market.contract_a.buyer)
    header = {
        "revoked": f"Bearer {raw}",
        "mistyped": f"Bearer {raw[:-1]}{'x' if raw[-1] != 'x' else 'y'}",
        "another scheme": f"Token {raw}",
        "no prefix": f"Bearer {raw.removeprefix('lbk_')}",
        "non-ascii": "Bearer lbk_ünïcode",
    }[key]
    if key == "revoked":
        buyer_api_key_revoke(api_key=api_key)

    response = Client().post(
        RETURNS,
        {"lead_id": str(market.returnable.lead_id), "reason": "fraud"},
        content_type="application/json",
        HTTP_AUTHORIZATION=header.encode().decode("latin-1"),
    )

    assert response.status_code == 401, key
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert str(market.returnable.lead_id) not in response.content.decode()
    assert Sale.objects.get(pk=market.returnable.pk).status == SaleStatus.SOLD


def test_an_inactive_buyer_is_forbidden_even_its_own_returns(market):
    buyer = market.contract_a.buyer
    buyer.active = False
    buyer.save(update_fields=["active"])

    response = post_return(
        market.a_key, {"lead_id": str(market.returnable.lead_id), "reason": "fraud"}
    )

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert Sale.objects.get(pk=market.returnable.pk).status == SaleStatus.SOLD


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_returns_take_only_a_post(market, method):
    client = Client(headers={"Authorization": f"Bearer {market.a_key}"})

    answered = getattr(client, method)(RETURNS)
    refused = getattr(Client(), method)(RETURNS)

    assert answered.status_code == 405
    assert "POST" in answered["Allow"]
    assert refused.status_code == 401  # nobody learns what the endpoint takes


def test_a_return_that_is_not_json_is_refused_not_failed(market):
    lead_id = str(market.returnable.lead_id)
    client = Client(headers={"Authorization": f"Bearer {market.a_key}"})

    malformed = client.post(RETURNS, '{"lead_id": ', content_type="application/json")
    form = client.post(RETURNS, {"lead_id": lead_id, "reason": "fraud"})

    assert malformed.status_code == 400
    assert form.status_code == 415
    assert Sale.objects.get(pk=market.returnable.pk).status == SaleStatus.SOLD


def test_a_buyer_with_no_sales_learns_nothing_from_an_existing_buyers_lead(db):
    sale = sold(ContractFactory(return_window_days=7))
    newcomer = buyer_api_key_create(buyer=BuyerFactory())[1]

    response = post_return(newcomer, {"lead_id": str(sale.lead_id), "reason": "fraud"})

    assert response.status_code == 404
    assert response.json()["detail"] == "You bought no lead with this id."
