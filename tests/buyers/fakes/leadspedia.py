"""A buyer on LeadsPedia: ping.do and post.do, where a seller may send everything as a GET query
string, its campaign key included, and the post carries the ping's `lp_ping_id`.

Written from LeadsPedia posting instructions a buyer published (cited, not copied):

- https://ll.media/solar_posting/ (LL Media's solar campaign on LeadsPedia): the ping URL
  `.../ping.do` and post URL `.../post.do`; "POST or GET are supported"; the fields and their
  Ping/Post Required columns and data types: `lp_campaign_id` and `lp_campaign_key` ("provided
  to you") on both, `lp_s1` (sub affiliate, required here), `lp_test` ("1 for Test Post"),
  `lp_response` ("Response back XML or JSON"), `lp_ping_id` ("Returned Ping ID from the Ping
  Post", required on the post), US Phone, US State, US Zip Code, E-Mail Address, IP, lists
  (average_utility_bill, residence_ownership, shade, credit_score), utility_company,
  universal_lead_id (Jornaya), vendor_lead_id;
- https://ll.media/mortgage_refi_posting/ (the same buyer's other campaign): dates as
  YYYY-MM-DD and booleans as 1 or 0.

Two things are this fake's own. The published page takes `ip_address` on the ping too; a
Leadswitch ping is anonymous, so this campaign asks for it on the post only. And the stored
copy of the page stops before its list values and its answer section, so the list values are
this campaign's, and the answer follows what published LeadsPedia client integrations read:
`result` (success or failed), `msg`, `errors` (`field`, `error`), a ping's `ping_id` and `price`,
a post's `lead_id` and `price`; XML (the default) with the same names under `response`, or JSON
when `lp_response=JSON`.

Behaviour per test: `price` (the bid), `decline` (fail pings with this msg), `reject_post`
(fail posts with this msg); a post whose phone or e-mail was already accepted fails as
"Duplicate Lead".
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tests.buyers.fakes import formats
from tests.buyers.fakes.fake_server import (
    ABSENT,
    NOT_ALLOWED,
    Answer,
    FieldRule,
    PingPostFake,
    field_problems,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from tests.buyers.fakes.fake_server import PingPostBehaviour, Request

# The msg for a post's lp_ping_id that the campaign cannot take, by what `PingBook.redeem` found.
PING_ID_REFUSED = {
    "unknown": "Invalid Ping ID",
    "expired": "Ping ID Expired",
    "used": "Ping ID Already Used",
}


def _state(value: str) -> str | None:
    return None if value in formats.US_STATES else "Invalid State"


def _ip(value: str) -> str | None:
    return None if formats.is_ip(value) else "Invalid IP Address"


CAMPAIGN_FIELDS = (
    FieldRule("lp_s1", ping=True, post=True),
    FieldRule("lp_test", choices=("0", "1")),
    FieldRule("first_name", post=True),
    FieldRule("last_name", post=True),
    FieldRule(
        "phone_home", post=True, check=formats.matches(formats.NANP_RE, "Invalid Phone Number")
    ),
    FieldRule("address", post=True),
    FieldRule("city", post=True),
    FieldRule("state", ping=True, post=True, check=_state),
    FieldRule(
        "zip_code", ping=True, post=True, check=formats.matches(formats.ZIP5_RE, "Invalid Zip Code")
    ),
    FieldRule(
        "email_address",
        post=True,
        check=formats.matches(formats.EMAIL_RE, "Invalid E-Mail Address"),
    ),
    FieldRule("ip_address", post=True, check=_ip),
    FieldRule(
        "average_utility_bill",
        ping=True,
        post=True,
        choices=("$0-$100", "$101-$150", "$151-$200", "$201-$300", "$301-$400", "$401+"),
    ),
    FieldRule("residence_ownership", ping=True, post=True, choices=("Own", "Rent")),
    FieldRule("shade", ping=True, post=True, choices=("No Shade", "Partial Shade", "Full Shade")),
    FieldRule("utility_company", ping=True, post=True),
    FieldRule("credit_score", choices=("Excellent", "Good", "Fair", "Poor")),
    FieldRule("universal_lead_id"),
    FieldRule("vendor_lead_id", post=True),
)


class LeadsPediaFake(PingPostFake):
    """A LeadsPedia ping/post campaign taking GET or POST; see the module docstring."""

    default_price = Decimal("18.50")

    def __init__(
        self,
        *,
        campaign_id: str = "64c9a3f1b2e7d",
        campaign_key: str = "Q7vXk2LmP9sRt4WyZb8N",
        **behaviour: Unpack[PingPostBehaviour],
    ) -> None:
        super().__init__(**behaviour)
        self.campaign_id = campaign_id
        self.campaign_key = campaign_key
        self.test_posts: list[dict[str, str]] = []

    def answer(self, request: Request) -> Answer:  # noqa: PLR0911 (one answer per outcome)
        kind = {"/ping.do": "ping", "/post.do": "post"}.get(request.path)
        if kind is None:
            return Answer.text("Not Found", status=404)
        params = _params(request)
        answer_format = "JSON" if params.get("lp_response", "").upper() == "JSON" else "XML"
        if request.method not in ("GET", "POST"):
            return _failed(answer_format, "Method Not Allowed", status=405)
        if request.method == "POST" and request.body and request.media_type != formats.FORM:
            return _failed(answer_format, "Unsupported Content-Type")
        if params.get("lp_response", "XML").upper() not in ("XML", "JSON"):
            return _failed(answer_format, "Invalid lp_response")
        if params.get("lp_campaign_id") != self.campaign_id:
            return _failed(answer_format, "Invalid Campaign ID")
        if params.get("lp_campaign_key") != self.campaign_key:
            return _failed(answer_format, "Invalid Campaign Key")
        errors = _field_errors(params, kind)
        if errors:
            return _failed(answer_format, "Invalid Data", errors=errors)
        if kind == "ping":
            return self._ping(answer_format)
        return self._post(params, answer_format)

    def _ping(self, answer_format: str) -> Answer:
        if self.decline:
            return _failed(answer_format, self.decline)
        ping_id = self.pings.issue(secrets.token_hex(12), price=self.price)
        return _answer(
            answer_format,
            result="success",
            msg="",
            ping_id=ping_id,
            price=formats.money(self.price),
        )

    def _post(self, params: Mapping[str, str], answer_format: str) -> Answer:
        if not params.get("lp_ping_id"):
            return _failed(
                answer_format,
                "Invalid Data",
                errors=[{"field": "lp_ping_id", "error": "Missing Ping ID"}],
            )
        state, facts = self.pings.redeem(params["lp_ping_id"])
        if state != "ok":
            return _failed(answer_format, PING_ID_REFUSED[state])
        if self.reject_post:
            return _failed(answer_format, self.reject_post)
        test = params.get("lp_test") == "1"
        if not self.accept_unless_duplicate(
            params, phone="phone_home", email="email_address", keep=not test
        ):
            return _failed(answer_format, "Duplicate Lead")
        if test:
            self.test_posts.append(dict(params))
        return _answer(
            answer_format,
            result="success",
            msg="Lead Accepted",
            lead_id=secrets.token_hex(8).upper(),
            price=formats.money(facts["price"]),
        )


def _params(request: Request) -> dict[str, str]:
    """The request's fields: the query string's, and on a POST the form body's too."""
    return formats.first_values(
        {**request.query, **(request.form() if request.method == "POST" else {})}
    )


def _field_errors(params: Mapping[str, str], kind: str) -> list[dict[str, str]]:
    words = {ABSENT: "Missing Required Field", NOT_ALLOWED: "Invalid Value"}
    return [
        {"field": name, "error": words.get(why, why)}
        for name, why in field_problems(CAMPAIGN_FIELDS, params, (kind,))
    ]


def _failed(
    answer_format: str, msg: str, *, errors: list[dict[str, str]] | None = None, status: int = 200
) -> Answer:
    return _answer(answer_format, status=status, result="failed", msg=msg, errors=errors)


def _answer(answer_format: str, *, status: int = 200, **elements: Any) -> Answer:
    if answer_format == "JSON":
        return Answer.json({k: v for k, v in elements.items() if v is not None}, status)
    xml_elements = dict(elements)
    if xml_elements.get("errors"):
        xml_elements["errors"] = {"error": xml_elements["errors"]}
    return Answer.xml_elements("response", xml_elements, status)
