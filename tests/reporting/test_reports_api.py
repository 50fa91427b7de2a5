"""The reporting API: staff only (session or token), same filters, documented in its schema."""

from __future__ import annotations

import pytest

from config.problems import PROBLEM_CONTENT_TYPE
from reporting.services import staff_token_create
from tests.leads.factories import SourceFactory, api_key_for
from tests.reporting.conftest import PERIOD, staff_user

pytestmark = pytest.mark.django_db
REPORTS = ["summary", "timeseries", "buyers", "sources"]


@pytest.mark.parametrize("report", REPORTS)
def test_an_anonymous_caller_is_asked_to_authenticate(client, report):
    response = client.get(f"/api/v1/reports/{report}/")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE


@pytest.mark.parametrize("report", REPORTS)
def test_a_partners_source_key_is_refused(client, report):
    key = api_key_for(SourceFactory())

    response = client.get(f"/api/v1/reports/{report}/", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 401


def test_staff_without_the_dashboard_permission_are_forbidden(client):
    client.force_login(staff_user("nobody"))

    response = client.get("/api/v1/reports/summary/")

    assert response.status_code == 403
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE


def test_a_token_of_a_user_who_is_not_staff_is_forbidden(client):
    user = staff_user("customer", "Sales", is_staff=False)
    _, token = staff_token_create(user=user, name="BI tool")

    response = client.get("/api/v1/reports/summary/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 403


@pytest.mark.parametrize("report", REPORTS)
def test_sales_staff_read_every_report_with_their_session(sales_client, world, report):
    response = sales_client.get(f"/api/v1/reports/{report}/", PERIOD)

    assert response.status_code == 200, response.content


def test_a_bi_tool_reads_the_summary_with_a_staff_token(client, world):
    _, token = staff_token_create(user=staff_user("bi", "Sales"), name="BI tool")

    response = client.get("/api/v1/reports/summary/", PERIOD, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    current = response.json()["current"]
    assert (current["received"], current["sold"], current["revenue"]) == (9, 4, "50.00")
    assert current["sell_through"] == 0.5714
    assert response.json()["previous"]["revenue"] == "10.00"


def test_the_report_filters_are_the_dashboards(sales_client, world):
    response = sales_client.get("/api/v1/reports/sources/", {**PERIOD, "source": world.source_b.pk})

    assert [row["source"] for row in response.json()] == ["Source B"]
    assert response.json()[0]["payout"] == "5.00"


def test_the_buyers_report_lists_rejection_reasons(sales_client, world):
    rows = sales_client.get("/api/v1/reports/buyers/", PERIOD).json()

    assert rows[0]["buyer"] == "Buyer X"
    assert rows[0]["top_rejection_reasons"][0] == {"reason": "Duplicate lead", "count": 1}


def test_the_timeseries_report_is_hourly_for_a_day(sales_client, world):
    body = sales_client.get("/api/v1/reports/timeseries/", PERIOD).json()

    assert body["granularity"] == "hour"
    assert sum(point["received"] for point in body["points"]) == 9


def test_a_bad_filter_is_a_problem_naming_it(sales_client):
    response = sales_client.get("/api/v1/reports/summary/", {"preset": "fortnight"})

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["type"] == "/api/problems/invalid-parameters"
    assert "preset" in response.json()["errors"]


def test_the_reporting_schema_documents_every_report_and_returns(client, db):
    schema = client.get("/api/schema/reporting/", {"format": "json"}).json()

    assert set(schema["paths"]) == {
        "/api/v1/reports/summary/",
        "/api/v1/reports/timeseries/",
        "/api/v1/reports/buyers/",
        "/api/v1/reports/sources/",
        "/api/v1/reports/tiers/",
        "/api/v1/returns/",
    }
    summary = schema["paths"]["/api/v1/reports/summary/"]["get"]
    assert {p["name"] for p in summary["parameters"]} == {
        "preset",
        "start",
        "end",
        "vertical",
        "source",
        "buyer",
    }
    assert {"StaffToken", "BuyerKey"} <= set(schema["components"]["securitySchemes"])
    returns = schema["paths"]["/api/v1/returns/"]["post"]["responses"]
    assert {"201", "400", "401", "404"} <= set(returns)
    assert returns["400"]["content"] == {
        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_the_partner_schema_stays_the_partners_own(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    assert not [path for path in schema["paths"] if "reports" in path or "returns" in path]
