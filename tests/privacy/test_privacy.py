"""Erasing a consumer (GDPR Art. 17) from every table that holds a copy, the erase_consumer
command, and the retention job that empties raw bodies past their days."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import models
from django.utils import timezone

from buyers.models import CapReservation, EndpointKind
from exchange.models import InboundPing, PingAttempt, PingStatus
from leads.intake import consumer_hash
from leads.models import (
    ContactKind,
    FieldType,
    IdempotencyRecord,
    Lead,
    LeadStatus,
    Postback,
    PostbackStatus,
    SuppressedContact,
)
from leads.services import suppression_hash
from privacy.services import (
    ERASED,
    SUPPRESSION_LIST_NAME,
    ConsumerBusy,
    InvalidConsumer,
    consumer_erase,
    lead_dependants,
    raw_bodies_purge,
)
from privacy.tasks import purge_raw_bodies
from reporting.models import LeadHour, RejectionHour, SaleHour, SaleReturn
from reporting.rollup import floor_hour, rollup_rebuild
from routing.models import Attempt, AttemptOutcome, Auction, Sale
from routing.services import RerouteRefused, lead_reroute
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory, VerticalFieldFactory
from tests.routing.factories import AttemptFactory, AuctionFactory, SaleFactory
from tests.staff import admin_pages_as

pytestmark = pytest.mark.django_db

EMAIL = "marigold.quixote@example.com"
PHONE = "+12125550142"
FIRST, LAST = "Marigold", "Quixote"
IP = "198.51.100.77"
STREET = "12 Windmill Lane"
# Every spelling of the consumer that must be gone from the whole database after erasure: a
# hash of the email or phone names the consumer too.
CANARIES = (
    EMAIL,
    "2125550142",
    "212) 555-0142",
    "212.555.0142",
    FIRST,
    LAST,
    IP,
    STREET,
    consumer_hash(EMAIL),
    consumer_hash(PHONE),
)
TEXT_FIELDS = (
    models.TextField,
    models.CharField,
    models.JSONField,
    models.BinaryField,
    models.GenericIPAddressField,
)


def holding(canaries=CANARIES) -> list[str]:
    """Every table.column, anywhere in the database, that holds one of the canaries."""
    found = []
    for model in apps.get_models():
        columns = [f for f in model._meta.concrete_fields if isinstance(f, TEXT_FIELDS)]
        if not columns:
            continue
        for row in model.objects.values_list(*(f.attname for f in columns)):
            for column, value in zip(columns, row, strict=True):
                if isinstance(value, bytes | memoryview):
                    text = bytes(value).decode(errors="replace")
                else:
                    text = value if isinstance(value, str) else json.dumps(value)
                found += [
                    f"{model._meta.db_table}.{column.column}: {canary}"
                    for canary in canaries
                    if canary.lower() in (text or "").lower()
                ]
    return found


def snapshot(*querysets) -> list[dict]:
    return [row for queryset in querysets for row in queryset.order_by("pk").values()]


def money() -> list[tuple]:
    """What reports and settlement read: statuses, prices, payouts and times."""
    return [
        *Lead.objects.order_by("pk").values_list(
            "pk", "status", "sale_price", "payout", "received_at", "sold_at"
        ),
        *Sale.objects.order_by("pk").values_list("pk", "price", "payout", "status", "sold_at"),
    ]


@pytest.fixture
def vertical():
    vertical = VerticalFactory()
    for name, field_type, is_pii in (
        ("first_name", FieldType.STRING, True),
        ("last_name", FieldType.STRING, True),
        ("email", FieldType.EMAIL, True),
        ("phone", FieldType.PHONE, True),
        ("street_address", FieldType.STRING, True),
        ("zip_code", FieldType.ZIP, False),
        ("state", FieldType.STATE, False),
    ):
        VerticalFieldFactory(vertical=vertical, name=name, field_type=field_type, is_pii=is_pii)
    return vertical


def raw(email: str, phone: str, **fields) -> str:
    return json.dumps(
        {"vertical": "v", "fields": {"email": email, "phone": phone, **fields}},
        separators=(", ", ": "),
    )


@pytest.fixture
def consumer(vertical):
    """The consumer's sold lead with every row that copies it, an invalid lead that only its raw
    body ties to the consumer, and a duplicate."""
    data = {
        "first_name": FIRST,
        "last_name": LAST,
        "email": EMAIL,
        "phone": PHONE,
        "street_address": STREET,
        "zip_code": "60601",
        "state": "IL",
        "city": "Chicago",
    }
    sold = LeadFactory(
        vertical=vertical,
        status=LeadStatus.SOLD,
        email=EMAIL,
        phone=PHONE,
        data=data,
        raw_body=raw("Marigold.Quixote@Example.com", "(212) 555-0142", first_name="marigold"),
        # Kept by the source's posting profile: nobody knows whether it is personal.
        extra={"spouse_name": "Quentin Quixote"},
        consent={"text": "I agree to be called.", "ip": IP, "user_agent": "Mozilla/5.0 (X11)"},
        remote_ip=IP,
        sub_id="spring",
        # A breakdown written while the rule's field quoted its value (before it was personal).
        score=40,
        tier="qualified",
        score_breakdown={"rules": [{"rule": "Known street", "why": f"street is {STREET!r}"}]},
        sale_price=Decimal("24.00"),
        payout=Decimal("8.00"),
        sold_at=timezone.now(),
    )
    invalid = LeadFactory(
        vertical=vertical,
        status=LeadStatus.INVALID,
        email="",
        phone="",
        data={},
        raw_body=raw("MARIGOLD.QUIXOTE@example.com", "212.555.0142", zip_code="abc"),
        errors={"fields.zip_code": ["Give a 5-digit ZIP code (or ZIP+4), e.g. 30301."]},
        remote_ip=IP,
    )
    duplicate = LeadFactory(
        vertical=vertical,
        status=LeadStatus.DUPLICATE,
        email=EMAIL,
        phone=PHONE,
        data=data,
        raw_body=raw(EMAIL, "1-212-555-0142"),
        duplicate_of=sold,
    )
    auction = AuctionFactory(
        lead=sold,
        status="sold",
        explanation=[{"contract": "Acme", "eligible": False, "reason": f"email is {EMAIL!r}"}],
    )
    contract = ContractFactory(vertical=vertical)
    AttemptFactory(auction=auction, contract=contract)  # a ping: no personal data
    post_body = json.dumps({"FirstName": FIRST.upper(), "Email": EMAIL, "Phone": "212-555-0142"})
    AttemptFactory(
        auction=auction,
        contract=contract,
        kind=EndpointKind.POST,
        outcome=AttemptOutcome.REJECTED,
        url=f"http://127.0.0.1:9100/post?email={EMAIL.replace('@', '%40')}&phone=%2B12125550142",
        request_body=post_body,
        response_body=json.dumps({"status": "rejected", "reason": f"{EMAIL} bought already"}),
        reason=f"duplicate: {EMAIL}",
        price=None,
    )
    AttemptFactory(
        auction=auction,
        contract=contract,
        kind=EndpointKind.POST,
        outcome=AttemptOutcome.ACCEPTED,
        method="EMAIL",
        url="mailto:leads@buyer.example",
        request_headers={"Subject": "New lead", "To": "leads@buyer.example"},
        request_body=f"first_name: {FIRST}\nemail: {EMAIL}\nphone: {PHONE}\n",
        response_body="sent",
    )
    sale = SaleFactory(
        lead=sold, auction=auction, contract=contract, price=Decimal("24.00"), payout="8.00"
    )
    SaleReturn.objects.create(
        sale=sale,
        reason="other",
        note=f"{FIRST} {LAST} says she never asked",
        payout_reversed=True,
        returned_by="ops",
        created_at=timezone.now(),
    )
    CapReservation.objects.create(lead=sold, contract=contract, price=Decimal("24.00"))
    Postback.objects.create(
        lead=sold,
        url="https://partner.example/postback",
        lead_status=LeadStatus.SOLD,
        status=PostbackStatus.DELIVERED,
        request_body=json.dumps({"id": str(sold.pk), "status": "sold"}),
        response_body=f"ok {EMAIL}",
    )
    IdempotencyRecord.objects.create(
        source=invalid.source,
        key="order-1",
        request_hash="0" * 64,
        lead=invalid,
        response_status=400,
        response_document=json.dumps({"errors": {"fields.email": [f"{EMAIL} is taken"]}}),
        response_headers={"Content-Type": "application/problem+json"},
    )
    return sold, invalid, duplicate


@pytest.fixture
def other(vertical):
    """Another consumer, with a post of their own."""
    lead = LeadFactory(
        vertical=vertical,
        status=LeadStatus.SOLD,
        email="jane.doe@example.com",
        phone="+13125550199",
        raw_body=raw("jane.doe@example.com", "(312) 555-0199"),
        consent={"text": "I agree", "ip": "203.0.113.9"},
        remote_ip="203.0.113.9",
        sale_price=Decimal("30.00"),
        payout=Decimal("8.00"),
    )
    AttemptFactory(
        lead=lead,
        auction=AuctionFactory(lead=lead),
        kind=EndpointKind.POST,
        request_body='{"Email": "jane.doe@example.com"}',
    )
    return lead


def test_it_erases_the_consumer_from_every_table_and_keeps_the_money(consumer, other):
    others_before = snapshot(Lead.objects.filter(pk=other.pk), Attempt.objects.filter(lead=other))
    money_before = money()
    assert holding()  # the fixture put the consumer everywhere
    assert f"leads_lead.email_sha256: {consumer_hash(EMAIL)}" in holding()

    report = consumer_erase(email=EMAIL)

    assert holding() == []
    assert sorted(report.lead_ids) == sorted(str(lead.pk) for lead in consumer)
    assert report.counts == {
        "leads.Lead": 3,
        "routing.Attempt": 3,
        "routing.Auction": 1,
        "leads.Postback": 1,
        "leads.IdempotencyRecord": 1,
        "reporting.SaleReturn": 1,
    }
    assert (
        snapshot(Lead.objects.filter(pk=other.pk), Attempt.objects.filter(lead=other))
        == others_before
    )
    assert money() == money_before


def test_an_erased_lead_keeps_its_shape_and_says_when_it_was_erased(consumer):
    sold, invalid, _ = consumer

    consumer_erase(phone=PHONE)

    sold.refresh_from_db()
    assert sold.erased_at is not None
    assert (sold.email, sold.phone, sold.raw_body, sold.remote_ip) == ("", "", "", None)
    assert (sold.email_sha256, sold.phone_sha256) == ("", "")
    assert sold.extra == {}
    assert sold.data == {
        "first_name": ERASED,
        "last_name": ERASED,
        "email": ERASED,
        "phone": ERASED,
        "street_address": ERASED,
        "zip_code": "60601",
        "state": "IL",
        "city": "Chicago",
    }
    # Reports count leads without consent by an empty record: the record keeps its keys.
    assert sold.consent == {"text": "I agree to be called.", "ip": ERASED, "user_agent": ERASED}
    assert (sold.sub_id, sold.zip_code, sold.state) == ("spring", "60601", "IL")
    invalid.refresh_from_db()
    assert invalid.errors == {
        "fields.zip_code": ["Give a 5-digit ZIP code (or ZIP+4), e.g. 30301."]
    }
    post = Attempt.objects.get(lead=sold, outcome=AttemptOutcome.REJECTED)
    assert (post.request_body, post.response_body) == ("", "")
    assert post.reason == f"duplicate: {ERASED}"
    assert post.url == f"http://127.0.0.1:9100/post?email={ERASED}&phone={ERASED}"
    assert Auction.objects.get(lead=sold).explanation[0]["reason"] == f"email is '{ERASED}'"
    record = IdempotencyRecord.objects.get()
    assert json.loads(record.response_document) == {
        "errors": {"fields.email": [f"{ERASED} is taken"]}
    }


def test_reports_add_up_the_same_after_erasure(consumer, other):
    hour = floor_hour(consumer[0].received_at)

    def figures() -> list[dict]:
        rollup_rebuild(start=hour, end=hour + timedelta(hours=1))
        return [
            {k: v for k, v in row.items() if k != "id"}
            for model in (LeadHour, SaleHour)
            for row in model.objects.order_by("source_id", "vertical_id").values()
        ]

    before = figures()
    consumer_erase(email=EMAIL, phone=PHONE)

    assert figures() == before
    assert not RejectionHour.objects.filter(reason__icontains=EMAIL).exists()


@pytest.mark.parametrize(
    "typed", ["(212) 555-0142", "212-555-0142", "+1 212 555 0142", "2125550142", "12125550142"]
)
def test_a_phone_in_any_format_finds_the_e164_lead_and_the_raw_body_only_one(consumer, typed):
    report = consumer_erase(phone=typed)

    assert report.phone == PHONE
    assert len(report.lead_ids) == 3


def test_an_email_in_any_case_finds_the_lead(consumer):
    assert len(consumer_erase(email="  Marigold.QUIXOTE@example.COM ").lead_ids) == 3


def test_a_lead_only_its_data_ties_to_the_consumer_is_found(vertical):
    # Its raw body already purged by retention, its email in a field of another name.
    lead = LeadFactory(
        vertical=vertical,
        status=LeadStatus.UNSOLD,
        email="",
        phone="",
        raw_body="",
        data={"work_email": EMAIL},
    )

    assert consumer_erase(email=EMAIL).lead_ids == [str(lead.pk)]
    lead.refresh_from_db()
    assert lead.data == {"work_email": ERASED}


def test_a_longer_address_or_another_area_code_is_another_consumer(vertical):
    kept = [
        LeadFactory(
            vertical=vertical,
            email=f"x{EMAIL}",
            phone="+13125550142",
            raw_body=raw(f"x{EMAIL}", "(312) 555-0142"),
        ),
        LeadFactory(
            vertical=vertical,
            email="",
            phone="",
            raw_body=raw(f"{EMAIL}.au", "(212) 555-01420"),
        ),
    ]
    before = snapshot(Lead.objects.all())

    report = consumer_erase(email=EMAIL, phone=PHONE)

    assert report.lead_ids == []
    assert snapshot(Lead.objects.all()) == before
    assert all(lead.erased_at is None for lead in Lead.objects.filter(pk__in=[k.pk for k in kept]))


def test_erasing_again_erases_nothing(consumer):
    consumer_erase(email=EMAIL, phone=PHONE)
    after_first = snapshot(Lead.objects.all(), Attempt.objects.all(), Postback.objects.all())

    again = consumer_erase(email=EMAIL, phone=PHONE)

    assert (again.lead_ids, again.counts) == ([], {})
    assert snapshot(Lead.objects.all(), Attempt.objects.all(), Postback.objects.all()) == (
        after_first
    )


def test_a_dry_run_reports_exactly_what_it_would_erase_and_changes_nothing(consumer):
    before = snapshot(Lead.objects.all(), Attempt.objects.all(), SuppressedContact.objects.all())

    dry = consumer_erase(email=EMAIL, phone=PHONE, dry_run=True, suppress=True)

    assert snapshot(Lead.objects.all(), Attempt.objects.all(), SuppressedContact.objects.all()) == (
        before
    )
    assert holding()
    real = consumer_erase(email=EMAIL, phone=PHONE, suppress=True)
    assert (dry.counts, dry.lead_ids, dry.suppressed) == (real.counts, real.lead_ids, 2)


def test_suppress_lists_the_consumer_hashed_so_that_they_are_not_sold_again(consumer):
    consumer_erase(email=EMAIL, phone=PHONE, suppress=True)

    entries = SuppressedContact.objects.filter(suppression_list__name=SUPPRESSION_LIST_NAME)
    assert set(entries.values_list("kind", "value_hash")) == {
        (ContactKind.EMAIL, suppression_hash(ContactKind.EMAIL, EMAIL)),
        (ContactKind.PHONE, suppression_hash(ContactKind.PHONE, PHONE)),
    }
    assert holding() == []  # hashes only


def test_a_lead_being_routed_is_not_erased_under_the_buyer_post(consumer, vertical):
    routing = LeadFactory(vertical=vertical, status=LeadStatus.ROUTING, email=EMAIL)
    before = snapshot(Lead.objects.all(), Attempt.objects.all())

    with pytest.raises(ConsumerBusy, match="being routed"):
        consumer_erase(email=EMAIL)

    assert snapshot(Lead.objects.all(), Attempt.objects.all()) == before
    assert str(routing.pk) in str(before)


def test_an_erased_lead_is_never_routed_again(vertical):
    lead = LeadFactory(vertical=vertical, status=LeadStatus.UNSOLD, email=EMAIL)
    consumer_erase(email=EMAIL)
    lead.refresh_from_db()

    with pytest.raises(RerouteRefused, match="erased"):
        lead_reroute(lead=lead, actor="ops")
    lead.refresh_from_db()
    assert lead.status == LeadStatus.UNSOLD


@pytest.mark.parametrize(
    ("email", "phone", "message"),
    [
        ("", "", "email, phone or both"),
        ("not-an-address", "", "Not a valid email address"),
        ("", "555", "Not a phone number|Not a valid US phone number"),
        ("", "+44 20 7946 0958", "Not a valid US phone number"),
    ],
)
def test_it_refuses_what_intake_would_refuse(email, phone, message):
    with pytest.raises(InvalidConsumer, match=message):
        consumer_erase(email=email, phone=phone)


def test_every_table_pointing_at_a_lead_is_found_without_being_listed():
    found = {model._meta.label: lookup for model, lookup in lead_dependants()}

    # A table added later with a foreign key to a lead joins these by itself.
    assert {
        "routing.Auction": "lead",
        "routing.Attempt": "lead",
        "routing.Sale": "lead",
        "leads.IdempotencyRecord": "lead",
        "leads.Postback": "lead",
        "buyers.CapReservation": "lead",
        "reporting.SaleReturn": "sale__lead",
    }.items() <= found.items()
    assert "leads.Lead" not in found


def test_ops_open_an_erased_leads_page_and_see_no_trace_of_the_consumer(consumer, settings):
    settings.SECURE_SSL_REDIRECT = False
    consumer_erase(email=EMAIL)

    (text,) = admin_pages_as("Ops", consumer[0])

    assert "Erased at" in text
    assert [canary for canary in CANARIES if canary.lower() in text.lower()] == []


def test_sales_never_see_the_consumer_a_buyer_quotes_back_nor_who_consented(consumer, settings):
    settings.SECURE_SSL_REDIRECT = False
    sold = consumer[0]
    post = Attempt.objects.get(lead=sold, outcome=AttemptOutcome.REJECTED)
    Attempt.objects.filter(pk=post.pk).update(error=f"HTTP 409: {EMAIL} exists")

    texts = admin_pages_as("Sales", sold, post)

    for text in texts:
        assert "duplicate: m***@example.com" in text
        assert [canary for canary in CANARIES if canary.lower() in text.lower()] == []
        assert "Mozilla/5.0 (X11)" not in text  # the consent's user agent


# --- The command ----------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("erase_consumer", *args, stdout=out)
    return out.getvalue()


def test_the_command_says_what_it_erased_without_repeating_the_address(consumer):
    output = run("--email", EMAIL, "--phone", "(212) 555-0142", "--suppress")

    assert "Erased the consumer with email m***@example.com and phone ***0142: 3 leads" in output
    assert "routing.Attempt" in output
    assert "leads.Lead" in output
    assert 'Suppression list "Erased consumers": added 2 new contacts.' in output
    assert EMAIL not in output
    assert holding() == []


def test_the_command_dry_run_changes_nothing(consumer):
    output = run("--phone", PHONE, "--dry-run")

    assert "Would erase the consumer with phone ***0142: 3 leads" in output
    assert "Dry run: nothing was changed." in output
    assert Lead.objects.filter(erased_at__isnull=False).count() == 0


def test_the_command_says_when_there_is_nothing_to_erase(db):
    assert "No personal data found" in run("--email", EMAIL)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "Give the consumer's --email, --phone or both."),
        (("--email", "  "), "Give the consumer's --email, --phone or both."),
        (("--email", "mary@"), "Not a valid email address"),
        (("--phone", "12"), "phone number"),
    ],
)
def test_the_command_refuses_without_a_valid_email_or_phone(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_the_command_refuses_while_a_lead_is_routed(vertical):
    LeadFactory(vertical=vertical, status=LeadStatus.ACCEPTED, email=EMAIL)

    with pytest.raises(CommandError, match="being routed"):
        run("--email", EMAIL)


# --- Retention ------------------------------------------------------------------------------


def aged(days: float, **fields) -> Lead:
    lead = LeadFactory(
        received_at=timezone.now() - timedelta(days=days),
        raw_body=raw(EMAIL, PHONE),
        status=LeadStatus.SOLD,
        **fields,
    )
    attempt = AttemptFactory(
        lead=lead, auction=AuctionFactory(lead=lead), kind=EndpointKind.POST, request_body="{}"
    )
    Postback.objects.create(
        lead=lead,
        url="https://partner.example/postback",
        lead_status=LeadStatus.SOLD,
        status=PostbackStatus.DELIVERED,
        request_body='{"status": "sold"}',
        response_body="ok",
    )
    assert attempt.response_body
    return lead


def bodies(lead: Lead) -> list[str]:
    lead.refresh_from_db()
    return [
        lead.raw_body,
        *Attempt.objects.filter(lead=lead).values_list("request_body", "response_body")[0],
        *Postback.objects.filter(lead=lead).values_list("request_body", "response_body")[0],
    ]


def test_retention_empties_the_bodies_of_old_leads_and_keeps_the_recent_ones(settings):
    settings.RAW_BODY_RETENTION_DAYS = 90
    old, recent = aged(91), aged(89)

    assert purge_raw_bodies() == 1

    assert bodies(old) == ["", "", "", "", ""]
    assert all(bodies(recent))
    old.refresh_from_db()
    assert (old.email, old.data, old.sale_price) == (old.email, old.data, old.sale_price)
    assert old.email  # only the raw bodies go; the lead itself is kept
    assert purge_raw_bodies() == 0


def test_retention_of_zero_days_keeps_raw_bodies_forever(settings):
    settings.RAW_BODY_RETENTION_DAYS = 0
    ancient = aged(3650)

    assert purge_raw_bodies() == 0

    assert all(bodies(ancient))


def test_retention_works_in_bounded_batches_and_goes_on_where_it_stopped(db):
    leads = [aged(100 + n) for n in range(5)]

    assert raw_bodies_purge(older_than=timedelta(days=90), batch_size=2, max_batches=2) == 4
    assert [bool(bodies(lead)[0]) for lead in leads] == [True, False, False, False, False]
    assert raw_bodies_purge(older_than=timedelta(days=90), batch_size=2, max_batches=2) == 1
    assert not any(any(bodies(lead)) for lead in leads)


def test_retention_leaves_an_empty_body_untouched_and_counts_it_never(db):
    lead = aged(120)
    Lead.objects.filter(pk=lead.pk).update(raw_body="")
    updated_at = Lead.objects.get(pk=lead.pk).updated_at

    assert raw_bodies_purge(older_than=timedelta(days=90)) == 0
    assert Lead.objects.get(pk=lead.pk).updated_at == updated_at


def aged_ping(days: float) -> InboundPing:
    contract = ContractFactory()
    ping = InboundPing.objects.create(
        source=SourceFactory(),
        vertical=contract.vertical,
        status=PingStatus.BID,
        raw_body='{"vertical": "x", "fields": {"zip_code": "10001"}}',
    )
    InboundPing.objects.filter(pk=ping.pk).update(received_at=timezone.now() - timedelta(days=days))
    PingAttempt.objects.create(
        ping=ping,
        contract=contract,
        kind=EndpointKind.PING,
        url="https://buyer.example/ping",
        request_body='{"zip": "10001"}',
        response_body='{"bid": 12.5}',
        outcome=AttemptOutcome.BID,
    )
    return ping


def ping_bodies(ping: InboundPing) -> list[str]:
    ping.refresh_from_db()
    sent = PingAttempt.objects.filter(ping=ping).values_list("request_body", "response_body")[0]
    return [ping.raw_body, *sent]


def test_retention_empties_the_bodies_of_old_inbound_pings_and_their_buyers_pings(settings):
    settings.RAW_BODY_RETENTION_DAYS = 90
    old, recent = aged_ping(91), aged_ping(89)

    assert purge_raw_bodies() == 1

    assert ping_bodies(old) == ["", "", ""]
    assert all(ping_bodies(recent))
    assert purge_raw_bodies() == 0
