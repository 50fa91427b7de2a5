"""A contract that cannot deliver cannot go live: refused on the contract page and on resume,
with the reason; templates and answer paths that do not check out are refused when saved,
naming the template's line."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from buyers.models import (
    AnswerFormat,
    ContractSecret,
    ContractStatus,
    DeliveryEndpoint,
    DeliveryMethod,
    EndpointKind,
    PriceModel,
    ResponseRule,
)
from buyers.readiness import (
    ContractCannotDeliver,
    EndpointSketch,
    delivery_problems,
    secrets_named,
)
from buyers.services import contract_pause, contract_resume
from leads.models import FieldType
from tests.buyers.factories import ContractFactory, DeliveryEndpointFactory
from tests.leads.factories import VerticalFieldFactory

pytestmark = pytest.mark.django_db


def test_what_a_contract_needs_to_deliver():
    ping, post = EndpointSketch(kind="ping"), EndpointSketch(kind="post")
    ping_post = {"price_model": PriceModel.PING_POST, "delivery_method": DeliveryMethod.HTTP}

    assert delivery_problems(**ping_post, endpoints=[ping, post], secret_names=[]) == []
    (no_post,) = delivery_problems(**ping_post, endpoints=[ping], secret_names=[])
    assert "no post endpoint" in no_post
    (no_ping,) = delivery_problems(**ping_post, endpoints=[post], secret_names=[])
    assert "no ping endpoint" in no_ping
    fixed = {"price_model": PriceModel.FIXED, "delivery_method": DeliveryMethod.WEBHOOK}
    assert delivery_problems(**fixed, endpoints=[post], secret_names=[]) == []
    email = {"price_model": PriceModel.FIXED, "delivery_method": DeliveryMethod.EMAIL}
    assert delivery_problems(**email, endpoints=[], secret_names=[]) == []
    keyed = EndpointSketch(
        kind="post", query={"key": "{{ secrets.key }}"}, headers={"X-Id": "{{ secrets['id'] }}"}
    )
    (missing,) = delivery_problems(**fixed, endpoints=[keyed], secret_names=["key"])
    assert "reads the secret id, which the contract does not hold" in missing


def test_secrets_are_found_however_a_template_names_them():
    text = "{{ secrets.a }} {{secrets . b}} {{ secrets[\"c\"] }} {{ secrets['d'] }} {{ secretsx }}"
    assert secrets_named(text) == {"a", "b", "c", "d"}


def test_a_paused_contract_that_cannot_deliver_stays_paused():
    contract = ContractFactory()
    contract_pause(contract=contract, reason="set-up")

    with pytest.raises(ContractCannotDeliver, match="no post endpoint"):
        contract_resume(contract=contract)
    contract.refresh_from_db()
    assert contract.status == ContractStatus.PAUSED

    DeliveryEndpointFactory(contract=contract, kind=EndpointKind.PING, url="http://127.0.0.1/p")
    DeliveryEndpointFactory(contract=contract)
    assert contract_resume(contract=contract)


def test_a_template_that_does_not_render_is_refused_with_its_line():
    contract = ContractFactory()
    VerticalFieldFactory(vertical=contract.vertical, name="zip_code", field_type=FieldType.ZIP)
    endpoint = DeliveryEndpoint(
        contract=contract,
        kind=EndpointKind.POST,
        url="http://127.0.0.1:9100/post",
        body_template='{\n  "zip": "{{ fields.zip_code }}",\n'
        '  "name": "{{ fields.frist_name }}"\n}',
    )

    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()

    (message,) = refused.value.message_dict["body_template"]
    assert "line 3" in message
    assert "frist_name" in message
    endpoint.body_template = '{"zip": "{{ fields.zip_code | int }}", "key": "{{ secrets.k }}"}'
    endpoint.full_clean()


def test_an_answer_path_that_cannot_be_read_is_refused():
    contract = ContractFactory()
    rule = ResponseRule(
        contract=contract,
        kind=EndpointKind.POST,
        answer_format=AnswerFormat.XML,
        success_path="Response/Status",
        price_path="Response/Price[",
        reason_path="",
        reference_path="",
        namespaces="b=urn:buyer",
    )
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "price_path" in refused.value.message_dict

    rule.price_path = "b:Response/b:Price"
    rule.namespaces = "not a namespace line"
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "namespaces" in refused.value.message_dict


def contract_page_data(client, contract) -> dict:
    from tests.test_admin import change_form_data

    return change_form_data(client.get(reverse("admin:buyers_contract_change", args=[contract.pk])))


def test_the_contract_page_refuses_to_keep_a_live_contract_without_its_endpoints(
    admin_client, settings
):
    settings.SECURE_SSL_REDIRECT = False
    contract = ContractFactory(deliverable=True)
    ContractSecret.objects.create(contract=contract, name="key", value="k")
    data = contract_page_data(admin_client, contract)
    post = next(k[: -len("-kind")] for k, v in data.items() if k.endswith("-kind") and v == "post")
    data[f"{post}-DELETE"] = "on"

    response = admin_client.post(reverse("admin:buyers_contract_change", args=[contract.pk]), data)

    assert response.status_code == 200
    assert "An active contract must be able to deliver" in response.content.decode()
    assert contract.endpoints.count() == 2


def test_a_credential_written_into_the_query_is_refused():
    contract = ContractFactory()
    endpoint = DeliveryEndpoint(
        contract=contract,
        kind=EndpointKind.POST,
        url="http://127.0.0.1:9100/post",
        query={"api_key": "sk-live-123456"},
    )
    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()
    assert "secrets" in refused.value.message_dict["query"][0]

    endpoint.query = {"api_key": "{{ secrets.api_key }}"}
    endpoint.full_clean()


def test_a_template_failing_outside_jinja_is_a_form_error_not_a_server_error():
    endpoint = DeliveryEndpoint(
        contract=ContractFactory(),
        kind=EndpointKind.POST,
        url="http://127.0.0.1:9100/post",
        body_template='{"a": "{{ {(1, 2): 3} }}"}',
    )
    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()
    assert "TypeError" in refused.value.message_dict["body_template"][0]
