"""The fake buyers of the `_b` modules accept their spec's example request and refuse what
their spec refuses, in the spec's own words, over real sockets on 127.0.0.1."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import requests
from defusedxml.ElementTree import fromstring

from tests.buyers.fakes import doublepositive_b, novo_b, zoho_crm_b
from tests.buyers.fakes.doublepositive_b import (
    DP_NS,
    SOAP_ACTION,
    SOAP_ENV,
    DoublePositiveInsertLead,
)
from tests.buyers.fakes.novo_b import NovoPartnerLead
from tests.buyers.fakes.zoho_crm_b import ZohoCrmInsertRecords

TIMEOUT = 5
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}
NS = {"soap": SOAP_ENV, "dp": DP_NS}


# Novo Partner Lead API: nested JSON with typed values.


@pytest.fixture
def novo() -> Iterator[NovoPartnerLead]:
    with NovoPartnerLead(api_key="novo-key") as fake:
        yield fake


def post_novo(fake: NovoPartnerLead, body: Any, **headers: str) -> requests.Response:
    return requests.post(
        fake.url(), json=body, headers={"x-api-key": "novo-key", **headers}, timeout=TIMEOUT
    )


def test_novo_accepts_the_specs_example_lead(novo: NovoPartnerLead) -> None:
    response = post_novo(novo, novo_b.example_request())

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == "Processed successfully."
    assert body["transaction_id"] == novo.transactions[0]
    assert set(body["bridge_urls"]) == {"consumer_bridge_url", "agent_bridge_url"}
    (received,) = novo.received
    assert received.request.json() == novo_b.example_request()
    assert received.request.headers["x-api-key"] == "novo-key"


def test_novo_refuses_a_wrong_or_missing_key_as_forbidden(novo: NovoPartnerLead) -> None:
    wrong = post_novo(novo, novo_b.example_request(), **{"x-api-key": "other"})
    missing = requests.post(novo.url(), json=novo_b.example_request(), timeout=TIMEOUT)

    assert (wrong.status_code, wrong.json()) == (403, {"message": "Forbidden"})
    assert (missing.status_code, missing.json()) == (403, {"message": "Forbidden"})
    assert novo.transactions == []


def test_novo_refuses_a_body_that_is_not_json(novo: NovoPartnerLead) -> None:
    form = requests.post(
        novo.url(), data={"a": "b"}, headers={"x-api-key": "novo-key"}, timeout=TIMEOUT
    )
    broken = requests.post(
        novo.url(),
        data=b'{"channel": ',
        headers={"x-api-key": "novo-key", "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )

    assert form.status_code == broken.status_code == 400
    assert form.json()["error_code"] == broken.json()["error_code"] == "invalid_request"
    assert form.json()["message"] == "Content-Type must be application/json."
    assert broken.json()["status"] == "failed"


def without(body: dict[str, Any], *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


def replaced(body: dict[str, Any], value: Any, *path: str | int) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    target: Any = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


DRIVER = ("application", "drivers", 0)


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("channel",), "channel"),
        (("channel", "channel_id"), "channel.channel_id"),
        (("application", "drivers"), "application.drivers"),
        ((*DRIVER, "name", "last_name"), "application.drivers[0].name.last_name"),
        ((*DRIVER, "dob"), "application.drivers[0].dob"),
        ((*DRIVER, "contact_info", "email"), "application.drivers[0].contact_info.email"),
        ((*DRIVER, "address", "zip"), "application.drivers[0].address.zip"),
        (
            (*DRIVER, "residence", "length_in_months"),
            "application.drivers[0].residence.length_in_months",
        ),
    ],
)
def test_novo_names_the_missing_parameter(
    novo: NovoPartnerLead, path: tuple[str | int, ...], named: str
) -> None:
    response = post_novo(novo, without(novo_b.example_request(), *path))

    assert response.status_code == 400
    assert response.json() == {
        "status": "failed",
        "message": f"Missing required parameter: {named}.",
        "error_code": "missing_required_parameter",
    }


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("12", (*DRIVER, "residence", "length_in_months")),  # a number sent as text
        (True, (*DRIVER, "residence", "length_in_months")),  # a boolean is not a number
        (12.5, (*DRIVER, "residence", "length_in_months")),
        (85001, (*DRIVER, "address", "zip")),  # the spec's ZIP is text
        ("8500", (*DRIVER, "address", "zip")),
        (4081234567, (*DRIVER, "contact_info", "phone")),
        ("(408) 123-4567", (*DRIVER, "contact_info", "phone")),
        ("az", (*DRIVER, "address", "state")),
        ("05/05/1980", (*DRIVER, "dob")),
        ("not-an-email", (*DRIVER, "contact_info", "email")),
        ("John Doe", (*DRIVER, "name")),
        ({"0": {}}, ("application", "drivers")),
    ],
)
def test_novo_refuses_values_of_the_wrong_type_or_format(
    novo: NovoPartnerLead, value: Any, path: tuple[str | int, ...]
) -> None:
    response = post_novo(novo, replaced(novo_b.example_request(), value, *path))

    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_request"
    assert response.json()["message"].startswith("Invalid value for ")


def test_novo_needs_the_primary_insured_among_the_drivers(novo: NovoPartnerLead) -> None:
    response = post_novo(
        novo, replaced(novo_b.example_request(), "spouse", *DRIVER, "relation_to_pni")
    )

    assert response.status_code == 400
    assert "relation_to_pni" in response.json()["message"]


def test_novo_refuses_a_state_it_does_not_write() -> None:
    with NovoPartnerLead(api_key="novo-key", states=["TX"]) as fake:
        response = post_novo(fake, novo_b.example_request())

    assert response.status_code == 400
    assert response.json() == {
        "status": "failed",
        "message": "State AZ is not supported.",
        "error_code": "state_not_supported",
    }


def test_novo_answers_a_refusal_the_test_asks_for(novo: NovoPartnerLead) -> None:
    novo.refuse("eligible_vehicle_not_found", "No eligible vehicle was found.")
    refused = post_novo(novo, novo_b.example_request())
    novo.accept()
    accepted = post_novo(novo, novo_b.example_request())

    assert refused.status_code == 400
    assert refused.json()["error_code"] == "eligible_vehicle_not_found"
    assert refused.json()["message"] == "No eligible vehicle was found."
    assert accepted.status_code == 200
    assert len(novo.transactions) == 1


def test_novo_serves_only_its_lead_path_and_method(novo: NovoPartnerLead) -> None:
    other_path = requests.post(novo.url("/partner/v2/policy/quote"), json={}, timeout=TIMEOUT)
    get = requests.get(novo.url(), headers={"x-api-key": "novo-key"}, timeout=TIMEOUT)

    assert other_path.status_code == 404
    assert get.status_code == 405


def test_novo_reads_a_chunked_body(novo: NovoPartnerLead) -> None:
    payload = requests.models.complexjson.dumps(novo_b.example_request()).encode()
    chunks = (payload[i : i + 100] for i in range(0, len(payload), 100))

    response = requests.post(
        novo.url(),
        data=chunks,
        headers={"x-api-key": "novo-key", "Content-Type": "application/json"},
        timeout=TIMEOUT,
    )

    assert response.status_code == 200
    assert novo.received[0].request.headers["transfer-encoding"] == "chunked"


# DoublePositive InsertLead: SOAP 1.1, namespaced XML both ways.


@pytest.fixture
def dp() -> Iterator[DoublePositiveInsertLead]:
    with DoublePositiveInsertLead(supplier_id="1234", supplier_password="secret") as fake:
        yield fake


def post_soap(
    fake: DoublePositiveInsertLead, body: str | bytes, **headers: str
) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.post(
        fake.url(), data=data, headers={**SOAP_HEADERS, **headers}, timeout=TIMEOUT
    )


def soap_result(response: requests.Response) -> str:
    root = fromstring(response.content)
    result = root.find("./soap:Body/dp:InsertLeadResponse/dp:InsertLeadResult", NS)
    assert result is not None, response.text
    return result.text or ""


def soap_fault(response: requests.Response) -> tuple[str, str]:
    assert response.status_code == 500, response.text
    fault: Element | None = fromstring(response.content).find("./soap:Body/soap:Fault", NS)
    assert fault is not None, response.text
    return fault.findtext("faultcode", ""), fault.findtext("faultstring", "")


def test_doublepositive_accepts_the_specs_example_request(dp: DoublePositiveInsertLead) -> None:
    response = post_soap(dp, doublepositive_b.example_request())

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert soap_result(response) == "Accepted"
    (lead,) = dp.leads
    assert lead["LastName"] == "O'Neil & Sons"  # escaped on the way, whole on arrival
    assert lead["PostalCode"] == "02134"


def test_doublepositive_goes_by_namespace_not_by_prefix(dp: DoublePositiveInsertLead) -> None:
    body = (
        f'<e:Envelope xmlns:e="{SOAP_ENV}" xmlns:d="{DP_NS}"><e:Body><d:InsertLead>'
        "<d:SupplierID>1234</d:SupplierID><d:SupplierPassword>secret</d:SupplierPassword>"
        "<d:FirstName>Ann</d:FirstName><d:LastName>Lee</d:LastName>"
        "<d:EmailAddress>ann@example.com</d:EmailAddress><d:HomePhone>6175550101</d:HomePhone>"
        "<d:State>MA</d:State><d:PostalCode>02134</d:PostalCode>"
        "</d:InsertLead></e:Body></e:Envelope>"
    )

    response = post_soap(dp, body)

    assert soap_result(response) == "Accepted"


def test_doublepositive_needs_its_soap_action(dp: DoublePositiveInsertLead) -> None:
    missing = requests.post(
        dp.url(),
        data=doublepositive_b.example_request().encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=TIMEOUT,
    )
    wrong = post_soap(
        dp, doublepositive_b.example_request(), SOAPAction='"http://tempuri.org/InsertLead"'
    )

    assert soap_fault(missing) == (
        "soap:Client",
        "Server did not recognize the value of HTTP Header SOAPAction: None.",
    )
    code, text = soap_fault(wrong)
    assert code == "soap:Client"
    assert "http://tempuri.org/InsertLead" in text
    assert dp.leads == []


def test_doublepositive_takes_soap_11_text_xml_only(dp: DoublePositiveInsertLead) -> None:
    response = post_soap(
        dp, doublepositive_b.example_request(), **{"Content-Type": "application/xml"}
    )

    assert response.status_code == 415


def test_doublepositive_refuses_insertlead_outside_its_namespace(
    dp: DoublePositiveInsertLead,
) -> None:
    unqualified = doublepositive_b.example_request().replace(f' xmlns="{DP_NS}"', "")
    other = doublepositive_b.example_request().replace(DP_NS, "http://tempuri.org/")

    for body in (unqualified, other):
        code, text = soap_fault(post_soap(dp, body))
        assert code == "soap:Client"
        assert "InsertLead" in text


def test_doublepositive_refuses_a_soap_12_envelope_as_a_version_mismatch(
    dp: DoublePositiveInsertLead,
) -> None:
    body = doublepositive_b.example_request().replace(
        SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope"
    )

    assert soap_fault(post_soap(dp, body))[0] == "soap:VersionMismatch"


def test_doublepositive_refuses_xml_that_is_not_well_formed(dp: DoublePositiveInsertLead) -> None:
    broken = doublepositive_b.example_request().replace("</FirstName>", "")
    unescaped = doublepositive_b.example_request().replace("O'Neil &amp; Sons", "O'Neil & Sons")

    for body in (broken, unescaped):
        code, text = soap_fault(post_soap(dp, body))
        assert code == "soap:Client"
        assert text.startswith("The request is not well-formed XML")


def test_doublepositive_refuses_entity_expansion(dp: DoublePositiveInsertLead) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>&b;</soap:Body></soap:Envelope>'
    )

    assert soap_fault(post_soap(dp, bomb))[0] == "soap:Client"


@pytest.mark.parametrize(
    ("fields", "fault"),
    [
        ({"SupplierPassword": "wrong"}, "Invalid SupplierID or SupplierPassword."),
        ({"SupplierID": ""}, "Parameter SupplierID is required."),
        ({"LastName": ""}, "Parameter LastName is required."),
        ({"PostalCode": "ABCDE"}, "Parameter PostalCode must be a ZIP code, not 'ABCDE'."),
        ({"State": "Mass."}, "Parameter State must be a 2-letter state code, not 'Mass.'."),
        (
            {"HomePhone": "617-555-0101"},
            "Parameter HomePhone must be 10 digits, not '617-555-0101'.",
        ),
        ({"IPAddress": "999.1.1.1"}, "Parameter IPAddress must be an IP address."),
        ({"OriginalLeadDate": "yesterday"}, "Parameter OriginalLeadDate must be a date."),
    ],
)
def test_doublepositive_refuses_missing_or_malformed_parameters(
    dp: DoublePositiveInsertLead, fields: dict[str, str], fault: str
) -> None:
    response = post_soap(dp, doublepositive_b.example_request(**fields))

    assert soap_fault(response) == ("soap:Client", fault)
    assert dp.leads == []


def test_doublepositive_refuses_a_parameter_the_operation_lacks(
    dp: DoublePositiveInsertLead,
) -> None:
    body = doublepositive_b.example_request().replace("<FirstName>", "<Price>12</Price><FirstName>")

    assert soap_fault(post_soap(dp, body)) == (
        "soap:Client",
        f"InsertLead has no parameter {{{DP_NS}}}Price.",
    )


def test_doublepositive_answers_the_rejection_the_test_asks_for(
    dp: DoublePositiveInsertLead,
) -> None:
    dp.reject("Rejected: duplicate lead")

    response = post_soap(dp, doublepositive_b.example_request())

    assert response.status_code == 200
    assert soap_result(response) == "Rejected: duplicate lead"


# Zoho CRM insertRecords: an XML document in a form field.


@pytest.fixture
def zoho() -> Iterator[ZohoCrmInsertRecords]:
    with ZohoCrmInsertRecords(authtoken="zoho-token") as fake:
        yield fake


def zoho_form(**changes: str | None) -> dict[str, str]:
    form = {
        "newFormat": "1",
        "authtoken": "zoho-token",
        "scope": "crmapi",
        "xmlData": zoho_crm_b.example_xml_data(),
    }
    form.update(changes)  # type: ignore[arg-type]
    return {name: value for name, value in form.items() if value is not None}


def post_zoho(fake: ZohoCrmInsertRecords, **changes: str | None) -> Element:
    response = requests.post(fake.url(), data=zoho_form(**changes), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = fromstring(response.content)
    assert root.tag == "response"
    assert root.get("uri") == "/crm/private/xml/Leads/insertRecords"
    return root


def zoho_error(root: Element) -> tuple[str, str]:
    error = root.find("error")
    assert error is not None
    return error.findtext("code", ""), error.findtext("message", "")


def test_zoho_inserts_the_specs_sample_lead(zoho: ZohoCrmInsertRecords) -> None:
    root = post_zoho(zoho)

    assert root.findtext("./result/message") == "Record(s) added successfully"
    record_id = root.findtext("./result/recorddetail/FL[@val='Id']")
    assert record_id is not None
    assert zoho.records[record_id]["First Name"] == "Hannah"
    assert zoho.records[record_id]["Company"] == "Your Company"
    received = zoho.received[0].request
    assert received.media_type == "application/x-www-form-urlencoded"
    assert received.form()["scope"] == ["crmapi"]


def test_zoho_reads_parameters_from_the_query_string_too(zoho: ZohoCrmInsertRecords) -> None:
    response = requests.post(
        zoho.url(),
        params={"authtoken": "zoho-token", "scope": "crmapi"},
        data={"xmlData": zoho_crm_b.example_xml_data()},
        timeout=TIMEOUT,
    )

    assert (
        fromstring(response.content).findtext("./result/message") == "Record(s) added successfully"
    )


def test_zoho_inserts_one_record_per_row(zoho: ZohoCrmInsertRecords) -> None:
    xml_data = (
        '<Leads><row no="1"><FL val="Last Name">A</FL><FL val="Company">X</FL></row>'
        '<row no="2"><FL val="Last Name">B</FL><FL val="Company">Y</FL></row></Leads>'
    )

    root = post_zoho(zoho, xmlData=xml_data)

    assert len(root.findall("./result/recorddetail")) == 2
    assert sorted(record["Last Name"] for record in zoho.records.values()) == ["A", "B"]


def test_zoho_wants_a_post(zoho: ZohoCrmInsertRecords) -> None:
    response = requests.get(zoho.url(), params=zoho_form(), timeout=TIMEOUT)

    assert zoho_error(fromstring(response.content)) == ("4600", zoho_crm_b.INCORRECT_PARAMETER)
    assert zoho.records == {}


def test_zoho_wants_form_fields_not_json(zoho: ZohoCrmInsertRecords) -> None:
    response = requests.post(zoho.url(), json=zoho_form(), timeout=TIMEOUT)

    assert zoho_error(fromstring(response.content))[0] == "4600"


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"authtoken": "other"}, "4834", "Invalid ticket. Also check if ticket has expired."),
        ({"authtoken": None}, "4831", "Missing parameters error"),
        ({"scope": None}, "4831", "Missing parameters error"),
        ({"xmlData": None}, "4831", "Missing parameters error"),
        ({"scope": "crmapi2"}, "4600", zoho_crm_b.INCORRECT_PARAMETER),
        ({"duplicateCheck": "3"}, "4600", zoho_crm_b.INCORRECT_PARAMETER),
        ({"wfTrigger": "yes"}, "4600", zoho_crm_b.INCORRECT_PARAMETER),
        ({"xmlData": "<Leads><row no='1'>"}, "4835", "XML parsing error"),
        (
            {"xmlData": '<Leads><row no="1"><FL val="A">&</FL></row></Leads>'},
            "4835",
            "XML parsing error",
        ),
        ({"xmlData": '<Contacts><row no="1"/></Contacts>'}, "4600", zoho_crm_b.XMLDATA_REFUSED),
        ({"xmlData": "<Leads/>"}, "4600", zoho_crm_b.XMLDATA_REFUSED),
        (
            {"xmlData": '<Leads><row><FL val="Last Name">A</FL></row></Leads>'},
            "4600",
            zoho_crm_b.XMLDATA_REFUSED,
        ),
        (
            {"xmlData": '<Leads><row no="1"><Field name="Last Name">A</Field></row></Leads>'},
            "4600",
            zoho_crm_b.XMLDATA_REFUSED,
        ),
        (
            {"xmlData": '<Leads><row no="1"><FL>A</FL></row></Leads>'},
            "4600",
            zoho_crm_b.XMLDATA_REFUSED,
        ),
        (
            {"xmlData": '<Leads><row no="1"><FL val="Company">X</FL></row></Leads>'},
            "4401",
            "Mandatory field missing",
        ),
    ],
)
def test_zoho_refuses_in_its_own_error_codes(
    zoho: ZohoCrmInsertRecords, changes: dict[str, str | None], code: str, message: str
) -> None:
    root = post_zoho(zoho, **changes)

    assert zoho_error(root) == (code, message)
    assert zoho.records == {}


def test_zoho_mandatory_fields_follow_the_account(zoho: ZohoCrmInsertRecords) -> None:
    zoho.mandatory = ("Last Name",)

    root = post_zoho(zoho, xmlData='<Leads><row no="1"><FL val="Last Name">A</FL></row></Leads>')

    assert root.findtext("./result/message") == "Record(s) added successfully"


def test_zoho_answers_the_refusal_the_test_asks_for(zoho: ZohoCrmInsertRecords) -> None:
    zoho.refuse(4401, "Mandatory field missing")

    assert zoho_error(post_zoho(zoho)) == ("4401", "Mandatory field missing")


# The plumbing.


def test_a_fake_listens_on_loopback_only_while_running() -> None:
    with NovoPartnerLead() as fake:
        port = fake.port
        assert fake.url().startswith(f"http://127.0.0.1:{port}/")
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
