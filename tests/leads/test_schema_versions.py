"""Versioned vertical schemas: a save of a vertical's fields that changes what partners may or must
send makes the next version; each source posts in the version it is pinned to (the newest when it
was given the vertical) until staff move it to a newer one."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from leads.models import (
    FieldType,
    Lead,
    LeadStatus,
    SchemaPin,
    SchemaVersion,
    Vertical,
    VerticalField,
)
from leads.services import schema_version_record
from tests.leads.conftest import submit
from tests.leads.factories import SourceFactory, VerticalFactory, VerticalFieldFactory, api_key_for
from tests.test_admin import (
    add_inline_row,
    change_form_data,
    form_errors,
    formset_prefix,
    save_with_new_row,
    url,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def home() -> Vertical:
    """A vertical of three fields, two of them required."""
    vertical = VerticalFactory(
        slug="home-services", name="Home services", duplicate_fields=["email"]
    )
    VerticalFieldFactory(
        vertical=vertical, name="email", field_type=FieldType.EMAIL, required=True, position=1
    )
    VerticalFieldFactory(
        vertical=vertical, name="zip_code", field_type=FieldType.ZIP, required=True, position=2
    )
    VerticalFieldFactory(vertical=vertical, name="first_name", position=3)
    return vertical


@pytest.fixture
def ops() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("ops-lead", "ops@example.com", "pw-1234-x"))
    return client


def save_vertical(client: Client, vertical: Vertical, change=None, **new_field: Any):
    """Submit the vertical's admin page as rendered, with `change(data)` applied and, given
    `new_field`, one field added inline."""
    page = client.get(url(vertical, "change", vertical.pk))
    data = change_form_data(page)
    if change is not None:
        change(data)
    if new_field:
        add_inline_row(
            data,
            formset_prefix(page, VerticalField),
            **{
                "position": "9",
                "field_type": FieldType.STRING,
                **new_field,
            },
        )
    response = client.post(url(vertical, "change", vertical.pk), data)
    assert response.status_code == 302, form_errors(response)
    return response


def add_required_roof_age(client: Client, vertical: Vertical) -> None:
    save_vertical(client, vertical, name="roof_age", field_type=FieldType.INTEGER, required="on")


def lead(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "vertical": "home-services",
        "fields": {"email": f"owner{n}@example.com", "zip_code": "10001", **fields},
    }


def versions(vertical: Vertical) -> list[int]:
    return list(vertical.schema_versions.order_by("number").values_list("number", flat=True))


# --- The two: posting through the real HTTP intake -------------------------------------


def test_a_source_on_version_1_keeps_posting_after_a_required_field_is_added_in_version_2(
    client, ops, home
):
    early = SourceFactory(name="Early Partner", verticals=[home])
    key = api_key_for(early)
    assert submit(client, key, lead(1)).status_code == 202

    add_required_roof_age(ops, home)

    assert versions(home) == [1, 2]
    assert early.schema_pins.get().schema_version.number == 1
    response = submit(client, key, lead(2))
    assert response.status_code == 202, response.content
    # Version 1 has no roof_age: sent, it is an unknown field of the version the source posts in.
    refused = submit(client, key, lead(3, roof_age=12))
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["fields.roof_age"]
    assert refused.json()["errors"]["fields.roof_age"][0].startswith("Unknown field;")
    assert list(Lead.objects.filter(source=early).values_list("status", flat=True)) == [
        LeadStatus.INVALID,
        LeadStatus.ACCEPTED,
        LeadStatus.ACCEPTED,
    ]


def test_a_source_on_version_2_must_send_the_field_version_2_requires(client, ops, home):
    SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    late = SourceFactory(name="Late Partner", verticals=[home])
    key = api_key_for(late)
    assert late.schema_pins.get().schema_version.number == 2

    refused = submit(client, key, lead(1))
    accepted = submit(client, key, lead(2, roof_age="12"))

    assert refused.status_code == 400
    assert refused.json()["errors"] == {"fields.roof_age": ["This field is required."]}
    assert accepted.status_code == 202, accepted.content
    assert Lead.objects.get(pk=accepted.json()["id"]).data["roof_age"] == 12


def test_moving_a_source_to_version_2_makes_it_send_the_new_field(client, ops, home):
    early = SourceFactory(name="Early Partner", verticals=[home])
    key = api_key_for(early)
    add_required_roof_age(ops, home)
    assert submit(client, key, lead(1)).status_code == 202

    pin = early.schema_pins.get()
    pin.schema_version = home.schema_versions.get(number=2)
    pin.save()

    assert submit(client, key, lead(2)).status_code == 400
    assert submit(client, key, lead(3, roof_age=4)).status_code == 202


# --- Versions: one per save that changes the field set, none otherwise --------------------------


def test_the_first_pinning_records_the_fields_as_version_1(home):
    assert versions(home) == []

    SourceFactory(verticals=[home])

    first = home.schema_versions.get()
    assert first.number == 1
    assert [f["name"] for f in first.fields] == ["email", "zip_code", "first_name"]
    assert first.fields[0] == {
        "name": "email",
        "label": "Email",
        "field_type": "email",
        "required": True,
        "choices": [],
        "min_value": None,
        "max_value": None,
        "max_length": None,
        "in_ping": False,
        "is_pii": False,
        "help_text": "",
    }
    assert first.summary == "First version: 3 fields, 2 required."


def test_one_admin_save_of_many_field_changes_makes_one_version_saying_what_changed(ops, home):
    SourceFactory(verticals=[home])
    first_name = home.fields.get(name="first_name")

    def change(data: dict[str, Any]) -> None:
        prefix = formset_prefix(ops.get(url(home, "change", home.pk)), type(first_name))
        index = next(
            k.split("-")[1]
            for k, v in data.items()
            if k.startswith(f"{prefix}-") and k.endswith("-id") and v == str(first_name.pk)
        )
        data[f"{prefix}-{index}-required"] = "on"
        data[f"{prefix}-{index}-max_length"] = "40"

    save_vertical(
        ops,
        home,
        change,
        name="plan",
        field_type=FieldType.CHOICE,
        choices='["basic", "premium"]',
    )

    assert versions(home) == [1, 2]
    second = home.schema_versions.get(number=2)
    assert second.created_by.username == "ops-lead"
    assert second.summary.splitlines() == [
        "Added optional field plan (choice).",
        "Changed field first_name: required no -> yes; max length none -> 40.",
    ]
    assert [f["name"] for f in second.fields] == ["email", "zip_code", "first_name", "plan"]


def test_a_save_that_changes_nothing_a_partner_sends_makes_no_version(ops, home):
    SourceFactory(verticals=[home])

    save_vertical(ops, home)

    def relabel(data: dict[str, Any]) -> None:
        for name in [k for k in data if k.endswith("-label") and data[k] == "Email"]:
            data[name] = "E-mail address"
        data["description"] = "Plumbers, roofers and the like."

    save_vertical(ops, home, relabel)

    assert versions(home) == [1]
    assert home.fields.get(name="email").label == "E-mail address"


def test_removing_a_field_makes_a_version(home):
    SourceFactory(verticals=[home])
    home.fields.get(name="first_name").delete()

    version = schema_version_record(vertical=home)

    assert version is not None
    assert (version.number, version.summary) == (2, "Removed field first_name.")
    assert schema_version_record(vertical=home) is None


# --- Pinning: the newest when a source is given the vertical ----------------------------------


def test_a_source_is_pinned_to_the_newest_version_whenever_it_is_given_the_vertical(ops, home):
    early = SourceFactory(verticals=[home])
    add_required_roof_age(ops, home)
    late = SourceFactory()

    late.verticals.add(home)
    home.sources.add(SourceFactory(name="Added from the vertical"))

    pins = dict(SchemaPin.objects.values_list("source__name", "schema_version__number"))
    assert pins == {early.name: 1, late.name: 2, "Added from the vertical": 2}


def test_a_source_that_loses_a_vertical_loses_its_pin_and_gets_the_newest_again(ops, home):
    source = SourceFactory(verticals=[home])
    add_required_roof_age(ops, home)

    source.verticals.remove(home)
    assert not source.schema_pins.exists()
    source.verticals.add(home)

    assert source.schema_pins.get().schema_version.number == 2


def test_staff_move_a_source_to_a_newer_version_on_its_page(ops, home):
    source = SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    page = ops.get(url(source, "change", source.pk))
    assert "Versions of the verticals" in page.content.decode()
    data = change_form_data(page)
    (field,) = [k for k in data if k.endswith("-schema_version")]
    data[field] = str(home.schema_versions.get(number=2).pk)

    response = ops.post(url(source, "change", source.pk), data)

    assert response.status_code == 302, form_errors(response)
    pin = source.schema_pins.get()
    assert pin.schema_version.number == 2
    assert pin.history.latest().history_user.username == "ops-lead"


def test_a_source_is_never_moved_back_to_an_older_version(ops, home):
    source = SourceFactory(name="Late Partner")
    schema_version_record(vertical=home)
    add_required_roof_age(ops, home)
    source.verticals.add(home)
    assert source.schema_pins.get().schema_version.number == 2
    page = ops.get(url(source, "change", source.pk))
    data = change_form_data(page)
    (field,) = [k for k in data if k.endswith("-schema_version")]
    data[field] = str(home.schema_versions.get(number=1).pk)

    response = ops.post(url(source, "change", source.pk), data)

    assert response.status_code == 200
    errors = str(form_errors(response))
    assert "a source is moved to a newer version only, never back to version 1" in errors
    assert source.schema_pins.get().schema_version.number == 2


def test_the_vertical_page_lists_its_versions_with_who_when_and_what_changed(ops, home):
    SourceFactory(verticals=[home])
    add_required_roof_age(ops, home)

    text = ops.get(url(home, "change", home.pk)).content.decode()
    version_page = ops.get(url(SchemaVersion, "change", home.schema_versions.get(number=2).pk))

    assert "Versions of the fields" in text
    assert "Added required field roof_age (integer)." in text
    assert "ops-lead" in text
    assert version_page.status_code == 200
    assert "roof_age" in version_page.content.decode()


def test_an_older_version_is_frozen(home):
    SourceFactory(verticals=[home])
    first = home.schema_versions.get()
    first.fields = first.fields[:1]

    with pytest.raises(Exception, match="frozen"):
        first.full_clean()


# --- The partner API serves each version ------------------------------------------------------


def api(client: Client, key: str, path: str):
    return client.get(f"/api/v1/verticals/{path}", HTTP_AUTHORIZATION=f"Bearer {key}")


def test_the_verticals_api_shows_a_source_the_fields_of_the_version_it_posts_in(client, ops, home):
    early = SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    late = SourceFactory(name="Late Partner", verticals=[home])

    for source, version, names in (
        (early, 1, ["email", "zip_code", "first_name"]),
        (late, 2, ["email", "zip_code", "first_name", "roof_age"]),
    ):
        key = api_key_for(source)
        (listed,) = api(client, key, "").json()
        one = api(client, key, "home-services/").json()
        assert listed == one
        assert (one["version"], one["newest_version"]) == (version, 2)
        assert [f["name"] for f in one["fields"]] == names


def test_the_api_serves_every_version_the_newest_and_their_list(client, ops, home):
    early = SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    key = api_key_for(early)

    listed = api(client, key, "home-services/versions/")
    first = api(client, key, "home-services/versions/1/")
    second = api(client, key, "home-services/versions/2/")
    newest = api(client, key, "home-services/versions/newest/")

    assert listed.status_code == 200
    assert [(v["number"], v["newest"], v["yours"]) for v in listed.json()] == [
        (1, False, True),
        (2, True, False),
    ]
    assert listed.json()[1]["summary"] == "Added required field roof_age (integer)."
    assert listed.json()[1]["url"] == "http://testserver/api/v1/verticals/home-services/versions/2/"
    assert [f["name"] for f in first.json()["fields"]] == ["email", "zip_code", "first_name"]
    assert newest.json() == second.json()
    roof_age = second.json()["fields"][-1]
    assert (roof_age["name"], roof_age["type"], roof_age["required"]) == (
        "roof_age",
        "integer",
        True,
    )
    assert (second.json()["vertical"], second.json()["number"]) == ("home-services", 2)


def test_another_source_s_vertical_and_a_version_that_is_not_are_404(client, ops, home):
    outsider = api_key_for(SourceFactory(name="Outsider", verticals=[VerticalFactory()]))
    key = api_key_for(SourceFactory(name="Partner", verticals=[home]))

    for path in (
        "home-services/versions/",
        "home-services/versions/1/",
        "home-services/versions/newest/",
    ):
        assert api(client, outsider, path).status_code == 404
    assert api(client, key, "home-services/versions/2/").status_code == 404
    assert api(client, key, "home-services/versions/1/").status_code == 200


# --- Posting instructions ---------------------------------------------------------------------


def instructions(client: Client, source) -> str:
    page = client.get(reverse("admin:leads_source_instructions", args=[source.pk]))
    assert page.status_code == 200
    return page.content.decode()


def test_the_posting_instructions_show_the_source_s_version_and_its_fields(ops, home):
    early = SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    late = SourceFactory(name="Late Partner", verticals=[home])

    on_1, on_2 = instructions(ops, early), instructions(ops, late)

    assert "You post in <strong>version 1</strong> of its fields" in on_1
    assert "Version 2 is the newest" in on_1
    assert "roof_age" not in on_1
    assert "You post in <strong>version 2</strong> of its fields" in on_2
    assert "is the newest" not in on_2
    assert "<td>roof_age" in on_2


# --- Mappings, criteria and templates are checked against every version they serve ------------


@pytest.fixture
def two_versions(ops, home) -> tuple[Any, Any]:
    """Early Partner on version 1, Late Partner on version 2, which requires roof_age."""
    early = SourceFactory(name="Early Partner", verticals=[home])
    add_required_roof_age(ops, home)
    late = SourceFactory(name="Late Partner", verticals=[home])
    return early, late


def paused_contract(home: Vertical, **fields: Any):
    from buyers.models import Buyer, ContractStatus
    from tests.buyers.factories import BuyerFactory, ContractFactory

    buyer = Buyer.objects.filter(company="Roofers Inc").first() or BuyerFactory(
        company="Roofers Inc"
    )
    return ContractFactory(
        buyer=buyer,
        vertical=home,
        name=fields.pop("name", "Main"),
        status=ContractStatus.PAUSED,
        paused_reason="not under test",
        **fields,
    )


def map_roof_age(client: Client, contract, **fields: Any):
    from buyers.models import FieldMapping

    return save_with_new_row(
        client,
        contract,
        FieldMapping,
        position="0",
        source_field="roof_age",
        target_field="RoofAge",
        transform="none",
        applies_to="both",
        **fields,
    )


def test_a_mapping_of_a_field_a_served_version_lacks_is_refused_listing_the_versions(
    ops, home, two_versions
):
    contract = paused_contract(home)

    response = map_roof_age(ops, contract)

    assert response.status_code == 200
    (errors,) = form_errors(response)
    assert errors == [
        "Field mapping roof_age → RoofAge reads a field that Home services lacks in a version "
        "this contract serves: roof_age in version 1 (sources on it: Early Partner). Change the "
        "part, add the field, or move those sources to a version that has it."
    ]
    assert not contract.mappings.exists()


def test_a_mapping_with_a_default_or_a_contract_serving_only_newer_versions_may_read_it(
    ops, home, two_versions
):
    from buyers.models import SourceFilter

    _, late = two_versions
    with_default = paused_contract(home)
    only_late = paused_contract(home, name="Late only", source_filter=SourceFilter.ALLOW)
    only_late.sources.set([late])

    assert map_roof_age(ops, with_default, default_value="0").status_code == 302
    assert map_roof_age(ops, only_late).status_code == 302


def test_criteria_and_templates_are_checked_against_the_served_versions(ops, home, two_versions):
    from buyers.models import DeliveryEndpoint, FieldCriterion

    contract = paused_contract(home)
    criterion = save_with_new_row(
        ops, contract, FieldCriterion, field="roof_age", operator="lte", value="20"
    )
    endpoint = save_with_new_row(
        ops,
        contract,
        DeliveryEndpoint,
        kind="post",
        url="https://buyer.example/post",
        method="POST",
        body_format="json",
        body_template='{"age": "{{ fields[\'roof_age\'] }}", "email": "{{ fields.email }}"}',
        headers="{}",
        query="{}",
        auth_type="none",
        connect_timeout_ms="1000",
        read_timeout_ms="5000",
    )

    assert "Criterion on roof_age reads a field" in str(form_errors(criterion))
    assert "The post endpoint's template reads a field" in str(form_errors(endpoint))
    assert "roof_age in version 1 (sources on it: Early Partner)" in str(form_errors(endpoint))


def test_removing_a_field_a_contract_reads_is_refused_naming_the_contract(ops, home):
    SourceFactory(verticals=[home])
    contract = paused_contract(home)
    contract.mappings.create(source_field="first_name", target_field="FirstName")
    page = ops.get(url(home, "change", home.pk))
    data = change_form_data(page)
    prefix = formset_prefix(page, VerticalField)
    (row,) = [k for k, v in data.items() if k.startswith(prefix) and v == "first_name"]
    data[row.replace("-name", "-DELETE")] = "on"

    response = ops.post(url(home, "change", home.pk), data)

    assert response.status_code == 200
    errors = str(form_errors(response))
    assert f"Contract {contract}: Field mapping first_name → FirstName reads first_name, " in errors
    assert "which the newest version would lose (every contract serves the newest)" in errors
    assert home.fields.filter(name="first_name").exists()
    assert versions(home) == [1]


def test_a_source_is_not_moved_to_a_version_lacking_a_field_a_contract_serving_it_reads(ops, home):
    early = SourceFactory(name="Early Partner", verticals=[home])
    first_name = home.fields.get(name="first_name")
    first_name.delete()
    schema_version_record(vertical=home)  # version 2: no first_name
    VerticalFieldFactory(vertical=home, name="first_name", position=3)
    schema_version_record(vertical=home)  # version 3: first_name again
    paused_contract(home).criteria.create(field="first_name", operator="exists")
    page = ops.get(url(early, "change", early.pk))
    data = change_form_data(page)
    (field,) = [k for k in data if k.endswith("-schema_version")]

    data[field] = str(home.schema_versions.get(number=2).pk)
    refused = ops.post(url(early, "change", early.pk), data)
    data[field] = str(home.schema_versions.get(number=3).pk)
    moved = ops.post(url(early, "change", early.pk), data)

    assert refused.status_code == 200
    assert "reads first_name, which version 2 lacks" in str(form_errors(refused))
    assert moved.status_code == 302, form_errors(moved)
    assert early.schema_pins.get().schema_version.number == 3


# --- A field's own admin page ------------------------------------------------------------------


def test_moving_a_field_to_another_vertical_on_its_page_records_a_version_of_both(ops, home):
    other = VerticalFactory(slug="auto", name="Auto")
    SourceFactory(verticals=[home, other])
    first_name = home.fields.get(name="first_name")
    page = ops.get(url(first_name, "change", first_name.pk))
    data = change_form_data(page)
    data["vertical"] = str(other.pk)

    response = ops.post(url(first_name, "change", first_name.pk), data)

    assert response.status_code == 302, form_errors(response)
    assert versions(home) == [1, 2]
    newest = home.schema_versions.get(number=2)
    assert [f["name"] for f in newest.fields] == ["email", "zip_code"]
    assert newest.summary == "Removed field first_name."
    assert versions(other) == [1, 2]


def test_renaming_or_deleting_a_field_a_contract_reads_on_its_page_is_refused(ops, home):
    SourceFactory(verticals=[home])
    contract = paused_contract(home)
    contract.mappings.create(source_field="first_name", target_field="FirstName")
    first_name = home.fields.get(name="first_name")
    page = ops.get(url(first_name, "change", first_name.pk))
    data = change_form_data(page)
    data["name"] = "given_name"

    renamed = ops.post(url(first_name, "change", first_name.pk), data)
    deleted = ops.post(url(first_name, "delete", first_name.pk), {"post": "yes"})

    assert renamed.status_code == 200
    assert "reads first_name, which the newest version would lose" in str(form_errors(renamed))
    assert deleted.status_code == 200
    assert "reads first_name, which the newest version would lose" in deleted.content.decode()
    assert home.fields.filter(name="first_name").exists()
    assert versions(home) == [1]


def test_sources_pinned_to_an_empty_version_move_on_with_the_verticals_first_fields():
    vertical = VerticalFactory(slug="pets")
    early = SourceFactory(name="Early", verticals=[vertical])  # pinned to version 1: no fields
    VerticalFieldFactory(vertical=vertical, name="pet_type", required=True)

    second = schema_version_record(vertical=vertical)

    assert second is not None
    assert second.number == 2
    assert SchemaPin.objects.get(source=early).schema_version == second
    # A version with fields is kept by those pinned to it.
    later = SourceFactory(name="Later", verticals=[vertical])
    VerticalFieldFactory(vertical=vertical, name="pet_age", required=True)
    third = schema_version_record(vertical=vertical)
    assert third is not None
    assert third.number == 3
    assert SchemaPin.objects.get(source=later).schema_version == second
