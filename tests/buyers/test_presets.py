"""The integration catalogue: every preset reads, applies through the models' own validation,
and leaves a contract that cannot deliver yet paused, saying what is missing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse

from buyers.models import ContractSecret, ContractStatus, DeliveryMethod, EndpointKind, PriceModel
from buyers.presets import PRESETS_DIR, PresetError, _read, preset_apply, presets
from buyers.readiness import contract_delivery_problems
from buyers.services import contract_resume
from tests.buyers.factories import ContractFactory
from tests.demo import demo_vertical

pytestmark = pytest.mark.django_db

# The catalogue the issue asks for, at least.
REQUIRED_KINDS = {
    "generic-json-ping-post",
    "generic-xml-ping-post",
    "generic-form-post",
    "leadconduit",
}


def test_the_catalogue_holds_the_generic_formats_and_names_a_spec_for_each():
    catalogue = presets()
    assert set(catalogue) >= REQUIRED_KINDS
    for preset in catalogue.values():
        assert preset.spec.strip(), preset.slug
        assert preset.parts["endpoints"], preset.slug


# Fields a preset reads that the demo vertical lacks: its description tells ops to add them.
FIELDS_OPS_ADD = {"novo-partner-lead": "months_at_residence"}


@pytest.mark.parametrize("slug", sorted(presets()))
def test_each_preset_applies_and_lists_what_ops_must_still_add(slug):
    preset = presets()[slug]
    contract = ContractFactory(
        vertical=demo_vertical(preset.vertical), fixed_price=Decimal("20.00")
    )

    applied = preset_apply(contract=contract, slug=slug)

    contract.refresh_from_db()
    assert contract.preset == slug
    assert contract.price_model == preset.price_model
    assert contract.delivery_method == DeliveryMethod.HTTP
    kinds = {e.kind for e in contract.endpoints.all()}
    assert EndpointKind.POST in kinds
    if preset.price_model == PriceModel.PING_POST:
        assert EndpointKind.PING in kinds
    assert contract.mappings.count() == len(preset.parts["mappings"])
    assert contract.response_rules.count() == len(preset.parts["response_rules"])
    needed = {s.name for s in preset.secrets}
    # On the vertical it is written for, only the secrets (and the fields the preset says ops
    # must add) are left.
    gap = FIELDS_OPS_ADD.get(slug, "\0")
    left = [p for p in applied.problems if "does not hold" not in p and gap not in p]
    assert left == [], applied.problems
    assert contract.status == ContractStatus.PAUSED
    assert all(name in contract.paused_reason for name in needed)
    for name in needed:
        ContractSecret.objects.create(contract=contract, name=name, value="1234567890")
    assert all(gap in p for p in contract_delivery_problems(contract))


def test_a_preset_for_another_verticals_fields_is_saved_and_the_contract_paused_to_fit_it():
    contract = ContractFactory()  # a vertical without the fields the preset reads
    ContractSecret.objects.create(contract=contract, name="api_key", value="k-123")

    applied = preset_apply(contract=contract, slug="generic-json-ping-post")

    contract.refresh_from_db()
    assert contract.endpoints.count() == 2
    assert contract.status == ContractStatus.PAUSED
    assert any("has no attribute 'zip_code'" in p for p in applied.problems), applied.problems
    assert "line" in contract.paused_reason


def test_applying_replaces_the_contracts_delivery_and_pauses_it_for_its_urls_to_be_checked():
    contract = ContractFactory(deliverable=True, vertical=demo_vertical("auto-insurance"))
    ContractSecret.objects.create(contract=contract, name="api_key", value="k-123")

    applied = preset_apply(contract=contract, slug="generic-json-ping-post")

    contract.refresh_from_db()
    assert applied.problems == []
    assert {e.url for e in contract.endpoints.all()} == {
        "https://buyer.example/api/ping",
        "https://buyer.example/api/post",
    }
    # A preset's URLs are placeholders: never live on them.
    assert contract.status == ContractStatus.PAUSED
    assert "Check the buyer's URLs" in contract.paused_reason
    assert contract_resume(contract=contract)


def test_a_fixed_price_preset_wants_the_contracts_price_first():
    fixed = [p.slug for p in presets().values() if p.price_model == PriceModel.FIXED]
    contract = ContractFactory(fixed_price=None)

    with pytest.raises(PresetError, match="set the contract's price first"):
        preset_apply(contract=contract, slug=fixed[0])
    with pytest.raises(PresetError, match="no preset"):
        preset_apply(contract=contract, slug="nope")


def test_a_preset_file_with_unknown_keys_or_a_wrong_slug_is_refused(tmp_path: Path):
    bad = tmp_path / "mine.toml"
    bad.write_text('slug = "mine"\nname = "x"\nspec = "y"\nprice_model = "fixed"\nextra = 1\n')
    with pytest.raises(PresetError, match="unknown keys extra"):
        _read(bad)
    bad.write_text('slug = "other"\nname = "x"\nspec = "y"\nprice_model = "fixed"\n')
    with pytest.raises(PresetError, match="its slug must be its file name"):
        _read(bad)
    assert sorted(p.stem for p in PRESETS_DIR.glob("*.toml")) == sorted(presets())


def test_ops_fill_a_contract_from_the_contract_page(admin_client, settings):
    settings.SECURE_SSL_REDIRECT = False
    contract = ContractFactory(vertical=demo_vertical("auto-insurance"))
    page = reverse("admin:buyers_contract_preset", args=[contract.pk])

    listing = admin_client.get(page).content.decode()
    assert "Generic XML ping/post" in listing

    response = admin_client.post(page, {"preset": "generic-json-ping-post"})

    assert response.status_code == 302
    contract.refresh_from_db()
    assert contract.preset == "generic-json-ping-post"
    assert contract.status == ContractStatus.PAUSED
    assert "api_key" in contract.paused_reason
    refused = admin_client.post(page, {"preset": ""})
    assert "This field is required." in refused.content.decode()
