from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, connection, transaction

from buyers.fields import mask
from buyers.models import (
    AuthType,
    CapPeriod,
    ContractCap,
    ContractStatus,
    CriterionOperator,
    DeliveryEndpoint,
    FieldCriterion,
    FieldMapping,
    PriceModel,
    ResponseRule,
    ScheduleWindow,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
)
from buyers.services import contract_pause, contract_resume
from tests.buyers.factories import BuyerFactory, ContractFactory, DeliveryEndpointFactory

pytestmark = pytest.mark.django_db


def test_it_keeps_buyer_credentials_encrypted_at_rest():
    endpoint = DeliveryEndpointFactory(auth_type=AuthType.BEARER, auth_secret="s3cr3t-token-XYZ")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT auth_secret FROM buyers_deliveryendpoint WHERE id = %s", [endpoint.pk]
        )
        (stored,) = cursor.fetchone()
    assert "s3cr3t" not in stored
    assert stored.startswith("fernet:")
    assert DeliveryEndpoint.objects.get(pk=endpoint.pk).auth_secret == "s3cr3t-token-XYZ"
    assert endpoint.masked_secret == "••••-XYZ"


def test_it_fails_loudly_when_the_encryption_key_changed(settings):
    endpoint = DeliveryEndpointFactory(auth_type=AuthType.BEARER, auth_secret="token-123456")
    settings.FIELD_ENCRYPTION_KEY = "a" * 43 + "="
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        DeliveryEndpoint.objects.get(pk=endpoint.pk)


@pytest.mark.parametrize(
    ("secret", "hint"), [("", ""), ("short", "••••"), ("abcdefghijkl", "••••ijkl")]
)
def test_it_masks_secrets_without_revealing_short_ones(secret, hint):
    assert mask(secret) == hint


def test_it_rejects_an_invalid_time_zone():
    with pytest.raises(ValidationError, match="time_zone"):
        BuyerFactory.build(time_zone="Mars/Olympus").full_clean()


def test_it_requires_a_price_on_fixed_contracts_in_the_database_too():
    contract = ContractFactory.build(price_model=PriceModel.FIXED, fixed_price=None)
    with pytest.raises(ValidationError, match="fixed_price"):
        contract.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        ContractFactory(price_model=PriceModel.FIXED, fixed_price=None)


def test_it_pauses_with_a_reason_and_resumes():
    contract = ContractFactory(deliverable=True)
    with pytest.raises(ValueError, match="reason"):
        contract_pause(contract=contract, reason="  ")
    assert contract_pause(contract=contract, reason="Buyer asked: budget review")
    assert not contract_pause(contract=contract, reason="again")
    contract.refresh_from_db()
    assert contract.status == ContractStatus.PAUSED
    assert contract.paused_reason == "Buyer asked: budget review"
    assert contract.paused_at is not None
    assert contract_resume(contract=contract)
    assert not contract_resume(contract=contract)
    contract.refresh_from_db()
    assert (contract.status, contract.paused_reason, contract.paused_at) == ("active", "", None)


def test_it_counts_a_contract_of_an_inactive_buyer_as_inactive():
    contract = ContractFactory(buyer=BuyerFactory(active=False))
    assert not contract.is_active


def test_it_needs_a_limit_on_every_cap():
    cap = ContractCap(contract=ContractFactory(), period=CapPeriod.DAY)
    with pytest.raises(ValidationError, match="lead count, a budget"):
        cap.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        cap.save()


def test_it_allows_one_cap_per_period():
    contract = ContractFactory()
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_budget=100)


def test_it_refuses_a_window_that_closes_before_it_opens():
    window = ScheduleWindow(
        contract=ContractFactory(), weekday=0, opens_at=time(18), closes_at=time(9)
    )
    with pytest.raises(ValidationError, match="overnight"):
        window.full_clean()


def test_it_normalises_a_pasted_zip_list():
    rule = TerritoryRule(
        contract=ContractFactory(),
        kind=TerritoryKind.ZIPS,
        mode=TerritoryMode.EXCLUDE,
        values="60601, 60602;60601\n\n 73301 ",
    )
    rule.full_clean()
    assert rule.value_list == ["60601", "60602", "73301"]
    assert str(rule) == "Except 3 ZIP(s)"


def test_it_accepts_thousands_of_zip_codes_at_once():
    zips = " ".join(f"{n:05d}" for n in range(10000, 15000))
    rule = TerritoryRule(contract=ContractFactory(), kind=TerritoryKind.ZIPS, values=zips)
    rule.full_clean()
    rule.save()
    assert len(TerritoryRule.objects.get(pk=rule.pk).value_list) == 5000


@pytest.mark.parametrize(
    ("kind", "values", "miles", "message"),
    [
        (TerritoryKind.STATES, "TX, XX, ZZ", None, "Not US states \\(codes or names\\): XX, ZZ"),
        (TerritoryKind.ZIPS, "6060, 60601", None, "Not 5-digit ZIP codes: 6060"),
        (TerritoryKind.RADIUS, "80202", None, "radius rule needs"),
        (TerritoryKind.STATES, "TX", 50, "Only radius rules"),
        (TerritoryKind.STATES, " , ", None, "at least one value"),
    ],
)
def test_it_explains_a_bad_territory(kind, values, miles, message):
    rule = TerritoryRule(contract=ContractFactory(), kind=kind, values=values, radius_miles=miles)
    with pytest.raises(ValidationError, match=message):
        rule.full_clean()


@pytest.mark.parametrize(
    ("operator", "value", "message"),
    [
        (CriterionOperator.EXISTS, "x", "takes no value"),
        (CriterionOperator.EQ, "", "needs a value"),
        (CriterionOperator.GT, "abc", "a number"),
        (CriterionOperator.BETWEEN, "10", "two numbers"),
        (CriterionOperator.BETWEEN, "65, 18", "low bound"),
        (CriterionOperator.REGEX, "(unclosed", "regular expression"),
    ],
)
def test_it_explains_a_bad_criterion(operator, value, message):
    criterion = FieldCriterion(
        contract=ContractFactory(), field="age", operator=operator, value=value
    )
    with pytest.raises(ValidationError, match=message):
        criterion.full_clean()


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        (CriterionOperator.BETWEEN, "18, 65"),
        (CriterionOperator.IN, "excellent, good"),
        (CriterionOperator.MISSING, ""),
        (CriterionOperator.GTE, "2005"),
        (CriterionOperator.REGEX, r"^\d{3}$"),
    ],
)
def test_it_accepts_a_well_formed_criterion(operator, value):
    FieldCriterion(
        contract=ContractFactory(), field="x", operator=operator, value=value
    ).full_clean()


@pytest.mark.parametrize(
    ("attrs", "error_field"),
    [
        ({"auth_type": AuthType.BEARER}, "auth_secret"),
        ({"auth_type": AuthType.BASIC, "auth_secret": "pw"}, "auth_username"),
        ({"auth_type": AuthType.HEADER, "auth_secret": "k"}, "auth_param_name"),
        ({"headers": {"Authorization": "Bearer x"}}, "headers"),
        ({"headers": {"X-Api-Key": "k-123"}}, "headers"),
        ({"headers": {"bad header": "x"}}, "headers"),
        ({"headers": ["X-A"]}, "headers"),
        ({"url": "ftp://example.com/x"}, "url"),
    ],
)
def test_it_explains_a_bad_endpoint(attrs, error_field):
    endpoint = DeliveryEndpoint(
        contract=ContractFactory(),
        kind="post",
        **{"url": "https://buyer.example.com/post", **attrs},
    )
    with pytest.raises(ValidationError) as excinfo:
        endpoint.full_clean()
    assert error_field in excinfo.value.message_dict


def test_it_needs_a_mapping_to_send_either_a_field_or_a_constant():
    contract = ContractFactory()
    with pytest.raises(ValidationError, match="static value"):
        FieldMapping(contract=contract, target_field="x").full_clean()
    with pytest.raises(ValidationError, match="either"):
        FieldMapping(
            contract=contract, target_field="x", source_field="phone", static_value="1"
        ).full_clean()
    FieldMapping(contract=contract, target_field="vendor", static_value="LS").full_clean()


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"price_regex": "price=[0-9.]+"}, "Capture the price"),
        ({"success_regex": "("}, "regular expression"),
        ({"success_status_codes": "200, 99"}, "HTTP status codes"),
        ({"success_path": "", "success_regex": "", "success_status_codes": ""}, "recognised"),
    ],
)
def test_it_explains_a_bad_response_rule(attrs, message):
    rule = ResponseRule(contract=ContractFactory(), kind="post", **attrs)
    with pytest.raises(ValidationError, match=message):
        rule.full_clean()


def test_it_keeps_floor_and_prices_non_negative_in_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        ContractFactory(floor_price=Decimal("-1"))
