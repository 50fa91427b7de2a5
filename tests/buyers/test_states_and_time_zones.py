"""Staff give a contract's territory by state names or codes, and pick time zones from a list:
through the admin's forms and the configuration file alike."""

from __future__ import annotations

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError

from buyers.models import Buyer, TerritoryKind, TerritoryRule
from leads.states import parse_states
from teams.models import TeamMember
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.marketplace.test_config import config_import, dump, export
from tests.teams.factories import TeamMemberFactory
from tests.test_admin import (
    add_inline_row,
    change_form_data,
    form_errors,
    formset_prefix,
    save_with_new_row,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.mark.parametrize(
    ("text", "codes", "bad"),
    [
        ("IL, in;wi", ["IL", "IN", "WI"], []),
        (" illinois ,New York\nDistrict of Columbia", ["IL", "NY", "DC"], []),
        ("new york new jersey TX", ["NY", "NJ", "TX"], []),
        ("West Virginia, virginia", ["WV", "VA"], []),
        ("Washington DC; washington d.c. D.C. Washington", ["DC", "DC", "DC", "WA"], []),
        ("Ilinois, New Yrok, XX TX", ["TX"], ["Ilinois", "New Yrok", "XX"]),
    ],
)
def test_a_pasted_list_of_states_reads_codes_and_names(text, codes, bad):
    assert parse_states(text) == (codes, bad)


def test_the_admin_stores_state_names_as_their_codes(admin_client):
    contract = ContractFactory(deliverable=True)

    response = save_with_new_row(
        admin_client,
        contract,
        TerritoryRule,
        mode="include",
        kind="states",
        values=" illinois, New York\ndistrict of columbia  TX",
    )

    assert response.status_code == 302, form_errors(response)
    rule = TerritoryRule.objects.get(contract=contract)
    assert rule.values == "IL\nNY\nDC\nTX"
    assert str(rule) == "Only 4 state(s)"


def test_the_admin_names_a_value_that_is_no_state(admin_client):
    contract = ContractFactory(deliverable=True)

    response = save_with_new_row(
        admin_client, contract, TerritoryRule, mode="include", kind="states", values="IL, Ilinois"
    )

    assert response.status_code == 200
    assert "Not US states (codes or names): Ilinois" in response.content.decode()
    assert not TerritoryRule.objects.filter(contract=contract).exists()


def test_an_uploaded_csv_of_state_names_is_added_to_the_typed_names(admin_client):
    contract = ContractFactory(deliverable=True)
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    add_inline_row(
        data,
        formset_prefix(page, TerritoryRule),
        mode="include",
        kind="states",
        values="New York",
        upload=SimpleUploadedFile("states.csv", b"state\nIllinois\nnew jersey\nny\n"),
    )
    response = admin_client.post(url(contract, "change", contract.pk), data)

    assert response.status_code == 302, form_errors(response)
    assert TerritoryRule.objects.get(contract=contract).value_list == ["NY", "IL", "NJ"]


def test_the_buyer_page_picks_its_time_zone_from_a_sorted_select(admin_client):
    buyer = BuyerFactory(time_zone="America/Chicago")

    page = admin_client.get(url(buyer, "change", buyer.pk))

    widget = page.context["adminform"].form["time_zone"]
    html = str(widget)
    assert html.startswith("<select")
    assert 'name="time_zone"' in html
    assert '<option value="America/Chicago" selected>' in html
    options = [value for value, _ in widget.field.widget.choices]
    assert options == sorted(options)
    assert "Pacific/Honolulu" in options
    data = change_form_data(page) | {"time_zone": "America/Denver"}
    response = admin_client.post(url(buyer, "change", buyer.pk), data)
    assert response.status_code == 302, form_errors(response)
    assert Buyer.objects.get(pk=buyer.pk).time_zone == "America/Denver"


def test_a_stored_zone_that_is_not_listed_stays_shown_and_is_named(admin_client):
    buyer = BuyerFactory()
    Buyer.objects.filter(pk=buyer.pk).update(time_zone="Mars/Olympus_Mons")

    page = admin_client.get(url(buyer, "change", buyer.pk))

    assert '<option value="Mars/Olympus_Mons" selected>' in page.content.decode()
    response = admin_client.post(url(buyer, "change", buyer.pk), change_form_data(page))
    assert response.status_code == 200
    assert form_errors(response) == [
        {"time_zone": ["'Mars/Olympus_Mons' is not an IANA time zone such as America/Chicago."]}
    ]


def test_a_team_member_picks_a_time_zone_from_the_select_too(admin_client):
    member = TeamMemberFactory(time_zone="Europe/Madrid")

    page = admin_client.get(url(TeamMember, "change", member.pk))

    html = str(page.context["adminform"].form["time_zone"])
    assert html.startswith("<select")
    assert '<option value="Europe/Madrid" selected>' in html
    team_page = admin_client.get(url(member.team, "change", member.team.pk))
    assert '<select name="members-0-time_zone"' in team_page.content.decode()


def test_a_configuration_file_may_name_states_and_is_stored_as_codes(tmp_path):
    ContractFactory(name="Everywhere", deliverable=True)
    document = yaml.safe_load(export())
    document["contracts"][0]["territory"] = [
        {"mode": "include", "kind": "states", "values": "Illinois, new york", "radius_miles": None}
    ]

    config_import(tmp_path, dump(document), "--reason", "by name")
    out = config_import(tmp_path, dump(document), "--reason", "again", "--dry-run")

    rule = TerritoryRule.objects.get(contract__name="Everywhere")
    assert (rule.kind, rule.values) == (TerritoryKind.STATES, "IL\nNY")
    assert "territory rules: changed" not in out


def test_a_configuration_file_with_an_unknown_state_or_zone_names_each(tmp_path):
    ContractFactory(name="Everywhere", buyer=BuyerFactory(company="Acme"), deliverable=True)
    document = yaml.safe_load(export())
    document["buyers"][0]["time_zone"] = "America/Chicgo"
    document["contracts"][0]["territory"] = [
        {"mode": "include", "kind": "states", "values": "Illinois, Texass", "radius_miles": None}
    ]

    with pytest.raises(CommandError) as error:
        config_import(tmp_path, dump(document), "--reason", "typos")

    message = str(error.value)
    assert (
        "buyers[0].time_zone: 'America/Chicgo' is not an IANA time zone such as "
        "America/Chicago." in message
    )
    assert "contracts[0].territory[0].values: Not US states (codes or names): Texass" in message
    assert Buyer.objects.get().time_zone == "America/Chicago"
