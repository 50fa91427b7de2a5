"""A fake of Zoho CRM's insertRecords method (API 1.0): an XML document inside a form field.

Spec followed (Zoho CRM Developer API, "insertRecords Method"):
- http://www.zoho.com/crm/help/api/insertrecords.html (parameters, the sample request)
- https://www.zoho.com/crm/developer/docs/api/insertRecords-diff.html (the sample answer)
- https://www.zoho.com.cn/crm/help/api/error-messages.html (the table of error codes; the
  messages below are its descriptions in English)
- https://help.zoho.com/portal/en/community/topic/pushing-records-from-3rd-party-to-zoho-crm
  (an error answer as Zoho sent it, for an xmlData it could not take)

What the spec says, and what this fake therefore enforces:
- `POST https://crm.zoho.com/crm/private/xml/Leads/insertRecords`; "use the POST method to
  pass these parameters instead of GET". The parameters are form fields
  (application/x-www-form-urlencoded; Zoho also reads them from the query string).
- Mandatory parameters: `authtoken` (the account's token), `scope` (always `crmapi`) and
  `xmlData`, an XML document: `<Leads><row no="1"><FL val="First Name">Hannah</FL>...</row>
  </Leads>`, one `row` per record (`no` numbers them), one `FL` per field, the field's
  display name in the `val` attribute. Optional: `wfTrigger` (true/false), `duplicateCheck`
  (1 or 2), `isApproval` (true/false), `newFormat` (1 or 2), `version` (1, 2 or 4).
- The answer is XML, `<response uri="/crm/private/xml/Leads/insertRecords">`, holding either
  `<result><message>Record(s) added successfully</message><recorddetail><FL val="Id">...`
  or `<error><code>4600</code><message>...</message></error>`, with HTTP 200 either way.
- Error codes used here: 4401 mandatory field missing, 4600 incorrect API parameter or value,
  4831 missing parameters, 4834 invalid ticket (authtoken), 4835 XML parsing error.

A Lead's mandatory fields are Zoho's defaults, Last Name and Company (the spec's minimal
sample sends exactly these two); an account may make more or fewer mandatory, so
`mandatory=` is configurable. Zoho answers with the new record's id, not a price: the buyer
pays the contract's fixed price. A test refuses leads with `refuse(code, message)`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from tests.buyers.fakes.fake_server import Answer, FakeBuyer, Request

MODULE = "Leads"
PATH = f"/crm/private/xml/{MODULE}/insertRecords"
ADDED = "Record(s) added successfully"
# The words Zoho answered with when xmlData was not a Leads document (community thread above).
XMLDATA_REFUSED = (
    "Unable to process your request. Please verify if the name and value is appropriate "
    'for the "xmlData" parameter.'
)
INCORRECT_PARAMETER = (
    "Incorrect API parameter or API parameter value. Also check the method name and/or "
    "spelling errors in the API url."
)
ERRORS = {
    4401: "Mandatory field missing",
    4600: INCORRECT_PARAMETER,
    4831: "Missing parameters error",
    4834: "Invalid ticket. Also check if ticket has expired.",
    4835: "XML parsing error",
}
_CHOICES = {
    "wfTrigger": ("true", "false"),
    "duplicateCheck": ("1", "2"),
    "isApproval": ("true", "false"),
    "newFormat": ("1", "2"),
    "version": ("1", "2", "4"),
}


def example_xml_data() -> str:
    """The spec's sample record."""
    fields = [
        ("Lead Source", "Web Download"),
        ("Company", "Your Company"),
        ("First Name", "Hannah"),
        ("Last Name", "Smith"),
        ("Email", "testing@testing.com"),
        ("Title", "Manager"),
        ("Phone", "1234567890"),
        ("Home Phone", "0987654321"),
        ("Other Phone", "1212211212"),
        ("Fax", "02927272626"),
        ("Mobile", "292827622"),
    ]
    rows = "".join(f'<FL val="{name}">{escape(value)}</FL>\n' for name, value in fields)
    return f'<Leads>\n<row no="1">\n{rows}</row>\n</Leads>'


class Refused(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message or ERRORS[code]


def _rows(xml_data: str) -> list[dict[str, str]]:
    try:
        root = fromstring(xml_data)
    except (ParseError, DefusedXmlException):
        raise Refused(4835) from None
    if root.tag != MODULE or root.attrib or not len(root):
        raise Refused(4600, XMLDATA_REFUSED)
    rows: list[dict[str, str]] = []
    numbers: set[str] = set()
    for row in root:
        rows.append(_row(row, numbers))
    return rows


def _row(row: Element, numbers: set[str]) -> dict[str, str]:
    number = row.get("no", "")
    if row.tag != "row" or not number.isdigit() or int(number) < 1 or number in numbers:
        raise Refused(4600, XMLDATA_REFUSED)
    if set(row.attrib) != {"no"}:
        raise Refused(4600, XMLDATA_REFUSED)
    numbers.add(number)
    fields: dict[str, str] = {}
    for fl in row:
        name = fl.get("val", "").strip()
        if fl.tag != "FL" or not name or set(fl.attrib) != {"val"} or len(fl):
            raise Refused(4600, XMLDATA_REFUSED)
        if name in fields:
            raise Refused(4600, XMLDATA_REFUSED)
        fields[name] = (fl.text or "").strip()
    return fields


class ZohoCrmInsertRecords(FakeBuyer):
    """Zoho CRM's Leads/insertRecords for one account's authtoken."""

    path = PATH

    def __init__(
        self,
        *,
        authtoken: str = "test-zoho-authtoken",
        mandatory: tuple[str, ...] = ("Last Name", "Company"),
        user: str = "Bruce Wills",
    ) -> None:
        super().__init__()
        self.authtoken = authtoken
        self.mandatory = mandatory
        self.user = user
        self.records: dict[str, dict[str, str]] = {}
        self._ids = itertools.count(1386586000002579001)
        self._refusal: tuple[int, str] | None = None

    def refuse(self, code: int, message: str) -> None:
        """Answer every valid request from now on with this error."""
        self._refusal = (code, message)

    def accept(self) -> None:
        self._refusal = None

    def answer(self, request: Request) -> Answer:
        if request.path != PATH:
            return Answer.text("Not Found", status=404)
        try:
            details = self._insert(request)
        except Refused as refused:
            return self._response(
                f"<error><code>{refused.code}</code>"
                f"<message>{escape(refused.message)}</message></error>"
            )
        return self._response(f"<result><message>{ADDED}</message>{''.join(details)}</result>")

    def _response(self, inner: str) -> Answer:
        return Answer.xml(
            f'<?xml version="1.0" encoding="UTF-8" ?>\n<response uri="{PATH}">{inner}</response>\n'
        )

    def _parameters(self, request: Request) -> dict[str, str]:
        if request.method != "POST":
            raise Refused(4600)
        if request.body and request.media_type != "application/x-www-form-urlencoded":
            raise Refused(4600)
        parameters: dict[str, str] = {}
        for source in (request.query, request.form()):
            for name, values in source.items():
                if len(values) != 1 or name in parameters:
                    raise Refused(4600)
                parameters[name] = values[0]
        return parameters

    def _insert(self, request: Request) -> list[str]:
        parameters = self._parameters(request)
        if not all(parameters.get(name) for name in ("authtoken", "scope", "xmlData")):
            raise Refused(4831)
        if parameters["authtoken"] != self.authtoken:
            raise Refused(4834)
        if parameters["scope"] != "crmapi":
            raise Refused(4600)
        for name, choices in _CHOICES.items():
            if name in parameters and parameters[name] not in choices:
                raise Refused(4600)
        rows = _rows(parameters["xmlData"])
        for fields in rows:
            if any(not fields.get(name) for name in self.mandatory):
                raise Refused(4401)
        if self._refusal is not None:
            raise Refused(*self._refusal)
        now = dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        details = []
        for fields in rows:
            record_id = str(next(self._ids))
            self.records[record_id] = fields
            details.append(
                "<recorddetail>"
                f'<FL val="Id">{record_id}</FL>'
                f'<FL val="Created Time">{now}</FL>'
                f'<FL val="Modified Time">{now}</FL>'
                f'<FL val="Created By"><![CDATA[{self.user}]]></FL>'
                f'<FL val="Modified By"><![CDATA[{self.user}]]></FL>'
                "</recorddetail>"
            )
        return details
