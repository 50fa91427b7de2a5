"""Config import: what a review found by trying it (bad values, prune, placeholders)."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import CommandError

from buyers.models import Contract, ContractSecret, ContractStatus, DeliveryEndpoint, EndpointKind
from leads.models import VerticalField
from marketplace.document import load
from tests.buyers.factories import BuyerFactory
from tests.marketplace.test_config import (
    PLACEHOLDER,
    config_import,
    every_kind_of_part,
    export,
    fill_placeholders,
    wipe_configuration,
)

pytestmark = pytest.mark.django_db


def refused(tmp_path, text: str, *args: str) -> str:
    with pytest.raises(CommandError) as caught:
        config_import(tmp_path, text, "--reason", "review", *args)
    return str(caught.value)


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        # Too many digits to be a price: told by the field, not an InvalidOperation.
        (lambda doc: doc["contracts"][0].update(floor_price="1e30"), "contracts[0].floor_price"),
        # YAML reads `closes_at: 17:30` unquoted as the number 1050.
        (
            lambda doc: doc["contracts"][0]["schedule"][0].update(closes_at=1050),
            "contracts[0].schedule[0].closes_at",
        ),
        (
            lambda doc: doc["contracts"][0]["closed_dates"][0].update(date=20261225),
            "contracts[0].closed_dates[0].date",
        ),
        # A whole number is not cut from a fraction; infinity (JSON's 1e400) is no number.
        (lambda doc: doc["contracts"][0].update(priority=1.5), "contracts[0].priority"),
        (
            lambda doc: doc["contracts"][0]["caps"][0].update(max_leads=float("inf")),
            "contracts[0].caps[0].max_leads",
        ),
        # A list where one value is meant is not written as its Python text.
        (lambda doc: doc["buyers"][0].update(company=["Summit"]), "buyers[0].company"),
        (lambda doc: doc["buyers"][0].update(notes={"a": 1}), "buyers[0].notes"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_with_its_path_not_a_traceback(tmp_path, edit, path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    edit(doc)
    message = refused(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    assert f"  {path}: " in message


def test_an_unquoted_time_in_yaml_is_a_clear_error(tmp_path):
    every_kind_of_part()
    text = export().replace("closes_at: '17:30:00'", "closes_at: 17:30")
    assert "closes_at: 17:30\n" in text
    message = refused(tmp_path, text)
    assert "contracts[0].schedule[0].closes_at: give a time as 'HH:MM', in quotes" in message


def test_prune_cannot_leave_an_active_contract_without_its_post_endpoint(tmp_path):
    every_kind_of_part()
    Contract.objects.filter(name="Exclusive").update(status=ContractStatus.ACTIVE, paused_reason="")
    doc = yaml.safe_load(export())
    config_import(tmp_path, yaml.safe_dump(doc), "--reason", "as it is")  # it can deliver
    doc["contracts"][0]["endpoints"] = [
        e for e in doc["contracts"][0]["endpoints"] if e["kind"] != EndpointKind.POST
    ]
    message = refused(tmp_path, yaml.safe_dump(doc), "--prune")
    assert "contracts[0].status: An active contract must be able to deliver." in message
    assert DeliveryEndpoint.objects.filter(contract__name="Exclusive").count() == 2


def test_prune_cannot_remove_a_field_that_the_vertical_still_uses(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    fields = doc["verticals"][0]["fields"]
    doc["verticals"][0]["fields"] = [f for f in fields if f["name"] not in {"email", "credit"}]
    message = refused(tmp_path, yaml.safe_dump(doc), "--prune")
    # The duplicate rule, a scoring rule and the source's posting profile name them.
    assert "verticals[0].duplicate_fields: Duplicates are compared on email" in message
    assert "verticals[0].scoring_rules[" in message
    assert "sources[0].posting_profile" in message
    assert set(VerticalField.objects.values_list("name", flat=True)) == {"email", "credit", "age"}


def test_prune_cannot_delete_a_buyer_whose_contract_the_file_keeps(tmp_path):
    every_kind_of_part()
    BuyerFactory(company="Old buyer")
    doc = yaml.safe_load(export())
    doc["buyers"] = [b for b in doc["buyers"] if b["company"] != "Summit Mutual"]
    message = refused(tmp_path, yaml.safe_dump(doc), "--prune")
    assert "contracts[0].buyer: names buyer Summit Mutual, which --prune deletes" in message
    assert "buyers: deleting buyer Summit Mutual would delete contract " in message
    assert Contract.objects.filter(buyer__company="Summit Mutual").count() == 2


def test_prune_cannot_delete_what_takes_along_a_section_the_file_leaves_out(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    file = {"leadswitch": 1, "buyers": []}  # no contracts section: its contracts are kept
    message = refused(tmp_path, yaml.safe_dump(file), "--prune")
    assert "buyers: deleting buyer Summit Mutual would delete contract " in message
    assert Contract.objects.count() == 2
    # With the contracts (and what names them) left out too, it goes, each with its history.
    file = {"leadswitch": 1, "buyers": [], "contracts": [], "notification_subscriptions": []}
    config_import(tmp_path, yaml.safe_dump(file), "--reason", "closing", "--prune")
    assert not Contract.objects.exists()
    assert set(
        Contract.history.filter(history_type="-").values_list("history_change_reason", flat=True)
    ) == {"closing"}
    assert doc  # the export it started from


def test_prune_cannot_delete_a_source_a_contract_lists(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    doc["sources"] = []
    message = refused(tmp_path, yaml.safe_dump(doc), "--prune")
    assert "contracts[0].sources[0]: names source Acme Media, which --prune deletes" in message


def test_secrets_whose_names_differ_only_in_case_get_a_variable_each(tmp_path, monkeypatch):
    every_kind_of_part()
    contract = Contract.objects.get(name="Exclusive")
    ContractSecret.objects.create(contract=contract, name="API_KEY", value="upper-secret")
    first = export()
    variables = PLACEHOLDER.findall(first)
    assert len(variables) == len(set(variables)) == 5
    lower, upper = (
        PLACEHOLDER.search(yaml.safe_load(first)["contracts"][0]["secrets"][i]["value"]).group(1)
        for i in (1, 0)  # sorted: API_KEY, api_key
    )
    monkeypatch.setenv(lower, "new-lower")
    monkeypatch.setenv(upper, "new-upper")
    config_import(tmp_path, first, "--reason", "rotate")
    assert dict(contract.secrets.values_list("name", "value")) == {
        "api_key": "new-lower",
        "API_KEY": "new-upper",
    }
    fill_placeholders(monkeypatch, first)
    wipe_configuration()
    config_import(tmp_path, first, "--reason", "round trip")
    assert export() == first


def test_a_row_without_identity_that_is_not_valid_is_reported_once(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    doc["contracts"][0]["schedule"][0]["weekday"] = 9
    message = refused(tmp_path, yaml.safe_dump(doc))
    assert message.splitlines()[1:] == [
        "  contracts[0].schedule[0].weekday: Value 9 is not a valid choice."
    ]


def test_a_file_that_pauses_a_contract_must_say_why_as_contract_pause_does(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    doc["contracts"][0].update(status="paused", paused_reason="")

    message = refused(tmp_path, yaml.safe_dump(doc, sort_keys=False))

    assert "  contracts[0].paused_reason: Say why the contract is paused." in message


def test_a_file_that_resumes_a_contract_clears_its_pause_reason_as_contract_resume_does(tmp_path):
    every_kind_of_part()
    doc = yaml.safe_load(export())
    doc["contracts"][0].update(status="paused", paused_reason="unpaid invoice")
    config_import(tmp_path, yaml.safe_dump(doc, sort_keys=False), "--reason", "pause")
    doc["contracts"][0].update(status="active")

    config_import(tmp_path, yaml.safe_dump(doc, sort_keys=False), "--reason", "resume")

    contract = Contract.objects.get(name=doc["contracts"][0]["name"])
    assert (contract.status, contract.paused_reason, contract.paused_at) == (
        ContractStatus.ACTIVE,
        "",
        None,
    )


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        (
            "marketplace.yaml",
            "leadswitch: 1\nbuyers:\n- company: Summit\n  notes: a\n  notes: b\n",
            "found the key 'notes' twice",
        ),
        (
            "marketplace.json",
            '{"leadswitch": 1, "buyers": [{"company": "Summit", "notes": "a", "notes": "b"}]}',
            "the key 'notes' is given twice in one object",
        ),
    ],
)
def test_a_key_given_twice_is_refused_not_merged_by_the_parser(tmp_path, name, text, said):
    with pytest.raises(CommandError) as caught:
        config_import(tmp_path, text, "--reason", "review", name=name)

    assert said in str(caught.value)


def test_nested_aliases_that_would_expand_past_a_million_values_are_refused_unread(tmp_path):
    # "A billion laughs": nine aliases of ten make 10**9 values from a few hundred bytes.
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for lower, upper in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{upper}: &{upper} [{', '.join([f'*{lower}'] * 10)}]")
    text = "leadswitch: 1\nnotes:\n" + "".join(f"  {line}\n" for line in levels)

    with pytest.raises(CommandError) as caught:
        config_import(tmp_path, text, "--reason", "review", name="marketplace.yaml")

    assert "its aliases expand it past 1,000,000 values" in str(caught.value)


def test_an_alias_used_a_few_times_is_read_as_its_value():
    data = load("leadswitch: 1\nx: &v [1, 2]\ny: *v\n", "yaml")
    assert (data["x"], data["y"]) == ([1, 2], [1, 2])
