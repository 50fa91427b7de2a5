"""The partner API's published description: OpenAPI schema, Swagger UI and problem types."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.db import InterfaceError, OperationalError
from jsonschema import Draft202012Validator

from config.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from leads.models import FieldType, Vertical
from tests.leads.conftest import auto_lead

PROBLEM_REF = "#/components/schemas/Problem"
PARTNER_OPERATIONS = {
    ("get", "/api/v1/leads/"),
    ("post", "/api/v1/leads/"),
    ("get", "/api/v1/leads/{id}/"),
    ("get", "/api/v1/verticals/"),
    ("get", "/api/v1/verticals/{slug}/"),
    ("get", "/api/v1/verticals/{slug}/versions/"),
    ("get", "/api/v1/verticals/{slug}/versions/{number}/"),
    ("get", "/api/v1/verticals/{slug}/versions/newest/"),
    ("post", "/api/v1/pings/"),
}
INTAKE_STATUSES = ["201", "202", "400", "401", "403", "404", "409", "410", "413", "415", "422"]
INTAKE_STATUSES += ["429"]


@pytest.fixture
def openapi(client, demo) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def resolve(openapi: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref ("#/components/schemas/Name") to the schema it names."""
    if len(schema.get("allOf", [])) == 1:  # how a described $ref is spelled
        schema = schema["allOf"][0]
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = openapi
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validator(openapi: dict[str, Any], component: str) -> Draft202012Validator:
    """A JSON Schema validator for one component, its $refs resolved within the document."""
    return Draft202012Validator(
        {"$ref": f"#/components/schemas/{component}", "components": openapi["components"]}
    )


def test_the_schema_is_valid_openapi_3_1(openapi):
    assert openapi["openapi"] == "3.1.0"
    # Schemathesis validates against the OpenAPI 3.1 meta-schema it bundles.
    schemathesis.openapi.from_dict(openapi).validate()
    for schema in openapi["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_every_reference_in_the_schema_resolves(openapi):
    refs = set(references(openapi))
    assert "#/components/schemas/AutoInsuranceFields" in refs
    for ref in refs:
        assert ref.startswith("#/components/")
        assert resolve(openapi, {"$ref": ref}), ref


def test_the_schema_documents_every_partner_endpoint(openapi):
    documented = {(method, path) for method, path, _ in operations(openapi)}
    assert documented == PARTNER_OPERATIONS
    for _, _, operation in operations(openapi):
        assert operation["summary"]
        assert operation["security"] == [{"SourceKey": []}]
    scheme = openapi["components"]["securitySchemes"]["SourceKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_lead_submission_documents_each_of_its_answers(openapi):
    responses = openapi["paths"]["/api/v1/leads/"]["post"]["responses"]
    assert set(responses) >= set(INTAKE_STATUSES)
    for status in INTAKE_STATUSES:
        response = responses[status]
        assert response["description"], status
        if status.startswith("4"):
            assert response["content"] == {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
        else:
            assert list(response["content"]) == ["application/json"], status
            assert response["headers"]["Location"]["required"] is True, status


def test_every_operation_documents_the_problems_any_endpoint_may_answer(openapi):
    for method, path, operation in operations(openapi):
        responses = operation["responses"]
        for status in ("401", "403", "406", "429"):
            assert status in responses, (method, path, status)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}
                }, (method, path, status)
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        if "{" in path:
            assert "404" in responses, (method, path)


def test_the_problem_schema_names_every_problem_type(openapi):
    problem = resolve(openapi, {"$ref": PROBLEM_REF})
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    types = resolve(openapi, problem["properties"]["type"])
    assert set(types["enum"]) == {p.uri for p in PROBLEM_TYPES.values()}


def test_listing_leads_is_documented_as_a_filtered_cursor_page(openapi):
    operation = openapi["paths"]["/api/v1/leads/"]["get"]
    page = resolve(openapi, operation["responses"]["200"]["content"]["application/json"]["schema"])
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/Lead"}
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert set(parameters) >= {"cursor", "page_size", "status", "vertical", "sub_id", "test"}
    assert "rejected" in parameters["status"]["schema"]["enum"]
    assert "suppressed" not in parameters["status"]["schema"]["enum"]


def test_each_active_vertical_is_a_variant_of_the_submission_keyed_by_its_slug(openapi, demo):
    variants = openapi["components"]["schemas"]["LeadSubmission"]["oneOf"]
    by_slug = {variant["properties"]["vertical"]["const"]: variant for variant in variants}
    verticals = Vertical.objects.filter(active=True).prefetch_related("fields")
    assert set(by_slug) == {v.slug for v in verticals} >= {"auto-insurance", "solar"}
    for vertical in verticals:
        variant = by_slug[vertical.slug]
        assert set(variant["required"]) == {"vertical", "fields"}
        assert variant["additionalProperties"] is False
        fields = resolve(openapi, variant["properties"]["fields"])
        assert fields["additionalProperties"] is False
        rows = list(vertical.fields.all())
        assert set(fields["properties"]) == {f.name for f in rows}
        assert set(fields["required"]) == {f.name for f in rows if f.required}
        for row in rows:
            schema = fields["properties"][row.name]
            if row.field_type == FieldType.CHOICE:
                assert schema["enum"] == row.choices, row.name
            if row.field_type == FieldType.ZIP:
                zip_code = re.compile(schema["pattern"])
                assert all(zip_code.search(z) for z in ("10001", "10001-1234", "100011234"))
                assert not any(zip_code.search(z) for z in ("1000", "10001-12", "ABCDE", "١٠٠٠١"))


def test_a_lead_is_valid_against_its_own_vertical_variant_only(openapi, demo):
    submission = validator(openapi, "LeadSubmission")
    lead = auto_lead(1)
    assert submission.is_valid(lead)
    assert not submission.is_valid({**lead, "vertical": "solar"})
    assert not submission.is_valid({**lead, "fields": {**lead["fields"], "colour": "red"}})
    missing_zip = {k: v for k, v in lead["fields"].items() if k != "zip_code"}
    assert not submission.is_valid({**lead, "fields": missing_zip})
    assert not submission.is_valid({**lead, "fields": {**lead["fields"], "gender": "robot"}})


def test_the_documented_example_lead_is_valid_and_accepted(client, openapi, partner):
    _, key = partner
    body = openapi["paths"]["/api/v1/leads/"]["post"]["requestBody"]["content"]["application/json"]
    example = next(iter(body["examples"].values()))["value"]
    assert validator(openapi, "LeadSubmission").is_valid(example)
    response = client.post(
        "/api/v1/leads/",
        example,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 202, response.content


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def test_the_swagger_ui_loads_only_local_static_assets(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    collector = _AssetCollector()
    collector.feed(html)
    assert len(collector.urls) >= 3
    # Swagger UI's own assets, and its start-up script from the page's own URL (no inline
    # script under the Content-Security-Policy).
    scripts = [url for url in collector.urls if url.startswith("/api/docs/?")]
    assert len(scripts) == 1
    for url in set(collector.urls) - set(scripts):
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), url
    assert not re.search(r"""["'(]\s*(https?:)?//""", html)
    script = client.get(scripts[0]).content.decode()
    assert not re.search(r"""["'(]\s*(https?:)?//""", script)
    assert '"/api/schema/"' in script


def test_the_problem_types_are_listed_and_each_documents_itself(client, db):
    listed = client.get("/api/problems/").json()
    assert {p["type"] for p in listed} == {p.uri for p in PROBLEM_TYPES.values()}
    for entry in listed:
        response = client.get(entry["type"])
        assert response.status_code == 200, entry["type"]
        assert response.json() == entry
    page = client.get("/api/problems/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    for problem_type in PROBLEM_TYPES.values():
        assert problem_type.uri in page.content.decode()


def problem(response) -> dict[str, Any]:
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["status"] == response.status_code
    assert body["title"] == PROBLEM_TYPES[body["type"].rsplit("/", 1)[1]].title
    return body


@pytest.mark.parametrize("path", ["/api/nowhere/", "/api/v1/nowhere", "/api/v1/leads/x/y/"])
def test_an_unknown_api_address_answers_a_problem_404(client, db, path):
    response = client.get(path)
    assert response.status_code == 404
    assert problem(response)["type"] == "/api/problems/not-found"


def test_a_request_django_refuses_before_the_api_is_a_problem_too(client, db):
    response = client.get("/api/v1/verticals/", HTTP_HOST="elsewhere.example")
    assert response.status_code == 400
    assert problem(response)["type"] == "/api/problems/bad-request"


def test_the_problem_types_are_read_only(client, db):
    response = client.post("/api/problems/")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert problem(response)["type"] == "/api/problems/method-not-allowed"


def test_the_type_of_every_problem_the_api_answers_resolves(client, partner, settings):
    source, key = partner
    settings.INTAKE_MAX_BODY_BYTES = 1024
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    answers = [
        client.get("/api/v1/leads/"),
        client.get("/api/v1/leads/", HTTP_AUTHORIZATION="Bearer lsk_unknown"),
        client.get("/api/v1/leads/", {"received_after": "yesterday"}, **auth),
        client.get("/api/v1/leads/", {"cursor": "nonsense"}, **auth),
        client.get("/api/v1/leads/", HTTP_ACCEPT="text/html", **auth),
        client.put("/api/v1/leads/", **auth),
        client.post("/api/v1/leads/", "not json", content_type="application/json", **auth),
        client.post("/api/v1/leads/", auto_lead(1, zip_code="1"), "application/json", **auth),
        client.post("/api/v1/leads/", "a lead", content_type="text/plain", **auth),
        client.post("/api/v1/leads/", "x" * 2000, content_type="application/json", **auth),
        client.post("/api/v1/leads/", auto_lead(2), "application/json", **auth),
        client.post("/api/v1/leads/", auto_lead(2), "application/json", **auth),
        client.get("/api/v1/verticals/unknown/", **auth),
    ]
    for n in (3, 4):
        answers.append(
            client.post(
                "/api/v1/leads/", auto_lead(n), "application/json", HTTP_IDEMPOTENCY_KEY="k", **auth
            )
        )
    source.rate_limit_per_second = 1
    source.save(update_fields=["rate_limit_per_second"])
    # Three requests span at most two one-second windows: one window holds two of them.
    answers += [client.get("/api/v1/verticals/", **auth) for _ in range(3)]
    source.active = False
    source.save(update_fields=["active"])
    answers.append(client.get("/api/v1/verticals/", **auth))
    statuses = {response.status_code for response in answers}
    assert statuses >= {400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429}
    for response in answers:
        if response.status_code >= 400:
            assert client.get(problem(response)["type"]).status_code == 200


def test_an_api_server_error_is_a_problem_too(client, partner, monkeypatch):
    _, key = partner

    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("leads.api.views.verticals_for_source", broken)
    client.raise_request_exception = False
    response = client.get("/api/v1/verticals/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 500
    body = problem(response)
    assert body["type"] == "/api/problems/server-error"
    assert "a bug" not in body["detail"]
    assert client.get(body["type"]).status_code == 200


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_an_unreachable_database_is_a_503_to_retry_not_a_server_error(
    client, partner, openapi, monkeypatch, error
):
    _, key = partner

    def unreachable(**kwargs):
        raise error("connection refused")

    monkeypatch.setattr("leads.api.views.verticals_for_source", unreachable)
    response = client.get("/api/v1/verticals/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    body = problem(response)
    assert body["type"] == "/api/problems/unavailable"
    assert "connection refused" not in body["detail"]
    assert "503" in openapi["paths"]["/api/v1/verticals/"]["get"]["responses"]


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_api_address_without_its_slash_redirects_keeping_the_method(client, partner, method):
    _, key = partner
    response = getattr(client, method)(
        "/api/v1/leads?page_size=5", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    # 308, not APPEND_SLASH's 301 that clients follow with a GET: a POST must stay a POST.
    assert response.status_code == 308
    assert response["Location"] == "/api/v1/leads/?page_size=5"
