"""Connecting a buyer in a real browser: Ops create a contract for a buyer that publishes a
posting spec, fill it from a preset, add its secret, point it at the buyer, resume it, try the
buyer's spec answer against its rules, and sell the buyer a test post.

The buyer is the fake of Novo's Partner Lead API (tests/buyers/fakes/novo_b.py) on 127.0.0.1:
nested JSON with typed values, the key in a header, checked as strictly as the spec says.
"""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from buyers.models import Buyer, Contract, ContractStatus
from tests.buyers.fakes.novo_b import SUCCESS_MESSAGE, NovoPartnerLead
from tests.demo import demo_vertical
from tests.staff import staff_user

# Serialized rollback: each test starts with what the migrations made (the staff groups).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

NOVO_KEY = "novo-partner-key-4e1d"
# Novo's LeadSuccessResponse, in the shape of the spec's example.
SPEC_ANSWER = {
    "status": "success",
    "message": SUCCESS_MESSAGE,
    "transaction_id": "6b0e7a52-3c1f-4f0e-9d7b-2a5c8e1f4b39",
    "bridge_urls": {
        "consumer_bridge_url": "https://novo.example/consumer?sub4=6b0e7a52&partner=novo",
        "agent_bridge_url": "https://novo.example/agent?transactionId=6b0e7a52",
    },
}


def test_ops_connect_a_buyer_from_a_preset_try_its_answer_and_sell_it_a_test_post(ui):
    page = ui.page
    vertical = demo_vertical("auto-insurance")
    staff_user("Ops", "olga")
    ui.log_in("olga")

    with NovoPartnerLead(api_key=NOVO_KEY) as novo:
        ui.go("/admin/buyers/buyer/add/")
        page.fill("#id_company", "Novo Insurance")
        page.click("input[name=_save]")
        page.wait_for_selector(".messagelist .success")
        buyer = Buyer.objects.get(company="Novo Insurance")

        # A new contract, empty: saved paused until it can deliver.
        ui.go(f"/admin/buyers/contract/add/?buyer={buyer.pk}&vertical={vertical.pk}")
        page.fill("#id_name", "Novo direct post")
        page.select_option("#id_price_model", "fixed")
        page.fill("#id_fixed_price", "20.00")
        page.fill("#id_floor_price", "1.00")
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .warning")
        contract = Contract.objects.get(name="Novo direct post")
        assert contract.status == ContractStatus.PAUSED
        ui.shot("new-contract-paused")

        page.click("text=Fill from a preset")
        page.select_option("#id_preset", "novo-partner-lead")
        ui.shot("preset-chosen")
        page.click("input[type=submit]")
        page.wait_for_selector(".messagelist .success")
        assert "api_key" in page.inner_text(".messagelist")
        ui.shot("filled-from-preset")

        # The secret the preset names, the buyer's URL, and the one field this vertical lacks.
        page.click("#secrets-group .add-row a")
        page.fill("#id_secrets-0-name", "api_key")
        page.fill("#id_secrets-0-value", NOVO_KEY)
        page.fill("#id_endpoints-0-url", novo.url())
        template = page.input_value("#id_endpoints-0-body_template")
        fitted = template.replace('"{{ fields.months_at_residence | int }}"', "24")
        assert fitted != template
        page.fill("#id_endpoints-0-body_template", fitted)
        ui.shot("secret-url-and-template")
        page.click("input[name=_continue]")
        page.wait_for_selector(".messagelist .success")

        page.click(".object-tools >> text=Resume")
        page.fill("#id_reason", "Connected to Novo")
        page.click("input[type=submit]")
        page.wait_for_selector(".messagelist .success")
        contract.refresh_from_db()
        assert contract.status == ContractStatus.ACTIVE
        ui.shot("resumed")

        page.click(".object-tools >> text=Try this answer")
        page.check("input[name=kind][value=post]")
        assert page.input_value("#id_status") == "200"
        page.fill("#id_body", json.dumps(SPEC_ANSWER, indent=2))
        page.click("input[type=submit]")
        page.wait_for_selector("#answer-parsed")
        assert page.inner_text("#answer-accepted") == "yes"
        assert page.inner_text("#answer-reference") == SPEC_ANSWER["transaction_id"]
        assert "booked at the bid or the fixed price" in page.inner_text("#answer-note")
        ui.shot("spec-answer-read")
        assert novo.received == []

        ui.go(reverse("admin:buyers_contract_test", args=[contract.pk]))
        page.check("input[name=kind][value=post]")
        page.click("input[name=send]")
        page.wait_for_selector("#test-parsed")
        ui.shot("test-post-accepted")
        (exchange,) = novo.received
        assert exchange.status == 200, exchange.answer.body
        assert page.inner_text("#test-status") == "200"
        assert page.inner_text("#parsed-accepted") == "yes"
        assert page.inner_text("#parsed-reference") == novo.transactions[0]
        driver = exchange.request.json()["application"]["drivers"][0]
        assert driver["residence"]["length_in_months"] == 24
        assert exchange.request.headers["x-api-key"] == NOVO_KEY
        # Shown as sent, but for the key.
        assert page.inner_text("#test-body") == exchange.request.text
        assert NOVO_KEY not in page.content()
        assert "x-api-key\t••••" in page.inner_text("#test-headers")
        assert not contract.attempts.exists()
