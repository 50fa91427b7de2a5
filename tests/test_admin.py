from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from buyers.forms import territory_values_from_csv
from buyers.models import (
    AuthType,
    Buyer,
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    ClosedDate,
    Contract,
    ContractSecret,
    ContractStatus,
    CriterionOperator,
    DeliveryEndpoint,
    EndpointKind,
    FieldCriterion,
    FieldMapping,
    ReservationStatus,
    ResponseRule,
    ScheduleWindow,
    SourceFilter,
    TerritoryKind,
    TerritoryRule,
)
from buyers.services import contract_pause
from exchange.models import InboundPing, PingAttempt, PingStatus
from leads.models import (
    IdempotencyRecord,
    Lead,
    Postback,
    ScoringRule,
    Source,
    SourceApiKey,
    SuppressionList,
    Vertical,
    VerticalField,
)
from leads.scoring import RuleKind
from leads.services import source_api_key_create, suppression_list_add
from notifications.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
)
from reporting.rollup import rollup_refresh
from reporting.services import buyer_api_key_create, sale_return, staff_token_create
from routing.models import (
    Attempt,
    AttemptOutcome,
    Auction,
    ContractHealth,
    HealthEvent,
    HealthStatus,
    Sale,
)
from teams.services import assignment_create
from tests.buyers.factories import (
    BuyerFactory,
    ContractCapFactory,
    ContractFactory,
    DeliveryEndpointFactory,
)
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory, VerticalFieldFactory
from tests.routing.factories import AttemptFactory, AuctionFactory, SaleFactory
from tests.teams.factories import TeamFactory, TeamMemberFactory

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-token-XYZ"
API_KEY_RE = re.compile(r"lsk_[A-Za-z0-9_-]{20,}")


@pytest.fixture(autouse=True)
def _plain_http(settings):
    # Production settings redirect to HTTPS; these tests are about the admin, not TLS.
    settings.SECURE_SSL_REDIRECT = False


def url(model: type[Model] | Model, view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def change_form_data(response) -> dict[str, Any]:
    """Return the POST data that submits an admin change form as rendered, inlines included."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {"_save": "Save"}
    for form in forms:
        for field in form:
            value = field.value()
            if value is None or value is False:
                continue
            if value is True:
                data[field.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[field.html_name] = [str(v) for v in value]
            else:
                data[field.html_name] = str(value)
    return data


def form_errors(response) -> list[Any]:
    """Collect every error of an admin form page, to make a failed save readable."""
    if response.context is None or "adminform" not in response.context:
        return []
    errors: list[Any] = [response.context["adminform"].form.errors]
    for inline in response.context["inline_admin_formsets"]:
        errors += [inline.formset.non_form_errors(), *inline.formset.errors]
    return [e for e in errors if e]


def inline_prefix(data: dict[str, Any], field: str) -> str:
    """Return the prefix of the only inline form that has `field`, e.g. endpoints-0."""
    (name,) = [k for k in data if k.endswith(f"-{field}") and "__prefix__" not in k]
    return name.rsplit("-", 1)[0]


def formset_prefix(response, model: type[Model]) -> str:
    """Return the form prefix of the page's inline formset for model, e.g. closed_dates."""
    (prefix,) = [
        inline.formset.prefix
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is model
    ]
    return prefix


def add_inline_row(data: dict[str, Any], prefix: str, **fields: Any) -> None:
    """Append one new row to an inline formset's POST data."""
    index = int(data[f"{prefix}-TOTAL_FORMS"])
    data[f"{prefix}-TOTAL_FORMS"] = str(index + 1)
    data.update({f"{prefix}-{index}-{name}": value for name, value in fields.items()})


def save_with_new_row(client, obj: Model, model: type[Model], **fields: Any):
    """Submit obj's admin change page as rendered, with one new row in model's inline."""
    page = client.get(url(obj, "change", obj.pk))
    data = change_form_data(page)
    add_inline_row(data, formset_prefix(page, model), **fields)
    return client.post(url(obj, "change", obj.pk), data)


def rows_containing(text: str) -> list[str]:
    """Return the tables with a row that holds text anywhere, read below the ORM."""
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview):
                        value = bytes(value)  # noqa: PLW2901
                    if isinstance(value, bytes):
                        value = value.decode(errors="ignore")  # noqa: PLW2901
                    if text in str(value):
                        hits.append(table)
    return hits


@pytest.fixture
def every_model(admin_user) -> dict[str, Model]:
    """One row of every model the admin shows, with the relations filled in."""
    vertical = VerticalFactory(slug="auto", name="Auto insurance")
    for name in ("email", "phone"):
        VerticalFieldFactory(vertical=vertical, name=name)
    source = SourceFactory(verticals=[vertical])
    source_api_key_create(source=source, name="web form")
    ScoringRule.objects.create(
        vertical=vertical, name="Has a phone", kind=RuleKind.EXISTS, field="phone", points=30
    )
    buyer = BuyerFactory(consent_names="Acme Direct, Acme Insurance Agency LLC")
    BuyerCap.objects.create(buyer=buyer, period=CapPeriod.DAY, max_leads=500)
    contract = ContractFactory(
        buyer=buyer,
        vertical=vertical,
        source_filter=SourceFilter.ALLOW,
        refuse_bought_within_days=30,
        consent_must_name_buyer=True,
    )
    contract.sources.add(source)
    ContractCapFactory(contract=contract)
    ClosedDate.objects.create(contract=contract, date=date(2030, 12, 25), note="Christmas")
    ScheduleWindow.objects.create(
        contract=contract, weekday=0, opens_at=time(9), closes_at=time(17)
    )
    TerritoryRule.objects.create(contract=contract, kind=TerritoryKind.STATES, values="IL\nWI")
    FieldCriterion.objects.create(
        contract=contract, field="age", operator=CriterionOperator.GTE, value="18"
    )
    endpoint = DeliveryEndpointFactory(
        contract=contract, auth_type=AuthType.BEARER, auth_secret=SECRET
    )
    DeliveryEndpointFactory(
        contract=contract, kind=EndpointKind.PING, url="http://127.0.0.1:9100/ping"
    )
    ContractSecret.objects.create(contract=contract, name="api_key", value=SECRET)
    FieldMapping.objects.create(contract=contract, source_field="email", target_field="Email")
    ResponseRule.objects.create(contract=contract, kind=EndpointKind.POST)
    lead = LeadFactory(
        vertical=vertical,
        source=source,
        errors={"phone": ["Not a phone number."]},
        consent={"tcpa_text": "I agree", "ip": "203.0.113.9"},
    )
    auction = AuctionFactory(lead=lead, explanation=[{"contract": contract.pk, "eligible": True}])
    attempt = AttemptFactory(
        auction=auction, contract=contract, request_headers={"Authorization": "••••-XYZ"}
    )
    SaleFactory(lead=lead, contract=contract, auction=auction)
    day = datetime(2030, 1, 7, 6, tzinfo=UTC)
    counters = [
        CapCounter.objects.create(
            contract=contract, period=CapPeriod.DAY, period_start=day, leads=1, spend=Decimal(12)
        ),
        CapCounter.objects.create(
            buyer=buyer, period=CapPeriod.DAY, period_start=day, leads=1, spend=Decimal(12)
        ),
    ]
    reservation = CapReservation.objects.create(
        lead=lead, contract=contract, status=ReservationStatus.COMMITTED, price=Decimal(12)
    )
    reservation.counters.add(*counters)
    IdempotencyRecord.objects.create(
        source=source,
        key="retry-1",
        request_hash="0" * 64,
        lead=lead,
        response_status=202,
        response_document='{"status":"accepted"}',
        response_headers={"Location": "/api/v1/leads/x/"},
    )
    suppression = SuppressionList.objects.create(name="Do not call")
    suppression_list_add(suppression_list=suppression, text="nobody@example.com\n(212) 555-0199")
    ContractHealth.objects.create(contract=contract, status=HealthStatus.OPEN, reason="5 failures")
    HealthEvent.objects.create(contract=contract, status=HealthStatus.OPEN, reason="5 failures")
    Postback.objects.create(
        lead=lead, url="https://partner.example/postback", lead_status="sold", status="delivered"
    )
    Group.objects.get_or_create(name="Ops")  # the reporting migration creates it
    subscription = NotificationSubscription.objects.create(
        name="Ops on-call",
        channel=NotificationChannel.EMAIL,
        email="ops@leadswitch.example",
        kinds=[NotificationKind.BUYER_PAUSED],
        contract=contract,
    )
    NotificationDelivery.objects.create(
        subscription=subscription,
        kind=NotificationKind.BUYER_PAUSED,
        event_key=f"buyer_paused:contract:{contract.pk}",
        channel=NotificationChannel.EMAIL,
        recipient="ops@leadswitch.example",
        subject="[Leadswitch] Buyer auto-paused",
        payload={"subject": "[Leadswitch] Buyer auto-paused", "to": [], "body": "…"},
    )
    sale = Sale.objects.get(lead=lead)
    sale_return(
        sale=sale, reason="bad_phone", returned_by="test", now=sale.sold_at + timedelta(days=1)
    )
    buyer_api_key_create(buyer=buyer, name="crm")
    # An internal team with a member, and a lead assigned (and notified) to them.
    team = TeamFactory(slack_webhook_url="https://hooks.slack.com/services/T0/B0/secret")
    TeamMemberFactory(team=team, name="Ana Reyes", daily_quota=20)
    assignment_create(lead=lead, team_id=team.pk)
    staff_token_create(user=admin_user, name="BI tool")
    # A mistyped password: the login throttle's attempt and failure records (django-axes).
    Client().post(reverse("admin:login"), {"username": admin_user.username, "password": "typo"})
    # An inbound ping that bid, with its buyer's attempt, taken up by the lead.
    ping = InboundPing.objects.create(
        source=source,
        vertical=vertical,
        status=PingStatus.BID,
        fields={"zip_code": "60601"},
        price=Decimal("4.00"),
        buyer_price=Decimal(12),
        expires_at=timezone.now() + timedelta(minutes=1),
        held_bids=[
            {
                "contract_id": contract.pk,
                "buyer_id": buyer.pk,
                "price": "12.00",
                "priority": 1,
                "weight": 1,
                "exclusive": True,
                "expires_at": None,
                "ping_answer": {"price": "12.00"},
            }
        ],
        lead=lead,
    )
    PingAttempt.objects.create(
        ping=ping,
        contract=contract,
        kind=EndpointKind.PING,
        url="http://127.0.0.1:9100/ping",
        outcome="bid",
        price=Decimal(12),
    )
    rollup_refresh()
    return {
        "vertical": vertical,
        "source": source,
        "buyer": buyer,
        "contract": contract,
        "endpoint": endpoint,
        "lead": lead,
        "attempt": attempt,
    }


def registered_models() -> list[type[Model]]:
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_every_admin_page_of_every_registered_model_opens(admin_client, every_model, model):
    model_admin = admin.site._registry[model]
    obj = model._default_manager.first()
    assert obj is not None, f"every_model creates no {model._meta.label}: add one to the fixture"

    assert admin_client.get(url(model, "changelist")).status_code == 200
    assert admin_client.get(url(model, "changelist"), {"q": "x"}).status_code == 200
    assert admin_client.get(url(model, "change", obj.pk)).status_code == 200
    request = admin_client.get(url(model, "changelist")).wsgi_request
    if model_admin.has_add_permission(request):
        assert admin_client.get(url(model, "add")).status_code == 200


def test_an_auctions_duration_is_shown_in_milliseconds_on_its_page_its_lead_and_the_list(
    admin_client,
):
    auction = AuctionFactory()
    Auction.objects.filter(pk=auction.pk).update(
        finished_at=auction.started_at + timedelta(milliseconds=1234)
    )

    for page in (
        url(auction, "change", auction.pk),
        url(auction, "changelist"),
        url(auction.lead, "change", auction.lead.pk),
    ):
        assert "1234 ms" in admin_client.get(page).content.decode(), page


def test_an_unfinished_auction_shows_the_empty_marker_for_its_duration_not_none(admin_client):
    auction = AuctionFactory()
    Auction.objects.filter(pk=auction.pk).update(finished_at=None)

    page = admin_client.get(url(auction, "change", auction.pk)).content.decode()

    assert re.search(r'<div class="readonly">\s*None\s*</div>', page) is None
    assert re.search(r'<div class="readonly">\s*-\s*</div>', page)


# --- Margin privacy ---


def test_ops_let_a_source_see_buyers_prices_from_its_page_and_filter_sources_by_it(
    admin_client, every_model
):
    source = every_model["source"]
    private = SourceFactory(name="Private Partner")
    page = admin_client.get(url(source, "change", source.pk))
    assert "sees_buyer_price" in page.context["adminform"].form.fields

    response = admin_client.post(
        url(source, "change", source.pk), {**change_form_data(page), "sees_buyer_price": "on"}
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    source.refresh_from_db()
    assert source.sees_buyer_price
    listed = admin_client.get(url(Source, "changelist"), {"sees_buyer_price__exact": "1"})
    assert list(listed.context["cl"].result_list) == [source]
    hidden = admin_client.get(url(Source, "changelist"), {"sees_buyer_price__exact": "0"})
    assert private in hidden.context["cl"].result_list
    assert source not in hidden.context["cl"].result_list


# --- API keys ---


def test_it_shows_a_minted_key_exactly_once(admin_client, every_model, caplog):
    caplog.set_level(logging.DEBUG)
    source = every_model["source"]
    change_page = admin_client.get(url(source, "change", source.pk))
    mint_url = url(source, "mint_key", source.pk)
    assert mint_url in change_page.content.decode()

    confirm = admin_client.get(mint_url)
    assert confirm.status_code == 200
    assert not API_KEY_RE.search(confirm.content.decode())
    assert source.api_keys.count() == 1  # asking does not mint

    response = admin_client.post(mint_url, {"name": "landing page"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (raw_key,) = API_KEY_RE.findall(response.content.decode())
    assert "never be shown again" in response.content.decode()
    api_key = SourceApiKey.objects.get(source=source, name="landing page")
    assert api_key.hashed_key == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(api_key.prefix)
    assert rows_containing(raw_key) == []
    for session in Session.objects.all():
        assert raw_key not in str(session.get_decoded())
    assert raw_key not in str(response.cookies)
    assert raw_key not in caplog.text
    for page in (
        url(source, "change", source.pk),
        url(SourceApiKey, "changelist"),
        url(SourceApiKey, "change", api_key.pk),
        url(source, "history", source.pk),
    ):
        assert raw_key not in admin_client.get(page).content.decode()


def test_the_mint_action_mints_a_key_for_each_selected_source(admin_client):
    sources = SourceFactory.create_batch(2)

    response = admin_client.post(
        url(sources[0], "changelist"),
        {"action": "mint_keys", "index": 0, "_selected_action": [s.pk for s in sources]},
    )

    assert response.status_code == 200
    raw_keys = API_KEY_RE.findall(response.content.decode())
    assert len(set(raw_keys)) == 2
    hashes = {hashlib.sha256(k.encode()).hexdigest() for k in raw_keys}
    assert set(SourceApiKey.objects.values_list("hashed_key", flat=True)) == hashes
    assert {k.source_id for k in SourceApiKey.objects.all()} == {s.pk for s in sources}
    assert all(rows_containing(k) == [] for k in raw_keys)


def test_minting_needs_the_change_permission_on_sources(client):
    source = SourceFactory()
    mint_url = url(source, "mint_key", source.pk)
    assert client.get(mint_url).status_code == 302  # outsider: to the login page

    colleague = User.objects.create_user("viewer", password="pw", is_staff=True)
    colleague.user_permissions.add(Permission.objects.get(codename="view_source"))
    client.force_login(colleague)
    assert client.get(mint_url).status_code == 403
    assert client.post(mint_url).status_code == 403

    colleague.user_permissions.add(Permission.objects.get(codename="change_source"))
    client.force_login(User.objects.get(pk=colleague.pk))
    assert client.get(mint_url).status_code == 200
    assert SourceApiKey.objects.count() == 0


def test_minting_is_protected_against_cross_site_requests(admin_user):
    source = SourceFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post(url(source, "mint_key", source.pk), {"name": "forged"})

    assert response.status_code == 403
    assert SourceApiKey.objects.count() == 0


def test_the_revoke_action_revokes_keys_and_says_which_were_already_revoked(admin_client):
    source = SourceFactory()
    live = [source_api_key_create(source=source)[0] for _ in range(2)]
    gone = source_api_key_create(source=source)[0]
    gone.revoked_at = timezone.now()
    gone.save()

    response = admin_client.post(
        url(SourceApiKey, "changelist"),
        {"action": "revoke_keys", "index": 0, "_selected_action": [k.pk for k in [*live, gone]]},
    )

    assert response.status_code == 302
    assert SourceApiKey.objects.filter(revoked_at__isnull=True).count() == 0
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "Revoked 2 API keys. 1 was already revoked."


def test_nobody_types_in_an_api_key(admin_client):
    assert admin_client.get(url(SourceApiKey, "add")).status_code == 403


# --- Contracts ---


def pause(admin_client, contracts: list[Contract], reason: str | None):
    data: dict[str, Any] = {
        "action": "pause_contracts",
        "_selected_action": [c.pk for c in contracts],
    }
    if reason is None:
        data["index"] = 0  # the first step: the button on the change list
    else:
        data.update(apply="yes", reason=reason)
    return admin_client.post(url(Contract, "changelist"), data)


def test_the_pause_action_asks_for_a_reason_and_pauses_with_it(admin_client):
    contracts = ContractFactory.create_batch(2)

    asking = pause(admin_client, contracts, reason=None)
    assert asking.status_code == 200
    assert 'name="reason"' in asking.content.decode()
    assert not Contract.objects.filter(status=ContractStatus.PAUSED).exists()

    response = pause(admin_client, contracts, reason="endpoint answers 500")

    assert response.status_code == 302
    for contract in Contract.objects.all():
        assert contract.status == ContractStatus.PAUSED
        assert contract.paused_reason == "endpoint answers 500"
        assert contract.paused_at is not None
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "Paused 2 contracts."


def test_the_pause_action_refuses_a_blank_reason(admin_client):
    contract = ContractFactory()

    response = pause(admin_client, [contract], reason="   ")

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    contract.refresh_from_db()
    assert contract.status == ContractStatus.ACTIVE


def test_the_resume_action_resumes_paused_contracts(admin_client):
    paused, active = ContractFactory.create_batch(2, deliverable=True)
    contract_pause(contract=paused, reason="maintenance")

    response = admin_client.post(
        url(Contract, "changelist"),
        {"action": "resume_contracts", "index": 0, "_selected_action": [paused.pk, active.pk]},
    )

    assert response.status_code == 302
    paused.refresh_from_db()
    assert (paused.status, paused.paused_reason, paused.paused_at) == ("active", "", None)
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "Resumed 1 contract. 1 contract was not paused."


def test_the_buyer_actions_deactivate_and_activate_buyers(admin_client):
    buyers = BuyerFactory.create_batch(2)
    changelist = url(buyers[0], "changelist")
    selected = [b.pk for b in buyers]

    admin_client.post(
        changelist, {"action": "deactivate", "index": 0, "_selected_action": selected}
    )
    assert not any(b.active for b in Buyer.objects.all())

    admin_client.post(changelist, {"action": "activate", "index": 0, "_selected_action": selected})
    assert all(b.active for b in Buyer.objects.all())


def test_an_endpoint_secret_is_never_rendered(admin_client, every_model):
    contract, endpoint = every_model["contract"], every_model["endpoint"]

    for page in (
        url(contract, "change", contract.pk),
        url(endpoint, "change", endpoint.pk),
        url(endpoint, "changelist"),
        url(contract, "changelist"),
    ):
        html = admin_client.get(page).content.decode()
        assert SECRET not in html, page
    assert "••••-XYZ" in admin_client.get(url(endpoint, "change", endpoint.pk)).content.decode()


def save_contract_page(admin_client, contract: Contract, **changes: Any):
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    # The contract's post endpoint (it has a ping endpoint too).
    (prefix,) = [
        k.rsplit("-", 1)[0]
        for k, v in data.items()
        if k.startswith("endpoints-") and k.endswith("-kind") and v == "post"
    ]
    data.update({f"{prefix}-{name}": value for name, value in changes.items()})
    return admin_client.post(url(contract, "change", contract.pk), data)


def test_a_blank_secret_keeps_the_stored_one(admin_client, every_model):
    response = save_contract_page(
        admin_client, every_model["contract"], url="http://127.0.0.1:9100/v2"
    )

    assert response.status_code == 302, form_errors(response)
    endpoint = DeliveryEndpoint.objects.get(pk=every_model["endpoint"].pk)
    assert endpoint.url == "http://127.0.0.1:9100/v2"
    assert endpoint.auth_secret == SECRET


def test_a_typed_secret_replaces_the_stored_one(admin_client, every_model):
    response = save_contract_page(
        admin_client, every_model["contract"], auth_secret="new-token-1234"
    )

    assert response.status_code == 302, form_errors(response)
    assert DeliveryEndpoint.objects.get(pk=every_model["endpoint"].pk).auth_secret == (
        "new-token-1234"
    )


def test_clearing_the_secret_removes_it_and_is_refused_while_auth_needs_one(
    admin_client, every_model
):
    contract, endpoint = every_model["contract"], every_model["endpoint"]

    refused = save_contract_page(admin_client, contract, clear_secret="on")
    assert refused.status_code == 200
    assert "This authentication type needs a secret." in refused.content.decode()
    assert SECRET not in refused.content.decode()

    response = save_contract_page(admin_client, contract, clear_secret="on", auth_type="none")
    assert response.status_code == 302, form_errors(response)
    assert DeliveryEndpoint.objects.get(pk=endpoint.pk).auth_secret == ""


def test_the_standalone_endpoint_page_keeps_a_secret_left_blank(admin_client, every_model):
    endpoint = every_model["endpoint"]
    page = admin_client.get(url(endpoint, "change", endpoint.pk))
    data = change_form_data(page)
    data["read_timeout_ms"] = "2500"

    response = admin_client.post(url(endpoint, "change", endpoint.pk), data)

    assert response.status_code == 302, form_errors(response)
    endpoint.refresh_from_db()
    assert (endpoint.read_timeout_ms, endpoint.auth_secret) == (2500, SECRET)


def test_a_contract_secrets_page_never_shows_its_value_and_keeps_it_left_blank(
    admin_client, every_model
):
    secret = ContractSecret.objects.get(contract=every_model["contract"])
    page = admin_client.get(url(secret, "change", secret.pk))
    html = page.content.decode()
    assert SECRET not in html
    assert "Stored: ••••-XYZ. Leave blank to keep it." in html

    data = {**change_form_data(page), "name": "partner_key"}
    assert data.get("value", "") == ""
    response = admin_client.post(url(secret, "change", secret.pk), data)
    assert response.status_code == 302, form_errors(response)
    secret.refresh_from_db()
    assert (secret.name, secret.value) == ("partner_key", SECRET)

    data["value"] = "new-value-5678"
    response = admin_client.post(url(secret, "change", secret.pk), data)
    assert response.status_code == 302, form_errors(response)
    secret.refresh_from_db()
    assert secret.value == "new-value-5678"


def test_a_pasted_list_of_thousands_of_zips_is_saved_cleaned(admin_client, every_model):
    contract = every_model["contract"]
    zips = [f"{n:05d}" for n in range(10000, 15000)]
    pasted = "\r\n".join(", ".join(zips[i : i + 10]) + " ;" for i in range(0, len(zips), 10))
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    prefix = inline_prefix(data, "values").rsplit("-", 1)[0]
    new = f"{prefix}-{data[f'{prefix}-TOTAL_FORMS']}"
    data[f"{prefix}-TOTAL_FORMS"] = str(int(data[f"{prefix}-TOTAL_FORMS"]) + 1)
    data.update(
        {f"{new}-mode": "exclude", f"{new}-kind": "zips", f"{new}-values": pasted + zips[0]}
    )

    response = admin_client.post(url(contract, "change", contract.pk), data)

    assert response.status_code == 302, form_errors(response)
    rule = TerritoryRule.objects.get(contract=contract, kind=TerritoryKind.ZIPS)
    assert rule.value_list == zips
    page = admin_client.get(url(contract, "change", contract.pk)).content.decode()
    assert "Except 5000 ZIP(s)" in page


def test_the_contract_page_saves_unchanged_with_all_its_inlines(admin_client, every_model):
    contract = every_model["contract"]
    page = admin_client.get(url(contract, "change", contract.pk))

    response = admin_client.post(url(contract, "change", contract.pk), change_form_data(page))

    assert response.status_code == 302, form_errors(response)


def test_the_contract_form_is_sent_as_multipart_for_its_csv_upload(admin_client, every_model):
    contract = every_model["contract"]

    html = admin_client.get(url(contract, "change", contract.pk)).content.decode()

    assert 'enctype="multipart/form-data"' in html
    assert 'type="file" name="territory-0-upload"' in html


def post_territory_upload(
    admin_client, contract: Contract, content: bytes, *, kind: str = "zips", typed: str = ""
):
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    add_inline_row(
        data,
        formset_prefix(page, TerritoryRule),
        mode="include",
        kind=kind,
        values=typed,
        upload=SimpleUploadedFile("territory.csv", content, content_type="text/csv"),
    )
    return admin_client.post(url(contract, "change", contract.pk), data)


def test_an_uploaded_csv_of_3000_zips_becomes_one_rule_of_5_digit_zips(admin_client, every_model):
    contract = every_model["contract"]
    numbers = range(8000, 11000)  # 8000-9999 as Excel writes 08000-09999: without the zero
    lines = ["City,ZIP Code", *(f"Town {n},{n}" for n in numbers)]
    content = "\ufeff".encode() + "\r\n".join(lines).encode()

    response = post_territory_upload(admin_client, contract, content, typed="08000")

    assert response.status_code == 302, form_errors(response)
    rule = TerritoryRule.objects.get(contract=contract, kind=TerritoryKind.ZIPS)
    assert rule.value_list == [f"{n:05d}" for n in numbers]
    assert len(rule.value_list) == 3000


def test_uploaded_values_survive_an_error_elsewhere_on_the_page(admin_client, every_model):
    contract = every_model["contract"]
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    add_inline_row(data, formset_prefix(page, ClosedDate), date="2030-12-25")  # a duplicate
    add_inline_row(
        data,
        formset_prefix(page, TerritoryRule),
        mode="exclude",
        kind="zips",
        values="60601",
        upload=SimpleUploadedFile("zips.csv", b"zip\n2134\n2135\n"),
    )

    refused = admin_client.post(url(contract, "change", contract.pk), data)
    assert refused.status_code == 200
    # The browser cannot send the file again: the text area now holds what it contained.
    data = change_form_data(refused)
    data.pop(f"{formset_prefix(refused, ClosedDate)}-1-date")
    response = admin_client.post(url(contract, "change", contract.pk), data)

    assert response.status_code == 302, form_errors(response)
    rule = TerritoryRule.objects.get(contract=contract, kind=TerritoryKind.ZIPS)
    assert rule.value_list == ["60601", "02134", "02135"]


def test_an_uploaded_csv_with_bad_lines_names_them_and_saves_nothing(admin_client, every_model):
    contract = every_model["contract"]
    content = b"zip\n60601\n6060\n123456\nABCDE\n\n60602\n1\n"

    response = post_territory_upload(admin_client, contract, content)

    assert response.status_code == 200
    assert "Not ZIP codes: line 4: 123456, line 5: ABCDE, line 8: 1." in response.content.decode()
    assert not TerritoryRule.objects.filter(contract=contract, kind=TerritoryKind.ZIPS).exists()


def test_an_uploaded_csv_of_state_codes_is_added_to_the_typed_ones(admin_client, every_model):
    contract = every_model["contract"]
    TerritoryRule.objects.filter(contract=contract).delete()

    response = post_territory_upload(
        admin_client, contract, b"Name,State\nIllinois,il\nIndiana,IN\n", kind="states", typed="WI"
    )

    assert response.status_code == 302, form_errors(response)
    assert TerritoryRule.objects.get(contract=contract).value_list == ["WI", "IL", "IN"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("zip\n60601\nMünchen\n".encode("latin-1"), "The file is not UTF-8 text"),
        (b"zip\n" + b"60601\n" * 400_000, "The file is larger than 2 MB."),
        (b"zip\n", "The file holds no values."),
        (b"postcode,city\n60601,Chicago\n", "Line 1 looks like a header"),
    ],
    ids=["latin-1", "too big", "header only", "unknown header"],
)
def test_an_unreadable_csv_is_refused_with_a_reason(admin_client, every_model, content, error):
    contract = every_model["contract"]

    response = post_territory_upload(admin_client, contract, content)

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not TerritoryRule.objects.filter(contract=contract, kind=TerritoryKind.ZIPS).exists()


@pytest.mark.parametrize(
    ("text", "kind", "values", "bad"),
    [
        ("02134\n2135\n501\n", "zips", ["02134", "02135", "00501"], []),
        ("02134,2135,60601", "zips", ["02134", "02135", "60601"], []),  # one line is a list
        ("city;zip\nBoston;2134\n", "zips", ["02134"], []),
        ('"zip_code"\r\n"60601"\r\n12\r\n', "radius", ["60601"], [(3, "12")]),
        ("code\nil\nXX\n", "states", ["IL"], [(3, "XX")]),
        ("\n".join(["zip", *["x"] * 12]), "zips", [], [(n, "x") for n in range(2, 14)]),
    ],
)
def test_a_territory_csv_is_read_from_its_zip_or_state_column(text, kind, values, bad):
    assert territory_values_from_csv(text.encode(), kind=kind) == (values, bad)


def test_more_than_ten_bad_lines_are_summed_up(admin_client, every_model):
    content = "\n".join(["zip", *(f"bad{n}" for n in range(15))]).encode()

    response = post_territory_upload(admin_client, every_model["contract"], content)

    html = response.content.decode()
    assert "line 11: bad9 and 5 more." in html
    assert "bad10" not in html


def save_contract(admin_client, contract: Contract, **changes: Any):
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    data.update(changes)
    return admin_client.post(url(contract, "change", contract.pk), data)


@pytest.mark.parametrize(
    ("source_filter", "error"),
    [("allow", "List the sources to allow."), ("block", "List the sources to block.")],
)
def test_an_allow_or_block_list_without_sources_is_refused(
    admin_client, every_model, source_filter, error
):
    contract = every_model["contract"]

    response = save_contract(admin_client, contract, source_filter=source_filter, sources=[])

    assert response.status_code == 200
    assert error in response.content.decode()
    assert list(contract.sources.all()) == [every_model["source"]]


def test_listed_sources_need_allow_or_block(admin_client, every_model):
    contract = every_model["contract"]

    response = save_contract(admin_client, contract, source_filter="all")

    assert response.status_code == 200
    assert "Choose allow or block for the listed sources." in response.content.decode()
    contract.refresh_from_db()
    assert contract.source_filter == SourceFilter.ALLOW


def test_a_block_list_is_saved_with_its_sources(admin_client, every_model):
    contract = every_model["contract"]
    other = SourceFactory()

    response = save_contract(
        admin_client,
        contract,
        source_filter="block",
        sources=[str(other.pk)],
        refuse_bought_scope="contract",
    )

    assert response.status_code == 302, form_errors(response)
    contract.refresh_from_db()
    assert (contract.source_filter, contract.refuse_bought_scope) == ("block", "contract")
    assert list(contract.sources.all()) == [other]


def test_the_model_s_own_checks_show_as_form_errors(admin_client, every_model):
    contract = every_model["contract"]

    response = save_contract(
        admin_client, contract, min_lead_age_minutes="60", max_lead_age_minutes="30"
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "max_lead_age_minutes": ["The youngest age must be below the oldest."]
    }
    assert "The youngest age must be below the oldest." in response.content.decode()


def endpoint_form_errors(response) -> list[dict[str, list[str]]]:
    (formset,) = [
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is DeliveryEndpoint
    ]
    return [dict(form.errors) for form in formset.forms if form.errors]


def json_body(*lines: str) -> dict[str, str]:
    """A JSON body template of these lines, between the braces on lines 1 and last."""
    return {"body_template": "\n".join(("{", *lines, "}"))}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        # A filter left without its name, on the body's third line.
        (
            json_body('  "email": "{{ fields.email }}",', '  "tel": "{{ fields.phone | }}"'),
            "body_template",
            "body, line 3: ",
        ),
        # A name the vertical does not have, on line 3.
        (
            json_body('  "email": "{{ fields.email }}",', '  "name": "{{ fields.frist }}"'),
            "body_template",
            "body, line 3: ",
        ),
        # Not JSON: the comma missing at the end of line 2.
        (
            json_body('  "email": "{{ fields.email }}"', '  "tel": "{{ fields.phone }}"'),
            "body_template",
            "line 3",
        ),
        ({"query": '{"key": "{{ secrets.api_key | nope }}"}'}, "query", "query key"),
        ({"headers": '{"X-Key": "{{ secrets.api_key "}'}, "headers", "header X-Key"),
    ],
)
def test_a_template_error_shows_at_its_field_with_the_templates_line(
    admin_client, every_model, changes, field, words
):
    endpoint = every_model["endpoint"]

    response = save_contract_page(admin_client, every_model["contract"], **changes)

    assert response.status_code == 200
    ((errors),) = endpoint_form_errors(response)
    assert list(errors) == [field]
    (message,) = errors[field]
    assert words in message
    # Shown in the field's own row of the endpoint's form on the contract page.
    row = rf'field-{field}">\s*<ul class="errorlist"[^>]*><li>{re.escape(escape(message))}</li>'
    assert re.search(row, response.content.decode())
    endpoint.refresh_from_db()
    assert (endpoint.body_template, endpoint.query) == ("", {})


def test_a_new_contract_that_cannot_deliver_yet_is_saved_paused_saying_why(admin_client):
    buyer, vertical = BuyerFactory(), VerticalFactory()
    add = url(Contract, "add")
    data = change_form_data(admin_client.get(f"{add}?buyer={buyer.pk}&vertical={vertical.pk}"))
    data.update(name="To be filled from a preset", price_model="ping_post", floor_price="1.00")

    response = admin_client.post(add, data, follow=True)

    contract = Contract.objects.get(name="To be filled from a preset")
    assert contract.status == ContractStatus.PAUSED
    assert contract.paused_reason.startswith("New; to finish: ")
    assert "post endpoint" in contract.paused_reason
    assert "is paused until it can deliver a lead" in response.content.decode()


def test_a_live_contract_cannot_lose_what_it_delivers_with(admin_client, every_model):
    contract = every_model["contract"]

    response = save_contract_page(admin_client, contract, DELETE="on")

    assert response.status_code == 200
    assert "An active contract must be able to deliver." in response.content.decode()
    assert contract.endpoints.filter(kind=EndpointKind.POST).exists()


def test_closed_dates_are_saved_through_the_contract_page(admin_client, every_model):
    contract = every_model["contract"]
    page = admin_client.get(url(contract, "change", contract.pk))
    data = change_form_data(page)
    prefix = formset_prefix(page, ClosedDate)
    add_inline_row(data, prefix, date="2030-07-04", note="Independence Day")
    add_inline_row(data, prefix, date="2030-11-28")

    response = admin_client.post(url(contract, "change", contract.pk), data)

    assert response.status_code == 302, form_errors(response)
    assert [(d.date, d.note) for d in contract.closed_dates.all()] == [
        (date(2030, 7, 4), "Independence Day"),
        (date(2030, 11, 28), ""),
        (date(2030, 12, 25), "Christmas"),
    ]


def test_a_closed_date_cannot_be_listed_twice(admin_client, every_model):
    contract = every_model["contract"]

    response = save_with_new_row(admin_client, contract, ClosedDate, date="2030-12-25")

    assert response.status_code == 200
    assert contract.closed_dates.count() == 1


# --- Buyer caps ---


def test_buyer_caps_are_saved_through_the_buyer_page(admin_client, every_model):
    buyer = every_model["buyer"]
    page = admin_client.get(url(buyer, "change", buyer.pk))
    data = change_form_data(page)
    data["consent_names"] = "Acme Direct"
    add_inline_row(
        data, formset_prefix(page, BuyerCap), period="month", max_leads="", max_budget="25000"
    )

    response = admin_client.post(url(buyer, "change", buyer.pk), data)

    assert response.status_code == 302, form_errors(response)
    assert [(c.period, c.max_leads, c.max_budget) for c in buyer.caps.order_by("id")] == [
        ("day", 500, None),
        ("month", None, Decimal("25000.00")),
    ]
    buyer.refresh_from_db()
    assert buyer.names_for_consent == [buyer.company, "Acme Direct"]


def test_a_buyer_cap_without_a_limit_is_refused(admin_client, every_model):
    buyer = every_model["buyer"]

    response = save_with_new_row(admin_client, buyer, BuyerCap, period="week")

    assert response.status_code == 200
    assert "Set a lead count, a budget, or both." in response.content.decode()
    assert buyer.caps.count() == 1


@pytest.mark.parametrize("model", [CapCounter, CapReservation], ids=lambda m: m.__name__)
def test_nobody_adds_or_edits_the_engine_s_cap_records(admin_client, every_model, model):
    obj = model.objects.first()

    assert admin_client.get(url(model, "add")).status_code == 403
    assert url(model, "add") not in admin_client.get(url(model, "changelist")).content.decode()
    page = admin_client.get(url(model, "change", obj.pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.post(url(model, "change", obj.pk), {}).status_code == 403
    assert admin_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_reservations_are_found_by_lead_id_only_exactly(admin_client, every_model):
    lead = every_model["lead"]
    changelist = url(CapReservation, "changelist")

    for term, found in ((str(lead.pk), True), (str(lead.pk)[:8], False), ("x" * 40, False)):
        response = admin_client.get(changelist, {"q": term})
        assert len(response.context["cl"].result_list) == int(found), term


# --- Verticals ---


def test_a_vertical_cannot_drop_a_field_it_compares_duplicates_on(admin_client, every_model):
    vertical = every_model["vertical"]
    page = admin_client.get(url(vertical, "change", vertical.pk))
    data = change_form_data(page)
    (name_key,) = [k for k, v in data.items() if k.endswith("-name") and v == "email"]
    data[name_key.replace("-name", "-DELETE")] = "on"

    response = admin_client.post(url(vertical, "change", vertical.pk), data)

    assert response.status_code == 200
    assert "Duplicates are compared on email" in response.content.decode()
    assert VerticalField.objects.filter(vertical=vertical, name="email").exists()


def test_a_new_vertical_checks_its_duplicate_fields_against_its_own_fields(admin_client):
    base = {
        "name": "Solar",
        "slug": "solar",
        "active": "on",
        "distribution_mode": "auction",
        "auction_timeout_ms": "1500",
        "max_buyers": "1",
        "min_margin": "0",
        "duplicate_fields": '["email"]',
        "duplicate_lookback_days": "30",
        "duplicate_scope": "global",
        "tier_hot_from": "80",
        "tier_warm_from": "60",
        "tier_qualified_from": "40",
        "scoring_rules-TOTAL_FORMS": "0",
        "scoring_rules-INITIAL_FORMS": "0",
        "fields-TOTAL_FORMS": "1",
        "fields-INITIAL_FORMS": "0",
        "fields-0-position": "0",
        "fields-0-field_type": "email",
        "fields-0-choices": "[]",
    }

    refused = admin_client.post(url(Vertical, "add"), {**base, "fields-0-name": "phone"})
    assert refused.status_code == 200
    assert not Vertical.objects.filter(slug="solar").exists()

    response = admin_client.post(url(Vertical, "add"), {**base, "fields-0-name": "email"})
    assert response.status_code == 302, form_errors(response)
    assert Vertical.objects.get(slug="solar").fields.get().name == "email"


# --- Leads ---


def test_the_lead_page_lists_its_attempts_in_time_order(admin_client):
    lead = LeadFactory()
    auction = AuctionFactory(lead=lead)
    start = timezone.now()
    plan = [  # created out of order on purpose
        ("Contract-Late", AttemptOutcome.ACCEPTED, 3),
        ("Contract-Early", AttemptOutcome.TIMEOUT, 1),
        ("Contract-Middle", AttemptOutcome.DECLINED, 2),
    ]
    for name, outcome, second in plan:
        attempt = AttemptFactory(
            auction=auction,
            contract=ContractFactory(name=name, vertical=lead.vertical),
            outcome=outcome,
        )
        Attempt.objects.filter(pk=attempt.pk).update(created_at=start + timedelta(seconds=second))

    page = admin_client.get(url(lead, "change", lead.pk)).content.decode()

    # Only the timeline: other parts of the page may name the same contracts in their own order.
    start = page.index('id="attempts-group"')
    end = page.find("inline-group", start)  # the next inline, if any
    html = page[start : end if end != -1 else None]
    positions = [
        html.index(name) for name in ("Contract-Early", "Contract-Middle", "Contract-Late")
    ]
    assert positions == sorted(positions)
    outcomes = [html.index(label) for label in ("Timed out", "Declined", "Accepted<")]
    assert outcomes == sorted(outcomes)
    assert html.count(url(attempt, "change", attempt.pk)) == 1  # a link to each attempt


def test_the_lead_page_shows_its_raw_body_data_and_consent(admin_client, every_model):
    lead = every_model["lead"]

    html = admin_client.get(url(lead, "change", lead.pk)).content.decode()

    assert "&quot;vertical&quot;: &quot;auto&quot;" in html  # raw body, escaped
    assert "Not a phone number." in html
    assert "I agree" in html
    assert "<pre" in html


def test_nobody_adds_or_edits_a_lead_in_the_admin(admin_client, every_model):
    lead = every_model["lead"]
    assert admin_client.get(url(lead, "add")).status_code == 403
    page = admin_client.get(url(lead, "change", lead.pk))
    assert 'name="_save"' not in page.content.decode()


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("id", True),
        ("CONSUMER0@example.com", True),
        ("(312) 555-0000", True),
        ("60601", True),
        ("sub-42", True),
        ("not a thing", False),
        ("12345678-aaaa", False),
    ],
)
def test_lead_search_matches_exactly_on_indexed_fields(admin_client, term, found):
    lead = LeadFactory(email="consumer0@example.com", phone="+13125550000", sub_id="sub-42")
    query = str(lead.pk) if term == "id" else term

    response = admin_client.get(url(lead, "changelist"), {"q": query})

    assert response.status_code == 200
    assert (lead in response.context["cl"].result_list) is found


# --- No N+1 ---


@pytest.fixture
def changelist_rows(admin_client, django_assert_max_num_queries):
    """Open a model's changelist within `max_queries` queries; return how many rows it shows."""

    def rows(model, *, max_queries: int) -> int:
        with django_assert_max_num_queries(max_queries):
            response = admin_client.get(url(model, "changelist"))
        return len(response.context["cl"].result_list)

    return rows


def test_the_lead_changelist_makes_a_bounded_number_of_queries(changelist_rows):
    LeadFactory.create_batch(50)
    assert changelist_rows(Lead, max_queries=10) == 50


def test_the_contract_changelist_makes_a_bounded_number_of_queries(changelist_rows):
    ContractFactory.create_batch(50)
    assert changelist_rows(Contract, max_queries=9) == 50


def test_the_source_changelist_makes_a_bounded_number_of_queries(changelist_rows):
    for _ in range(30):
        source = SourceFactory(verticals=[VerticalFactory(), VerticalFactory()])
        source_api_key_create(source=source)
    assert changelist_rows(Source, max_queries=9) == 30


def test_the_lead_page_makes_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    lead = LeadFactory()
    auction = AuctionFactory(lead=lead)
    for _ in range(20):
        AttemptFactory(auction=auction)
    SaleFactory(lead=lead, auction=auction)
    # The eligibility table adds a fixed few: the vertical's rules, cap counters, past sales;
    # the status history three: auctions, sales and the admin log.
    with django_assert_max_num_queries(21):
        response = admin_client.get(url(lead, "change", lead.pk))
    assert response.status_code == 200


def test_the_cap_record_changelists_make_a_bounded_number_of_queries(changelist_rows):
    start = datetime(2030, 1, 1, tzinfo=UTC)
    for n in range(30):
        contract = ContractFactory()
        counter = CapCounter.objects.create(
            contract=contract, period=CapPeriod.HOUR, period_start=start + timedelta(hours=n)
        )
        CapCounter.objects.create(
            buyer=contract.buyer, period=CapPeriod.HOUR, period_start=counter.period_start
        )
        reservation = CapReservation.objects.create(
            lead=LeadFactory(), contract=contract, price=Decimal(10)
        )
        reservation.counters.add(counter)
    assert changelist_rows(CapCounter, max_queries=9) == 60
    assert changelist_rows(CapReservation, max_queries=9) == 30


def test_the_buyer_page_makes_a_bounded_number_of_queries(
    admin_client, django_assert_max_num_queries
):
    buyer = BuyerFactory()
    for _ in range(20):
        ContractFactory(buyer=buyer)
    with django_assert_max_num_queries(9):
        response = admin_client.get(url(buyer, "change", buyer.pk))
    assert response.status_code == 200


def test_the_contract_and_buyer_pages_show_cap_usage_and_hours(admin_client):
    from datetime import time as clock
    from decimal import Decimal as D

    from buyers.models import BuyerCap, CapPeriod, ContractCap, ScheduleWindow
    from buyers.services import cap_reserve

    contract = ContractFactory(buyer__time_zone="America/Chicago")
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=50)
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.WEEK, max_budget=D("500"))
    ScheduleWindow.objects.create(
        contract=contract, weekday=0, opens_at=clock(9), closes_at=clock(17)
    )
    cap_reserve(lead=LeadFactory(vertical=contract.vertical), contract=contract, price=D("12.50"))
    page = admin_client.get(url(contract, "change", contract.pk)).content.decode()
    assert "1 / 50" in page
    assert "$12.50 / $500.00" in page
    assert "Mon 09:00–17:00 (America/Chicago)" in page
    buyer_page = admin_client.get(url(contract.buyer, "change", contract.buyer.pk)).content.decode()
    assert "$12.50 / $500.00" in buyer_page
    assert "1 / 50" not in buyer_page


def test_saving_a_cap_mid_period_counts_the_periods_earlier_sales(admin_client):
    from decimal import Decimal as D

    from buyers.models import CapCounter, CapPeriod
    from buyers.services import cap_reserve

    contract = ContractFactory()
    for _ in range(3):
        cap_reserve(lead=LeadFactory(vertical=contract.vertical), contract=contract, price=D("10"))
    response = admin_client.post(
        reverse("admin:buyers_contractcap_add"),
        {"contract": contract.pk, "period": CapPeriod.DAY, "max_leads": 5},
    )
    assert response.status_code == 302
    counter = CapCounter.objects.get(contract=contract, period=CapPeriod.DAY)
    assert (counter.leads, counter.spend) == (3, D("30.00"))


def test_typed_buyer_credentials_are_hidden_from_error_reports(admin_client):
    from django.views.debug import SafeExceptionReporterFilter

    endpoint = DeliveryEndpointFactory()
    response = admin_client.post(
        url(endpoint, "change", endpoint.pk), {"auth_secret": "typed-s3cret"}
    )
    request = response.wsgi_request
    assert request.sensitive_post_parameters == "__ALL__"
    cleaned = SafeExceptionReporterFilter().get_post_parameters(request)
    assert "typed-s3cret" not in str(dict(cleaned))
