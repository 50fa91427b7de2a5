"""The partner API answers as its own OpenAPI schema says (schemathesis).

Schemathesis reads /api/schema/ from the app in-process (WSGI). For every operation it generates
valid and invalid requests; its stateful phase follows the schema's links (a submitted lead is
read back by the id its answer gave); then known requests reach every documented status of
intake and leads of every status are read back. Every check schemathesis has judges each answer:
never a server error, only documented status codes, content types and headers, bodies that match
their schemas, valid data accepted and invalid data refused, authentication enforced, a created
lead readable at once.

`SCHEMATHESIS_MAX_EXAMPLES` (default 30) sets the examples per operation and mode and the
stateful scenarios; `SCHEMATHESIS_STATEFUL_STEPS` (default 8) the calls per scenario. CI runs
the defaults; README.md gives the longer run's command and duration.

The schema is built from the database (one variant per vertical), so it is loaded inside the
tests. `schemathesis.pytest.from_fixture` would do that, but it breaks on pytest 9 (it reads
`Node._nodeid`); the operations' Hypothesis strategies, a public API, do the same job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, is_check_class, load_all_checks

from leads.models import IdempotencyRecord, Lead, LeadStatus, SuppressionList, Vertical
from leads.services import suppression_list_add
from tests.leads.conftest import auto_lead
from tests.leads.factories import LeadFactory, SourceFactory, api_key_for

LEADS, LEAD = "/api/v1/leads/", "/api/v1/leads/{id}/"
VERTICALS, VERTICAL = "/api/v1/verticals/", "/api/v1/verticals/{slug}/"
VERSIONS = "/api/v1/verticals/{slug}/versions/"
VERSION, NEWEST = f"{VERSIONS}{{number}}/", f"{VERSIONS}newest/"
PINGS = "/api/v1/pings/"
OPERATIONS = [
    ("GET", LEADS),
    ("POST", LEADS),
    ("GET", LEAD),
    ("GET", VERTICALS),
    ("GET", VERTICAL),
    ("GET", VERSIONS),
    ("GET", VERSION),
    ("GET", NEWEST),
    ("POST", PINGS),
]
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
STATEFUL_STEPS = int(os.environ.get("SCHEMATHESIS_STATEFUL_STEPS", "8"))
PINNED_QUERY: dict = {}
# The suite's 300 s per test is for the CI defaults; a longer run gets time in proportion.
SCALED_TIMEOUT = pytest.mark.timeout(max(300, 3 * MAX_EXAMPLES))

load_all_checks()
# Every check schemathesis has, not a chosen few (an upgrade's new checks join by themselves).
# Two have nothing to act on here: use_after_free (the API deletes nothing) and
# object_level_authorization (it needs several identities; tests/leads/test_abuse.py probes
# another partner's leads). ensure_resource_availability judges the stateful phase's reads.
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]
POSITIVE_DATA_ACCEPTANCE = next(c for c in ALL_CHECKS if c.__name__ == "positive_data_acceptance")
NEGATIVE_DATA_REJECTION = next(c for c in ALL_CHECKS if c.__name__ == "negative_data_rejection")


def schema_valid_leads_are_refused_only_for_their_fields(ctx, response, case):
    """positive_data_acceptance, as intake's contract reads it.

    The schema gives each field's shape; intake also asks what JSON Schema cannot say (a
    dialable phone, a real ZIP code, a number within bounds when sent as text) and refuses text
    PostgreSQL cannot store (NUL) anywhere in the body. A lead the schema allows may be refused
    for those, stored and answered 400 naming `fields.…` paths or the unstorable text; refused
    for anything else (the envelope, consent, a header) it fails. An Idempotency-Key the
    generator already sent with another body is answered 422, as 409 answers a duplicate: the
    state of earlier requests, not the data, decides.
    """
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if response.status_code not in (400, 422) or not positive:
        return POSITIVE_DATA_ACCEPTANCE(ctx, response, case)
    problem = response.json()
    if response.status_code == 422:
        assert problem["type"] == "/api/problems/idempotency-key-reused", problem
        return None
    errors = problem.get("errors") or {}
    if list(errors) == ["_"] and "NUL" in errors["_"][0]:
        return None
    refused_as = "invalid-ping" if case.operation.path == PINGS else "invalid-lead"
    assert problem["type"] == f"/api/problems/{refused_as}", problem
    assert errors, problem
    assert all(path.startswith("fields.") for path in errors), problem
    return None


def invalid_leads_are_refused(ctx, response, case):
    """negative_data_rejection, with 413 among the refusals: a body over INTAKE_MAX_BODY_BYTES
    is refused, stored and answered before anything in it is read."""
    if response.status_code == 413:
        return None
    return NEGATIVE_DATA_REJECTION(ctx, response, case)


def checks_for(method: str, path: str) -> list:
    """Every check; for intake and pings, the data checks read as their contract says (above):
    a ping, like a lead, may be refused for its vertical's fields (a required ping field)."""
    if (method.upper(), path) not in {("POST", LEADS), ("POST", PINGS)}:
        return ALL_CHECKS
    narrowed = {POSITIVE_DATA_ACCEPTANCE, NEGATIVE_DATA_REJECTION}
    return [
        *(check for check in ALL_CHECKS if check not in narrowed),
        schema_valid_leads_are_refused_only_for_their_fields,
        invalid_leads_are_refused,
    ]


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
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)

    class PartnerKey:
        """Generated requests go out with the partner's key (explicit auth, for ignored_auth)."""

        def get(self, case, context) -> str:
            return partner_key

        def set(self, case, data: str, context) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(refresh_interval=None)(PartnerKey)
    return schema


def call(api_schema, method: str, path: str, *, key: str | None, **request):
    """Send one request of the schema's operation and check its answer against the schema."""
    case = api_schema[path][method].Case(**request)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return case.call_and_validate(headers=headers, checks=checks_for(method, path))


def test_every_operation_of_the_schema_is_exercised(api_schema):
    documented = {
        (operation.method.upper(), operation.path)
        for operation in (result.ok() for result in api_schema.get_all_operations())
    }
    assert documented == set(OPERATIONS)


@SCALED_TIMEOUT
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_are_answered_as_documented(api_schema, method, path, mode):
    operation = api_schema[path][method]

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
        case.call_and_validate(checks=checks_for(method, path))

    answered_as_documented()


def test_every_check_schemathesis_has_is_run():
    names = {check.__name__ for check in ALL_CHECKS}

    assert names >= {
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ensure_resource_availability",
        "ignored_auth",
        "object_level_authorization",
    }


@SCALED_TIMEOUT
def test_the_stateful_phase_reads_back_each_lead_it_submits(api_schema):
    """Follow the schema's links: POST a lead (201 or 202), then GET it by the id it was given.

    Each lead read back is asked for by another partner too, who must get a 404.
    """
    followed: list[str] = []
    outsider = SourceFactory(verticals=list(Vertical.objects.all()))
    seeded = set(Lead.objects.values_list("pk", flat=True))
    # Through the same WSGI app: Django's test client would reconnect the signal handler that
    # closes the test's connection between requests (see wsgi_app).
    as_outsider = {"Authorization": f"Bearer {api_key_for(outsider)}"}

    # Only the leads' operations: the phase is derandomized, and every other operation of the
    # schema (a vertical's versions, pings ...) would spend its steps where no link leads.
    leads_only = api_schema.include(path=[LEADS, LEAD])

    class LeadLinks(leads_only.as_state_machine()):
        def teardown(self) -> None:
            # Each scenario starts from the same data: Hypothesis replays a scenario's choices
            # and refuses one whose answers (a duplicate's 409, a reused key's 422, the list's
            # leads) changed with what earlier scenarios stored.
            IdempotencyRecord.objects.all().delete()
            Lead.objects.exclude(pk__in=seeded).delete()
            super().teardown()

        def after_call(self, response, case) -> None:
            super().after_call(response, case)
            if case.operation.path == LEAD and response.status_code == 200:
                followed.append(case.path_parameters["id"])
                assert case.call(headers=as_outsider).status_code == 404, case.formatted_path

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(
                response,
                checks=checks_for(case.method, case.operation.path),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    LeadLinks.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )

    # The links were followed to a lead, or the phase proved nothing.
    assert followed


@pytest.mark.parametrize("sees_buyer_price", [False, True], ids=["private", "sees-price"])
def test_leads_of_every_status_read_as_documented(
    api_schema, partner, partner_key, sees_buyer_price
):
    source, _ = partner
    source.sees_buyer_price = sees_buyer_price
    source.save(update_fields=["sees_buyer_price"])
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
    assert {"buyer_price" in lead for lead in listed["results"]} == {sees_buyer_price}
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


# Found by the long schemathesis run: urlsplit raised for these, and intake answered 500.
@pytest.mark.parametrize(
    ("member", "url"),
    [
        ("page_url", "http://[x]/"),
        ("trustedform_cert_url", "https://cert.trustedform.com:[x]/"),
        ("page_url", "http://[::1/"),
    ],
)
def test_a_consent_url_whose_host_is_no_address_in_brackets_is_refused(
    api_schema, partner_key, member, url
):
    body = {**auto_lead(30), "consent": {member: url}}

    response = call(api_schema, "POST", LEADS, key=partner_key, body=body)

    assert response.status_code == 400
    assert f"consent.{member}" in response.json()["errors"]


def test_a_received_filter_beyond_what_the_database_holds_is_answered(
    api_schema, partner, partner_key
):
    """Any `date-time` the schema allows is answered: one past the calendar's ends, or before
    1900, stands for the nearest time the database holds (no lead is older or newer)."""
    source, _ = partner
    LeadFactory(source=source, vertical=Vertical.objects.get(slug="auto-insurance"))
    for value, after_it in (
        ("0001-01-01T00:00:00+01:00", 1),  # before year 1 in UTC
        ("0948-08-16T12:30:28-06:43", 1),
        ("9999-12-31T23:59:59-01:00", 0),  # past year 9999 in UTC
        ("2026-01-01T00:00+16:00", None),  # PostgreSQL refuses the offset; it is sent as UTC
    ):
        after = call(api_schema, "GET", LEADS, key=partner_key, query={"received_after": value})
        before = call(api_schema, "GET", LEADS, key=partner_key, query={"received_before": value})
        assert after.status_code == before.status_code == 200, value
        if after_it is not None:
            assert len(after.json()["results"]) == after_it, value
            assert len(before.json()["results"]) == 1 - after_it, value


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"test": "true"}, 200),
        ({"test": "no"}, 200),
        ({"test": "null"}, 400),  # was silently no filter at all
        ({"page_size": "5.0"}, 200),  # a whole number, as JSON Schema counts
        ({"page_size": "100000"}, 200),  # cut to 200
        ({"page_size": "0"}, 400),  # was silently the default
        ({"page_size": "many"}, 400),
        ({"status": "", "test": "", "page_size": "", "received_after": ""}, 200),  # not given
        ({"sub_id": "a\x00b"}, 400),  # no stored value holds NUL
    ],
)
def test_the_list_filters_take_what_the_schema_allows_and_refuse_the_rest(
    api_schema, partner_key, query, status
):
    response = call(api_schema, "GET", LEADS, key=partner_key, query=query)

    assert response.status_code == status, query
    if status == 400:
        assert set(query) & set(response.json()["errors"])


def test_the_schema_links_a_submitted_lead_to_its_status(api_schema):
    responses = api_schema.raw_schema["paths"][LEADS]["post"]["responses"]

    for status in ("201", "202"):
        link = responses[status]["links"]["GetLead"]
        assert link["operationId"] == "leads_retrieve"
        assert link["parameters"] == {"id": "$response.body#/id"}
