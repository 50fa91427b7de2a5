"""A buyer on Lead Prosper: a JSON ping/post campaign that authenticates the seller by three
values in the body (`lp_campaign_id`, `lp_supplier_id`, `lp_key`) and wants the ping's
`ping_id` back in the post as `lp_ping_id`.

Written from Lead Prosper's published material (cited, not copied):

- the ping/post supplier spec example, https://example.leadprosper.tech/leadprosper-ping-post:
  the `lp_*` fields and their PING/POST columns (`lp_campaign_id`, `lp_supplier_id`, `lp_key`
  on both, "Must be set to" 6309, 12465 and yq0h0jphvp5, the defaults here; `lp_action`, "Send
  test for testing"; `lp_ping_id`, "`ping_id` value retrieved from PING response", required on
  the POST; `lp_subid1`/`lp_subid2`, max 75 chars), the field types and their formats (Phone:
  10 digits; Postal code: 5 digit; State: any valid US state, 2 letter; IP address: IPv4,
  IPv6; URL with protocol; lists of allowed values) and "fields are case sensitive";
- the direct post example of a solar campaign, https://example.leadprosper.tech/leadprosper-direct-post:
  the campaign fields this fake buys and their allowed values (home_owner, time_frame,
  monthly_electric_bill, roof_shade, property_type...);
- https://support.leadprosper.io/article/578-a-complete-guide-to-reading-and-understanding-lead-prosper-supplier-api-specs
  and https://support.leadprosper.io/article/530-what-is-a-supplier-a-breakdown-of-suppliers-in-lead-prosper:
  a campaign takes FORM or JSON posts, and answers Accepted, Duplicate or Error;
- https://support.leadprosper.io/article/46-real-time-action-direct-post: the answer's values
  ACCEPTED and DUPLICATED.

Which campaign fields a PING must carry is campaign configuration; this campaign asks the ping
for what describes the lead without naming the consumer, and the post for the rest. The answer
carries `status` (ACCEPTED, DUPLICATED, ERROR), `code` and `message` (code 0 when accepted; 1001
"Missing required parameter <name>", as published integrations record Lead Prosper's answer;
the other codes, 1002 invalid value, 1003 credentials, 1004 ping id, 1005 not bought and 1006
duplicate, are this fake's), the ping's `ping_id` and `bids` (`bid_id`, `payout`), and the
post's `lead_id` and `payout`.

Behaviour per test: `price` (the bid), `decline` (answer pings ERROR with this message),
`reject_post` (answer posts ERROR with this message); a post whose phone or e-mail was already
accepted is DUPLICATED.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.buyers.fakes import formats
from tests.buyers.fakes.fake_server import ABSENT, Answer, FieldRule, PingPostFake, field_problems

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from tests.buyers.fakes.fake_server import PingPostBehaviour, Request

MISSING, INVALID, CREDENTIALS, PING_ID, NOT_BOUGHT, DUPLICATE = 1001, 1002, 1003, 1004, 1005, 1006
# The message for a post's lp_ping_id the campaign cannot take, by what `PingBook.redeem` found.
PING_ID_REFUSED = {
    "unknown": "Invalid lp_ping_id",
    "expired": "Expired lp_ping_id",
    "used": "lp_ping_id was already used",
}


def _text(pattern: Any = None, what: str = "") -> Callable[[Any], str | None]:
    """A Text-typed field: a JSON string, matching `pattern` when given."""

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be text"
        if pattern is not None and not pattern.match(value):
            return f"must be {what}"
        return None

    return check


def _state(value: Any) -> str | None:
    return None if isinstance(value, str) and value in formats.US_STATES else "must be a US state"


def _ip(value: Any) -> str | None:
    if isinstance(value, str) and formats.is_ip(value):
        return None
    return "must be an IPv4 or IPv6 address"


def _subid(value: Any) -> str | None:
    return None if isinstance(value, str) and len(value) <= 75 else "must be text, max 75 chars"


# The solar campaign's fields, with the allowed values of Lead Prosper's solar example.
CAMPAIGN_FIELDS = (
    FieldRule("lp_action", choices=("test",)),
    FieldRule("lp_subid1", check=_subid),
    FieldRule("lp_subid2", check=_subid),
    FieldRule("first_name", post=True, check=_text()),
    FieldRule("last_name", post=True, check=_text()),
    FieldRule("email", post=True, check=_text(formats.EMAIL_RE, "a valid e-mail address")),
    FieldRule("phone", post=True, check=_text(formats.PHONE10_RE, "10 digits")),
    FieldRule("date_of_birth", check=_text(formats.DATE_RE, "YYYY-MM-DD")),
    FieldRule("address", check=_text()),
    FieldRule("city", check=_text()),
    FieldRule("state", ping=True, post=True, check=_state),
    FieldRule("zip_code", ping=True, post=True, check=_text(formats.ZIP5_RE, "5 digit")),
    FieldRule("ip_address", post=True, check=_ip),
    FieldRule("user_agent", post=True, check=_text()),
    FieldRule("landing_page_url", post=True, check=_text(formats.URL_RE, "a URL with protocol")),
    FieldRule("jornaya_leadid", check=_text()),
    FieldRule("trustedform_cert_url", check=_text(formats.URL_RE, "a URL with protocol")),
    FieldRule("home_owner", ping=True, post=True, choices=("Yes", "No")),
    FieldRule("time_frame", choices=("Immediately", "Within 1 month", "1-3 months", "3+ months")),
    FieldRule(
        "monthly_electric_bill",
        ping=True,
        post=True,
        choices=(
            "$0-$50",
            "$51-$100",
            "$101-$150",
            "$151-$200",
            "$201-$300",
            "$300-$400",
            "$400+",
        ),
    ),
    FieldRule("utlity_provider", check=_text()),  # sic: the campaign's own field name
    FieldRule("roof_shade", choices=("No Shade", "Full Shade", "Partial Shade", "Not Sure")),
    FieldRule(
        "property_type",
        choices=(
            "Single Family",
            "Multi Family",
            "Apartment",
            "Condo",
            "Manufactured",
            "Townhome",
            "Duplex",
            "Commercial",
        ),
    ),
)


class LeadProsperFake(PingPostFake):
    """A Lead Prosper ping/post campaign; see the module docstring."""

    default_price = Decimal("25.00")

    def __init__(
        self,
        *,
        campaign_id: int = 6309,
        supplier_id: int = 12465,
        key: str = "yq0h0jphvp5",
        post_type: str = "json",
        **behaviour: Unpack[PingPostBehaviour],
    ) -> None:
        if post_type not in ("json", "form"):
            raise ValueError("post_type is json or form")
        super().__init__(**behaviour)
        self.campaign_id = campaign_id
        self.supplier_id = supplier_id
        self.key = key
        self.post_type = post_type

    def answer(self, request: Request) -> Answer:
        kind = {"/ping": "ping", "/post": "post"}.get(request.path)
        if kind is None:
            return Answer.text("Not Found", status=404)
        if request.method != "POST":
            return _error(INVALID, "Method not allowed", status=405)
        fields = self._fields(request)
        if isinstance(fields, Answer):
            return fields
        problem = self._check(fields, kind)
        if problem:
            return problem
        if kind == "ping":
            return self._ping()
        return self._post(fields)

    def _fields(self, request: Request) -> dict[str, Any] | Answer:
        """The body's fields, in the post type this campaign takes."""
        wanted = formats.JSON if self.post_type == "json" else formats.FORM
        if request.media_type != wanted:
            return _error(INVALID, f"Content-Type must be {wanted}")
        if self.post_type == "form":
            return formats.first_values(request.form())
        try:
            body = request.json()
        except ValueError:
            return _error(INVALID, "Invalid JSON body")
        if not isinstance(body, dict):
            return _error(INVALID, "Invalid JSON body")
        return body

    def _check(self, fields: Mapping[str, Any], kind: str) -> Answer | None:  # noqa: PLR0911
        """Return the answer to the first thing wrong with a request, or None."""
        for name, expected in (
            ("lp_campaign_id", self.campaign_id),
            ("lp_supplier_id", self.supplier_id),
        ):
            if name not in fields:
                return _error(MISSING, f"Missing required parameter {name}")
            value = fields[name]
            if not formats.is_number(value) or Decimal(str(value)) != expected:
                return _error(CREDENTIALS, f"Invalid {name}")
        if "lp_key" not in fields:
            return _error(MISSING, "Missing required parameter lp_key")
        if fields["lp_key"] != self.key:
            return _error(CREDENTIALS, "Invalid lp_key")
        if kind == "post" and not fields.get("lp_ping_id"):
            return _error(MISSING, "Missing required parameter lp_ping_id")
        for name, why in field_problems(CAMPAIGN_FIELDS, fields, (kind,)):
            if why == ABSENT:
                return _error(MISSING, f"Missing required parameter {name}")
            return _error(INVALID, f"Invalid value for parameter {name}: {why}")
        return None

    def _ping(self) -> Answer:
        if self.decline:
            return _error(NOT_BOUGHT, self.decline)
        ping_id = self.pings.issue(secrets.token_hex(10), price=self.price)
        bid = {"bid_id": secrets.token_hex(6), "payout": float(self.price)}
        return Answer.json(
            {"status": "ACCEPTED", "code": 0, "message": "", "ping_id": ping_id, "bids": [bid]}
        )

    def _post(self, fields: Mapping[str, Any]) -> Answer:
        state, facts = self.pings.redeem(str(fields["lp_ping_id"]))
        if state != "ok":
            return _error(PING_ID, PING_ID_REFUSED[state])
        lead_id = secrets.token_urlsafe(15)
        if self.reject_post:
            return _error(NOT_BOUGHT, self.reject_post, lead_id=lead_id)
        if not self.accept_unless_duplicate(fields, phone="phone", email="email"):
            return Answer.json(
                {
                    "status": "DUPLICATED",
                    "code": DUPLICATE,
                    "message": "Duplicate lead",
                    "lead_id": lead_id,
                }
            )
        return Answer.json(
            {
                "status": "ACCEPTED",
                "code": 0,
                "message": "",
                "lead_id": lead_id,
                "payout": float(facts["price"]),
            }
        )


def _error(code: int, message: str, *, status: int = 200, **extra: Any) -> Answer:
    return Answer.json({"status": "ERROR", "code": code, "message": message, **extra}, status)
