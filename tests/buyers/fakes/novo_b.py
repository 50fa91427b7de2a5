"""A fake of Novo's Partner Lead API: a nested JSON post with arrays and typed values.

Spec followed (Novo Insurance, "Partner Lead API"):
- request: https://docs.novo.us/partnerquote/lead-request.html
- responses: https://docs.novo.us/partnerquote/lead-response.html

What the spec says, and what this fake therefore enforces:
- `POST {host}/partner/v2/policy/lead`, `Content-Type: application/json`, the partner's key in
  the `x-api-key` header.
- The body is an object `{"channel": {...}, "application": {"drivers": [...], ...}}`. The spec's
  example driver nests `name`, `contact_info`, `address`, `residence`, `occupation` and
  `driver_license` objects, and carries typed values: `residence.length_in_months` is a JSON
  number (12), while `address.zip` and `contact_info.phone` are strings ("85001",
  "4081234567"). A number where the spec has text, or text where it has a number, is refused.
  Parts of the application the example does not show (vehicles, coverage) are not checked.
- Answers: 200 `LeadSuccessResponse` (`status` "success", `message` "Processed successfully.",
  `transaction_id`, `bridge_urls`); 400 `ErrorResponse` for a missing or invalid parameter
  (the spec's examples: `missing_required_parameter`, `state_not_supported`,
  `eligible_vehicle_not_found`); 403 `ErrorMessageResponse` (`forbidden`) for a wrong key.
  Error bodies carry `status` "failed", `message` and `error_code`, the shape Novo's service
  answers with; the 403 body is the key gateway's `{"message": "Forbidden"}`.

Novo answers a lead with a transaction id and bridge URLs, not a price: the buyer pays the
contract's fixed price. A test makes the fake refuse leads with `refuse(...)`, or refuse states
with `states=`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from typing import Any

from tests.buyers.fakes.fake_server import Answer, FakeBuyer, Request

PATH = "/partner/v2/policy/lead"
SUCCESS_MESSAGE = "Processed successfully."

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"[0-9]{10}")
_ZIP = re.compile(r"[0-9]{5}")
_STATE = re.compile(r"[A-Z]{2}")


def example_request() -> dict[str, Any]:
    """The spec's example request (its channel and its first driver)."""
    return {
        "channel": {"channel_id": "novo", "integration_type": "direct"},
        "application": {
            "drivers": [
                {
                    "name": {
                        "first_name": "John",
                        "last_name": "Doe",
                        "middle_name": "Michael",
                        "suffix": "Jr.",
                    },
                    "dob": "1980-05-05",
                    "gender": "male",
                    "marital_status": "single",
                    "contact_info": {"phone": "4081234567", "email": "example@gmail.com"},
                    "relation_to_pni": "self",
                    "address": {
                        "address_line_1": "123 Main St",
                        "address_line_2": "Apt 4B",
                        "city": "Phoenix",
                        "state": "AZ",
                        "zip": "85001",
                        "country": "USA",
                    },
                    "residence": {"type": "own_home", "length_in_months": 12},
                    "education": "bachelor",
                    "occupation": {"code": "010", "description": "homemaker"},
                    "driver_license": {"id": "D12345678", "state": "AZ"},
                }
            ]
        },
    }


class Invalid(Exception):
    """A request the spec refuses, with the ErrorResponse code and message to answer."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def _missing(path: str) -> Invalid:
    return Invalid("missing_required_parameter", f"Missing required parameter: {path}.")


def _invalid(path: str, expected: str) -> Invalid:
    return Invalid("invalid_request", f"Invalid value for {path}: expected {expected}.")


def _object(parent: dict[str, Any], key: str, path: str, *, required: bool = True) -> dict:
    value = parent.get(key)
    if value is None:
        if required:
            raise _missing(path)
        return {}
    if not isinstance(value, dict):
        raise _invalid(path, "an object")
    return value


def _text(
    parent: dict[str, Any],
    key: str,
    path: str,
    *,
    required: bool = True,
    pattern: re.Pattern[str] | None = None,
    expected: str = "text",
) -> str | None:
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise _missing(path)
        return None
    if not isinstance(value, str):
        raise _invalid(path, expected)
    if pattern is not None and not pattern.fullmatch(value):
        raise _invalid(path, expected)
    return value


def _integer(parent: dict[str, Any], key: str, path: str) -> int:
    value = parent.get(key)
    if value is None:
        raise _missing(path)
    # bool is an int to Python, not to JSON.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(path, "a whole number")
    return value


def _date(parent: dict[str, Any], key: str, path: str) -> None:
    value = _text(parent, key, path, expected="a date YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value or "")
    except ValueError:
        raise _invalid(path, "a date YYYY-MM-DD") from None
    if len(value or "") != 10:
        raise _invalid(path, "a date YYYY-MM-DD")


def _check_driver(driver: Any, path: str) -> str:
    """Check one driver; return its address's state."""
    if not isinstance(driver, dict):
        raise _invalid(path, "an object")
    name = _object(driver, "name", f"{path}.name")
    _text(name, "first_name", f"{path}.name.first_name")
    _text(name, "last_name", f"{path}.name.last_name")
    _text(name, "middle_name", f"{path}.name.middle_name", required=False)
    _text(name, "suffix", f"{path}.name.suffix", required=False)
    _date(driver, "dob", f"{path}.dob")
    _text(driver, "gender", f"{path}.gender")
    _text(driver, "marital_status", f"{path}.marital_status")
    _text(driver, "relation_to_pni", f"{path}.relation_to_pni")
    contact = _object(driver, "contact_info", f"{path}.contact_info")
    phone_expected = "a 10-digit phone number as text"
    _text(contact, "phone", f"{path}.contact_info.phone", pattern=_PHONE, expected=phone_expected)
    _text(contact, "email", f"{path}.contact_info.email", pattern=_EMAIL, expected="an e-mail")
    address = _object(driver, "address", f"{path}.address")
    _text(address, "address_line_1", f"{path}.address.address_line_1")
    _text(address, "address_line_2", f"{path}.address.address_line_2", required=False)
    _text(address, "city", f"{path}.address.city")
    state = _text(
        address, "state", f"{path}.address.state", pattern=_STATE, expected="a state code"
    )
    _text(address, "zip", f"{path}.address.zip", pattern=_ZIP, expected="a 5-digit ZIP as text")
    _text(address, "country", f"{path}.address.country")
    residence = _object(driver, "residence", f"{path}.residence")
    _text(residence, "type", f"{path}.residence.type")
    _integer(residence, "length_in_months", f"{path}.residence.length_in_months")
    _text(driver, "education", f"{path}.education", required=False)
    occupation = _object(driver, "occupation", f"{path}.occupation", required=False)
    if occupation:
        _text(occupation, "code", f"{path}.occupation.code")
        _text(occupation, "description", f"{path}.occupation.description", required=False)
    license_ = _object(driver, "driver_license", f"{path}.driver_license", required=False)
    if license_:
        _text(license_, "id", f"{path}.driver_license.id")
        _text(
            license_,
            "state",
            f"{path}.driver_license.state",
            pattern=_STATE,
            expected="a state code",
        )
    return state or ""


def check_lead(body: Any) -> str:
    """Check a lead request as the spec describes it; return the first driver's state."""
    if not isinstance(body, dict):
        raise Invalid("invalid_request", "The request body must be a JSON object.")
    channel = _object(body, "channel", "channel")
    _text(channel, "channel_id", "channel.channel_id")
    _text(channel, "integration_type", "channel.integration_type")
    application = _object(body, "application", "application")
    drivers = application.get("drivers")
    if drivers is None or drivers == []:
        raise _missing("application.drivers")
    if not isinstance(drivers, list):
        raise _invalid("application.drivers", "an array of drivers")
    states = [
        _check_driver(driver, f"application.drivers[{i}]") for i, driver in enumerate(drivers)
    ]
    if not any(driver.get("relation_to_pni") == "self" for driver in drivers):
        raise _invalid("application.drivers", 'one driver with relation_to_pni "self"')
    vehicles = application.get("vehicles")
    if vehicles is not None and not isinstance(vehicles, list):
        raise _invalid("application.vehicles", "an array")
    return states[0]


class NovoPartnerLead(FakeBuyer):
    """Novo's lead endpoint. `states`: the states Novo writes (None: all of them)."""

    path = PATH

    def __init__(self, *, api_key: str = "test-novo-key", states: Iterable[str] | None = None):
        super().__init__()
        self.api_key = api_key
        self.states = None if states is None else frozenset(states)
        self.transactions: list[str] = []
        self._refusal: tuple[str, str] | None = None

    def refuse(self, error_code: str, message: str) -> None:
        """Answer every valid lead from now on with this 400 ErrorResponse."""
        self._refusal = (error_code, message)

    def accept(self) -> None:
        self._refusal = None

    def answer(self, request: Request) -> Answer:
        if request.path != PATH:
            return Answer.json({"message": "Not Found"}, status=404)
        if request.method != "POST":
            return Answer.json({"message": "Method Not Allowed"}, status=405)
        if request.headers.get("x-api-key") != self.api_key:
            return Answer.json({"message": "Forbidden"}, status=403)
        try:
            if request.media_type != "application/json":
                raise Invalid("invalid_request", "Content-Type must be application/json.")
            try:
                body = request.json()
            except ValueError:
                raise Invalid("invalid_request", "The request body is not valid JSON.") from None
            state = check_lead(body)
            if self.states is not None and state not in self.states:
                raise Invalid("state_not_supported", f"State {state} is not supported.")
            if self._refusal is not None:
                raise Invalid(*self._refusal)
        except Invalid as refused:
            return Answer.json(
                {"status": "failed", "message": refused.message, "error_code": refused.error_code},
                status=400,
            )
        transaction_id = str(uuid.uuid4())
        self.transactions.append(transaction_id)
        return Answer.json(
            {
                "status": "success",
                "message": SUCCESS_MESSAGE,
                "transaction_id": transaction_id,
                "bridge_urls": {
                    "consumer_bridge_url": (
                        f"{self.base_url}/consumer?sub4={transaction_id}&partner=novo"
                    ),
                    "agent_bridge_url": f"{self.base_url}/agent?transactionId={transaction_id}",
                },
            }
        )
