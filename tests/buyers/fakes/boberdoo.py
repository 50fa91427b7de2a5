"""A buyer on a boberdoo lead portal: the pingPostLead API, where the post must carry back the
Lead_ID the ping answered with.

Written from boberdoo's published material (cited, not copied):

- the pingPostLead function spec, https://example.leadprosper.tech/boberdoo-ping-post (a
  boberdoo-generated spec page): `Key`, `API_Action=pingPostLead`, `Mode` (ping, post or full),
  `Format` (XML by default, or JSON), `Cost`, and `Lead_ID`, "Lead ID number received in
  response of ping mode", required on the post; the other inputs depend on the lead type;
- https://www.boberdoo.com/ping-post-lead-log: the ping answer, whose example this fake gives by
  default (`<response><status>Matched</status><lead_id>21777961</lead_id><price>6.66</price>`);
- https://www.boberdoo.com/lead-posting-responses: the short response, XML by default, holding
  `status`, `lead_id` and, on a failed submission only, `error`;
- https://www.boberdoo.com/ping-post-specifications-video: `Test_Lead=1` is validated and
  answered but not kept, and a test lead matches only with `Zip=99999`;
- https://inquirly.com/l: a boberdoo spec's example ping, a GET to `/new_api/api.php` with
  `Key`, `API_Action`, `Mode=ping`, `SRC`, `TYPE`, `Landing_Page`, `IP_Address` and `Zip`.

The lead type is this fake's own (a solar lead type with boberdoo's field naming): the specs
show that the fields depend on the lead type, not what a solar lead type holds. The error texts
are this fake's too: the pages show where a failure's reason goes (`error`), not the list of
reasons. The JSON answer (`Format=JSON`) holds the same names under `response`.

Behaviour per test: `price` (the bid), `decline` (answer pings Unmatched; boberdoo's short
response gives no reason for that), `reject_post` (refuse posts with this error text).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.buyers.fakes import formats
from tests.buyers.fakes.fake_server import ABSENT, Answer, FieldRule, PingPostFake, field_problems

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from tests.buyers.fakes.fake_server import PingPostBehaviour, Request

PATH = "/new_api/api.php"
MODES = ("ping", "post", "full")
TEST_MATCH_ZIP = "99999"
# The error for a post's Lead_ID that the portal cannot take, by what `PingBook.redeem` found.
LEAD_ID_REFUSED = {
    "unknown": "Invalid Lead_ID",
    "expired": "Lead_ID has expired",
    "used": "Lead_ID already posted",
}


def _positive(value: str) -> str | None:
    return None if formats.is_number(value) and Decimal(value) > 0 else "must be a number above 0"


def _non_negative(value: str) -> str | None:
    return None if formats.is_number(value) and Decimal(value) >= 0 else "must be a number"


def _state(value: str) -> str | None:
    return None if value in formats.US_STATES else "not a US state"


def _ip(value: str) -> str | None:
    return None if formats.is_ip(value) else "not an IP address"


_EMAIL = formats.matches(formats.EMAIL_RE, "must be an e-mail address")
_URL = formats.matches(formats.URL_RE, "must be a URL")

# This fake's solar lead type. Ping fields describe the lead without naming the consumer.
LEAD_TYPE_FIELDS = (
    FieldRule(
        "Zip", ping=True, post=True, check=formats.matches(formats.ZIP5_RE, "must be 5 digits")
    ),
    FieldRule("Homeowner", ping=True, post=True, choices=("Yes", "No")),
    FieldRule("Electric_Bill", ping=True, post=True, check=_non_negative),
    FieldRule("Utility_Provider"),
    FieldRule("State", post=True, check=_state),
    FieldRule("City"),
    FieldRule("First_Name", post=True),
    FieldRule("Last_Name", post=True),
    FieldRule("Address", post=True),
    FieldRule("Email", post=True, check=_EMAIL),
    FieldRule(
        "Primary_Phone", post=True, check=formats.matches(formats.PHONE10_RE, "must be 10 digits")
    ),
    FieldRule("IP_Address", post=True, check=_ip),
    FieldRule("Landing_Page", post=True, check=_URL),
    FieldRule("TCPA_Consent", choices=("Yes", "No")),
    FieldRule("Trusted_Form_URL", check=_URL),
)


class BoberdooFake(PingPostFake):
    """A boberdoo portal buying one lead type by ping/post; see the module docstring."""

    default_price = Decimal("6.66")
    path = PATH

    def __init__(
        self,
        *,
        key: str = "bbd-4f1c2a",
        lead_type: str = "12",
        first_lead_id: int = 21777961,
        **behaviour: Unpack[PingPostBehaviour],
    ) -> None:
        super().__init__(**behaviour)
        self.key = key
        self.lead_type = lead_type
        self.first_lead_id = first_lead_id
        self.test_leads: list[str] = []

    def lead_id(self) -> str:
        return str(self.first_lead_id + self.next_number() - 1)

    def answer(self, request: Request) -> Answer:  # noqa: PLR0911 (one answer per outcome)
        if request.path != PATH:
            return Answer.text("Not Found", status=404)
        params = _params(request)
        answer_format = params.get("Format", "XML").upper()
        if answer_format not in ("XML", "JSON"):
            return _answer("XML", status="Error", error="Invalid Format")
        if request.method not in ("GET", "POST"):
            return _answer(answer_format, status="Error", error="Unsupported request method")
        if request.method == "POST" and request.body and request.media_type != formats.FORM:
            return _answer(answer_format, status="Error", error="Unsupported Content-Type")
        error = self._check(params)
        if error:
            return _answer(answer_format, status="Error", error=error)
        mode = params["Mode"]
        if params.get("Test_Lead") == "1":
            self.test_leads.append(mode)
        if mode == "post":
            return self._post(params, answer_format)
        if self.decline or (params.get("Test_Lead") == "1" and params["Zip"] != TEST_MATCH_ZIP):
            return _answer(answer_format, status="Unmatched")
        if mode == "full" and self.reject_post:
            return _answer(answer_format, status="Error", error=self.reject_post)
        lead_id = self.lead_id()
        if mode == "ping":
            self.pings.issue(lead_id, price=self.price)
        return _answer(
            answer_format, status="Matched", lead_id=lead_id, price=formats.money(self.price)
        )

    def _check(self, params: Mapping[str, str]) -> str | None:  # noqa: PLR0911
        """Return the first thing wrong with a request, in the order the portal checks them."""
        if params.get("Key") != self.key:
            return "Invalid API Key"
        if params.get("API_Action") != "pingPostLead":
            return "Invalid API_Action"
        mode = params.get("Mode")
        if mode not in MODES:
            return "Invalid Mode"
        if params.get("TYPE") != self.lead_type:
            return "Invalid TYPE"
        if not params.get("SRC"):
            return "Missing required field: SRC"
        if params.get("Test_Lead", "0") not in ("0", "1"):
            return "Invalid value for field: Test_Lead"
        if "Cost" in params and _positive(params["Cost"]):
            return "Invalid value for field: Cost"
        if mode == "post" and not params.get("Lead_ID"):
            return "Missing required field: Lead_ID"
        kinds = ("ping", "post") if mode == "full" else (mode,)
        for name, why in field_problems(LEAD_TYPE_FIELDS, params, kinds):
            if why == ABSENT:
                return f"Missing required field: {name}"
            return f"Invalid value for field: {name}"
        return None

    def _post(self, params: Mapping[str, str], answer_format: str) -> Answer:
        lead_id = params["Lead_ID"]
        state, facts = self.pings.redeem(lead_id)
        if state != "ok":
            return _answer(answer_format, status="Error", error=LEAD_ID_REFUSED[state])
        if self.reject_post:
            return _answer(answer_format, status="Error", lead_id=lead_id, error=self.reject_post)
        return _answer(
            answer_format, status="Matched", lead_id=lead_id, price=formats.money(facts["price"])
        )


def _params(request: Request) -> dict[str, str]:
    """The request's fields: the query's, then a form body's (the portal reads both)."""
    return formats.first_values({**request.query, **request.form()})


def _answer(answer_format: str, **elements: Any) -> Answer:
    """The short response: status, then lead_id, price and error where there are any."""
    if answer_format == "JSON":
        return Answer.json({"response": elements})
    return Answer.xml_elements("response", elements)
