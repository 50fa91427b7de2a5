"""A fake of DoublePositive's InsertLead SOAP web service: namespaced XML in, namespaced XML out.

Spec followed (DoublePositive, "InsertLeads" web service, operation InsertLead, SOAP 1.1):
http://apps.doublepositive.com/Suppliers/WebServices/InsertLeads.asmx?op=InsertLead
and, for faults, SOAP 1.1 itself (section 4.4, SOAP Fault):
https://www.w3.org/TR/2000/NOTE-SOAP-20000508/

What the spec says, and what this fake therefore enforces:
- `POST /Suppliers/WebServices/InsertLeads.asmx` with `Content-Type: text/xml; charset=utf-8`
  and the header `SOAPAction: "http://www.doublepositive.com/InsertLead"`.
- The body is a SOAP 1.1 envelope: `soap:Envelope` / `soap:Body` in the prefixed namespace
  `http://schemas.xmlsoap.org/soap/envelope/`, holding one `InsertLead` element in the
  default namespace `http://www.doublepositive.com/`; its children (SupplierID,
  SupplierPassword, FirstName, ... ExtraFields) are in that namespace too. An element in
  another namespace, or one the operation does not have, is refused.
- The supplier's credentials travel in the body (SupplierID, SupplierPassword).
- The answer is an envelope whose body holds `InsertLeadResponse` (default namespace
  `http://www.doublepositive.com/`) with one text element, `InsertLeadResult`.
- A request the service cannot take is answered with a SOAP 1.1 fault (HTTP 500,
  `soap:Fault` with `faultcode` `soap:Client` or `soap:VersionMismatch` and a
  `faultstring`).

The page types every parameter and the result as a plain string; it marks no parameter as
required and lists no result values. This fake asks for the credentials and the contact fields
a lead cannot go without (FirstName, LastName, EmailAddress, HomePhone, State, PostalCode),
checks the formats of the fields it knows (state, ZIP, phones, e-mail, IP address, numbers,
date), and answers `accepted_result` ("Accepted" by default) or, after `reject(text)`, that
text.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from tests.buyers.fakes.fake_server import Answer, FakeBuyer, Request

PATH = "/Suppliers/WebServices/InsertLeads.asmx"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
DP_NS = "http://www.doublepositive.com/"
SOAP_ACTION = "http://www.doublepositive.com/InsertLead"
FIELDS = (
    "SupplierID",
    "SupplierPassword",
    "FirstName",
    "LastName",
    "EmailAddress",
    "CoAppFirstName",
    "CoAppLastName",
    "Address",
    "City",
    "State",
    "PostalCode",
    "HomePhone",
    "WorkPhone",
    "WorkPhoneExt",
    "CurrentEmployer",
    "YearsThere",
    "Income",
    "BestCallTime",
    "OriginalLeadDate",
    "ExternalLeadID",
    "IPAddress",
    "ExtraFields",
)
REQUIRED = (
    "SupplierID",
    "SupplierPassword",
    "FirstName",
    "LastName",
    "EmailAddress",
    "HomePhone",
    "State",
    "PostalCode",
)
_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "State": (re.compile(r"[A-Z]{2}"), "a 2-letter state code"),
    "PostalCode": (re.compile(r"[0-9]{5}(-[0-9]{4})?"), "a ZIP code"),
    "HomePhone": (re.compile(r"[0-9]{10}"), "10 digits"),
    "WorkPhone": (re.compile(r"[0-9]{10}"), "10 digits"),
    "WorkPhoneExt": (re.compile(r"[0-9]{1,6}"), "digits"),
    "EmailAddress": (re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"), "an e-mail address"),
    "YearsThere": (re.compile(r"[0-9]{1,3}"), "a whole number"),
    "Income": (re.compile(r"[0-9]+(\.[0-9]{1,2})?"), "an amount"),
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y")

SUPPLIER_ID = "1234"
SUPPLIER_PASSWORD = "secret"
EXAMPLE_FIELDS = {
    "SupplierID": SUPPLIER_ID,
    "SupplierPassword": SUPPLIER_PASSWORD,
    "FirstName": "Mary",
    "LastName": "O'Neil & Sons",
    "EmailAddress": "mary@example.com",
    "Address": "1 Main St",
    "City": "Boston",
    "State": "MA",
    "PostalCode": "02134",
    "HomePhone": "6175550101",
    "OriginalLeadDate": "2024-05-01T10:30:00",
    "ExternalLeadID": "L-1",
    "IPAddress": "203.0.113.7",
}


def envelope(body: str) -> str:
    """A SOAP 1.1 envelope around `body`, declared as the spec's own examples declare it."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<soap:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:soap="{SOAP_ENV}">\n'
        f"  <soap:Body>\n{body}\n  </soap:Body>\n"
        "</soap:Envelope>"
    )


def example_request(**fields: str) -> str:
    """The spec's example request, with values in place of its "string" placeholders."""
    values = {**EXAMPLE_FIELDS, **fields}
    children = "".join(
        f"      <{name}>{escape(values[name])}</{name}>\n" for name in FIELDS if name in values
    )
    return envelope(f'    <InsertLead xmlns="{DP_NS}">\n{children}    </InsertLead>')


class Fault(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _fault(text: str, code: str = "soap:Client") -> Fault:
    return Fault(code, text)


def _children(insert: Element) -> dict[str, str]:
    values: dict[str, str] = {}
    for child in insert:
        namespace, _, name = child.tag.rpartition("}")
        if namespace.lstrip("{") != DP_NS or name not in FIELDS:
            raise _fault(f"InsertLead has no parameter {child.tag}.")
        if name in values:
            raise _fault(f"Parameter {name} is given twice.")
        if len(child):
            raise _fault(f"Parameter {name} must be text.")
        values[name] = (child.text or "").strip()
    return values


def _check_formats(values: dict[str, str]) -> None:
    for name in REQUIRED:
        if not values.get(name):
            raise _fault(f"Parameter {name} is required.")
    for name, (pattern, expected) in _FORMATS.items():
        value = values.get(name)
        if value and not pattern.fullmatch(value):
            raise _fault(f"Parameter {name} must be {expected}, not {value!r}.")
    if values.get("IPAddress"):
        try:
            ipaddress.ip_address(values["IPAddress"])
        except ValueError:
            raise _fault("Parameter IPAddress must be an IP address.") from None
    if values.get("OriginalLeadDate"):
        for fmt in _DATE_FORMATS:
            try:
                dt.datetime.strptime(values["OriginalLeadDate"], fmt)  # noqa: DTZ007
                break
            except ValueError:
                continue
        else:
            raise _fault("Parameter OriginalLeadDate must be a date.")


class DoublePositiveInsertLead(FakeBuyer):
    """DoublePositive's InsertLead operation for one supplier's credentials."""

    path = PATH

    def __init__(
        self,
        *,
        supplier_id: str = SUPPLIER_ID,
        supplier_password: str = SUPPLIER_PASSWORD,
        accepted_result: str = "Accepted",
    ) -> None:
        super().__init__()
        self.supplier_id = supplier_id
        self.supplier_password = supplier_password
        self.accepted_result = accepted_result
        self.leads: list[dict[str, str]] = []
        self._rejection: str | None = None

    def reject(self, result: str) -> None:
        """Answer every valid lead from now on with this InsertLeadResult text."""
        self._rejection = result

    def accept(self) -> None:
        self._rejection = None

    def answer(self, request: Request) -> Answer:
        if request.path != PATH:
            return Answer.text("Not Found", status=404)
        if request.method != "POST":
            return Answer.text("Method Not Allowed", status=405)
        if request.media_type != "text/xml":
            return Answer.text(
                "Unsupported Media Type: SOAP 1.1 requests are text/xml.", status=415
            )
        try:
            values = self._lead(request)
        except Fault as fault:
            return Answer.xml(
                envelope(
                    "    <soap:Fault>\n"
                    f"      <faultcode>{fault.code}</faultcode>\n"
                    f"      <faultstring>{escape(fault.text)}</faultstring>\n"
                    "      <detail />\n"
                    "    </soap:Fault>"
                ),
                status=500,
            )
        self.leads.append(values)
        result = self.accepted_result if self._rejection is None else self._rejection
        return Answer.xml(
            envelope(
                f'    <InsertLeadResponse xmlns="{DP_NS}">\n'
                f"      <InsertLeadResult>{escape(result)}</InsertLeadResult>\n"
                "    </InsertLeadResponse>"
            )
        )

    def _lead(self, request: Request) -> dict[str, str]:
        action = request.headers.get("soapaction")
        if action is None or action.strip().strip('"') != SOAP_ACTION:
            raise _fault(f"Server did not recognize the value of HTTP Header SOAPAction: {action}.")
        if request.charset not in ("", "utf-8"):
            raise _fault(f"The request's charset must be utf-8, not {request.charset}.")
        try:
            root = fromstring(request.body)
        except (ParseError, DefusedXmlException) as exc:
            raise _fault(f"The request is not well-formed XML: {exc}.") from None
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise _fault(
                f"The root element must be soap:Envelope, not {root.tag}.", "soap:VersionMismatch"
            )
        bodies = [child for child in root if child.tag == f"{{{SOAP_ENV}}}Body"]
        others = [c for c in root if c.tag not in (f"{{{SOAP_ENV}}}Body", f"{{{SOAP_ENV}}}Header")]
        if len(bodies) != 1 or others:
            raise _fault("The envelope must hold one soap:Body (and at most a soap:Header).")
        operations = list(bodies[0])
        if len(operations) != 1 or operations[0].tag != f"{{{DP_NS}}}InsertLead":
            found = ", ".join(op.tag for op in operations) or "nothing"
            raise _fault(f"soap:Body must hold one {{{DP_NS}}}InsertLead element, not {found}.")
        values = _children(operations[0])
        _check_formats(values)
        credentials = (values["SupplierID"], values["SupplierPassword"])
        if credentials != (self.supplier_id, self.supplier_password):
            raise _fault("Invalid SupplierID or SupplierPassword.")
        return values
