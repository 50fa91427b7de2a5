"""The partner API answers as its own OpenAPI schema says (schemathesis).

Schemathesis reads /api/schema/ from the app in-process (WSGI). For every operation it generates
valid and invalid requests; then known requests reach every documented status of intake and
leads of every status are read back. Each answer must be what the schema says: never a server
error, only documented status codes, content types and headers, bodies that match their schemas.

The schema is built from the database (one variant per vertical), so it is loaded inside the
tests. `schemathesis.pytest.from_fixture` would do that, but it breaks on pytest 9 (it reads
`Node._nodeid`); the operations' Hypothesis strategies, a public API, do the same job.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leads.models import LeadStatus, SuppressionList, Vertical
from leads.services import suppression_list_add
from tests.leads.conftest import auto_lead
from tests.leads.factories import LeadFactory, SourceFactory, api_key_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
LEADS, LEAD = "/api/v1/leads/", "/api/v1/leads/{id}/"
VERTICALS, VERTICAL = "/api/v1/verticals/", "/api/v1/verticals/{slug}/"
OPERATIONS = [("GET", LEADS), ("POST", LEADS), ("GET", LEAD), ("GET", VERTICALS), ("GET", VERTICAL)]
MAX_EXAMPLES = 30
PINNED_QUERY: dict = {}


@pytest.fixture
def partner_key(partner, buyer_contract, settings) -> str:
    """A partner that may submit to every demo vertical, with a limit it will not reach."""
    source, key = partner
    source.rate_limit_per_second = 100_000
    source.save(update_fields=["rate_limit_per_second"])
    # Routing starts when the lead's transaction commits, which never happens inside a test:
    # `Prefer: wait=N` would only hold each request N seconds (on Redis) before answering 202.
    settings.INTAKE_MAX_WAIT_SECONDS = 0
    return key


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    """Django's WSGI app, leaving the test's database connection open between requests.

    At each request's start and end Django closes a connection that is not in autocommit, as
    the test's transaction never is; Django's own test client disconnects that handler too.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(partner_key, wsgi_app):
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)


def call(api_schema, method: str, path: str, *, key: str | None, **request):
    """Send one request of the schema's operation and check its answer against the schema."""
    case = api_schema[path][method].Case(**request)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return case.call_and_validate(headers=headers, checks=CHECKS)


def test_every_operation_of_the_schema_is_exercised(api_schema):
    documented = {
        (operation.method.upper(), operation.path)
        for operation in (result.ok() for result in api_schema.get_all_operations())
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_are_answered_as_documented(api_schema, partner_key, method, path, mode):
    operation = api_schema[path][method]
    authorization = {"Authorization": f"Bearer {partner_key}"}

    @given(case=operation.as_strategy(generation_mode=mode, query=PINNED_QUERY.get((method, path))))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    def answered_as_documented(case):
        case.call_and_validate(headers=authorization, checks=CHECKS)

    answered_as_documented()


def test_leads_of_every_status_read_as_documented(api_schema, partner, partner_key):
    source, _ = partner
    vertical = Vertical.objects.get(slug="auto-insurance")
    first = LeadFactory(source=source, vertical=vertical, status=LeadStatus.ACCEPTED)
    for status in LeadStatus:
        LeadFactory(
            source=source,
            vertical=vertical,
            status=status,
            errors={"fields.zip_code": ["Not a ZIP code."]} if status == LeadStatus.INVALID else {},
            duplicate_of=first if status == LeadStatus.DUPLICATE else None,
            sale_price=Decimal("12.50") if status == LeadStatus.SOLD else None,
            payout=Decimal("5.00") if status == LeadStatus.SOLD else None,
            sold_at=timezone.now() if status == LeadStatus.SOLD else None,
        )
    LeadFactory(
        source=source, vertical=None, status=LeadStatus.INVALID, raw_body="[", reason="Not JSON."
    )
    outsider = LeadFactory(vertical=vertical)

    listed = call(api_schema, "GET", LEADS, key=partner_key, query={"page_size": 200}).json()
    assert len(listed["results"]) == len(LeadStatus) + 2
    for lead in listed["results"]:
        read = call(api_schema, "GET", LEAD, key=partner_key, path_parameters={"id": lead["id"]})
        assert read.status_code == 200
    for status in {lead["status"] for lead in listed["results"]}:
        filtered = call(api_schema, "GET", LEADS, key=partner_key, query={"status": status})
        assert filtered.json()["results"]
    hidden = call(
        api_schema, "GET", LEAD, key=partner_key, path_parameters={"id": str(outsider.pk)}
    )
    assert hidden.status_code == 404


def test_every_vertical_reads_as_documented(api_schema, partner_key):
    listed = call(api_schema, "GET", VERTICALS, key=partner_key).json()
    assert {vertical["slug"] for vertical in listed} == {"auto-insurance", "solar"}
    for vertical in listed:
        read = call(
            api_schema, "GET", VERTICAL, key=partner_key, path_parameters={"slug": vertical["slug"]}
        )
        assert read.json() == vertical


def test_intake_answers_each_documented_status_as_documented(
    api_schema, partner, partner_key, settings
):
    source, _ = partner
    settings.INTAKE_MAX_BODY_BYTES = 1024

    def submit(body, *, key=partner_key, media_type="application/json", **request) -> int:
        return call(
            api_schema, "POST", LEADS, key=key, body=body, media_type=media_type, **request
        ).status_code

    assert submit(auto_lead(1)) == 202
    assert submit(auto_lead(1)) == 409
    assert submit(auto_lead(2, zip_code="1")) == 400
    assert submit([auto_lead(3)]) == 400
    assert submit(auto_lead(4), key=None) == 401
    assert submit(auto_lead(4), key="lsk_unknown") == 401
    assert submit({**auto_lead(5), "sub_id": "x" * 2000}) == 413
    assert submit("a lead", media_type="text/plain") == 415
    assert submit(auto_lead(6), headers={"Idempotency-Key": "k-1"}) == 202
    assert submit(auto_lead(6), headers={"Idempotency-Key": "k-1"}) == 202
    assert submit(auto_lead(7), headers={"Idempotency-Key": "k-1"}) == 422

    suppression_list_add(
        suppression_list=SuppressionList.objects.create(name="DNC"), text="dnc@example.com"
    )
    assert submit(auto_lead(8, email="dnc@example.com")) == 201

    inactive = SourceFactory(active=False, verticals=list(Vertical.objects.all()))
    assert submit(auto_lead(9), key=api_key_for(inactive)) == 403

    source.rate_limit_per_second = 1
    source.save(update_fields=["rate_limit_per_second"])
    # Three requests span at most two one-second windows: one window holds two of them.
    assert 429 in [submit(auto_lead(10 + n)) for n in range(3)]


def test_a_received_filter_the_database_cannot_hold_is_no_server_error(api_schema, partner_key):
    for value, status in (
        ("0001-01-01T00:00:00+01:00", 400),
        ("9999-12-31T23:59:59-01:00", 400),
        ("2026-01-01T00:00+16:00", 200),  # PostgreSQL refuses the offset; it is sent as UTC
    ):
        for name in ("received_after", "received_before"):
            response = call(api_schema, "GET", LEADS, key=partner_key, query={name: value})
            assert response.status_code == status, (name, value)
            if status == 400:
                assert name in response.json()["errors"]
