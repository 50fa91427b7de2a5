"""The dashboard pages: who may see them, what they show, and their CSV exports."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Group

from config.masking import mask_email, mask_name, mask_phone
from reporting.views import SOURCE_COLUMNS
from tests.reporting.conftest import PERIOD, staff_user

pytestmark = pytest.mark.django_db
PAGES = ["/dashboard/", "/dashboard/buyers/", "/dashboard/sources/"]
EXPORTS = ["summary", "timeseries", "buyers", "sources", "tiers", "leads"]


def rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.parametrize("page", PAGES)
def test_sales_staff_see_every_dashboard_page(sales_client, world, page):
    response = sales_client.get(page, PERIOD)

    assert response.status_code == 200
    assert b'<meta http-equiv="refresh" content="60">' in response.content


@pytest.mark.parametrize("page", PAGES)
def test_staff_without_a_group_are_forbidden(client, page):
    client.force_login(staff_user("nobody"))

    assert client.get(page).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_an_anonymous_visitor_is_sent_to_log_in(client, db, page):
    response = client.get(page)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_user_in_sales_who_is_not_staff_is_sent_to_log_in(client):
    client.force_login(staff_user("outsider", "Sales", is_staff=False))

    assert client.get("/dashboard/").status_code == 302


def test_the_overview_shows_the_figures_and_draws_its_charts_inline(sales_client, world):
    page = sales_client.get("/dashboard/", PERIOD).content.decode()

    assert "$50.00" in page  # revenue
    assert "57%" in page  # sell-through
    assert page.count("<svg") == 2
    assert "<script" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_buyers_page_lists_each_buyer(sales_client, world):
    page = sales_client.get("/dashboard/buyers/", PERIOD).content.decode()

    assert "Buyer X" in page
    assert "Duplicate lead (1)" in page


def test_the_filters_travel_in_the_links_to_other_pages_and_exports(sales_client, world):
    params = {**PERIOD, "source": world.source_a.pk}
    page = sales_client.get("/dashboard/sources/", params).content.decode()

    assert '<td class="text">Source A</td>' in page
    assert '<td class="text">Source B</td>' not in page
    assert (
        f"/dashboard/export/sources.csv?start=2025-01-07&amp;end=2025-01-07&amp;source={world.source_a.pk}"
        in page
    )


def test_a_bad_filter_is_shown_not_crashed_on(sales_client, db):
    response = sales_client.get("/dashboard/", {"start": "2025-01-07"})

    assert response.status_code == 400
    assert b"Give both dates" in response.content


@pytest.mark.parametrize("table", EXPORTS)
def test_every_table_exports_to_csv(sales_client, world, table):
    response = sales_client.get(f"/dashboard/export/{table}.csv", PERIOD)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert len(rows(response)) > 1


def test_the_sources_csv_holds_the_tables_figures(sales_client, world):
    header, a, b = rows(sales_client.get("/dashboard/export/sources.csv", PERIOD))

    assert header == SOURCE_COLUMNS  # the dashboard table's columns, in its order
    assert a == [
        "Source A",
        "6",
        "1",
        "1",
        "4",
        "3",
        "0.75",
        "50.00",
        "16.00",
        "34.00",
        "1",
        "0",
        "0",
        # No inbound pings: none counted, no rate.
        "0",
        "",
        "",
    ]
    assert b[0] == "Source B"


def test_the_summary_csv_compares_with_the_previous_period(sales_client, world):
    table = {
        row[0]: row[1:] for row in rows(sales_client.get("/dashboard/export/summary.csv", PERIOD))
    }

    assert table["Received"] == ["9", "2"]
    assert table["Revenue"] == ["50.00", "10.00"]


def test_the_lead_export_masks_contact_details_for_sales(sales_client, world):
    header, *leads = rows(sales_client.get("/dashboard/export/leads.csv", PERIOD))

    email, phone = header.index("email"), header.index("phone")
    assert len(leads) == 9  # not the test lead, not the day before
    for lead in leads:
        assert "***@example.com" in lead[email]
        assert lead[phone].startswith("***")
        assert len(lead[phone]) == 7


def test_ops_export_leads_unmasked(ops_client, world):
    header, *leads = rows(ops_client.get("/dashboard/export/leads.csv", PERIOD))

    emails = {lead[header.index("email")] for lead in leads}
    assert world.leads["A1"].email in emails


def test_a_spreadsheet_formula_in_a_sub_id_is_defused(ops_client, world):
    from leads.models import Lead

    Lead.objects.filter(pk=world.leads["A1"].pk).update(sub_id="=HYPERLINK(1)")
    header, *leads = rows(ops_client.get("/dashboard/export/leads.csv", PERIOD))

    assert "'=HYPERLINK(1)" in {lead[header.index("sub_id")] for lead in leads}


def test_an_unknown_export_is_not_found(sales_client, db):
    assert sales_client.get("/dashboard/export/salaries.csv").status_code == 404


@pytest.mark.parametrize(
    ("email", "masked"),
    [("jane.doe@example.com", "j***@example.com"), ("", ""), ("not-an-email", "***")],
)
def test_emails_keep_their_first_letter_and_domain(email, masked):
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("phone", "masked"),
    [("+13125550142", "***0142"), ("(312) 555-0142", "***0142"), ("", ""), ("12", "***")],
)
def test_phones_keep_their_last_four_digits(phone, masked):
    assert mask_phone(phone) == masked


def test_names_keep_their_initial():
    assert mask_name("Jane") == "J***"


def test_the_groups_exist_with_their_permissions(db):
    sales = set(Group.objects.get(name="Sales").permissions.values_list("codename", flat=True))
    ops = set(Group.objects.get(name="Ops").permissions.values_list("codename", flat=True))

    assert {"view_dashboard", "view_sale", "view_contract"} <= sales
    assert not {p for p in sales if not p.startswith("view_")}
    # Leads and attempts with personal data masked: no permission to see it unmasked.
    assert {"view_lead", "view_attempt"} <= sales
    assert "view_unmasked_pii" not in sales
    assert {"view_dashboard", "view_unmasked_pii", "change_contract", "delete_contract"} <= ops
    assert not {"delete_lead", "delete_sale", "delete_attempt"} & ops
    assert Group.objects.get(name="Admin").permissions.count() > len(ops)
