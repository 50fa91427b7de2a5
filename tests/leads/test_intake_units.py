"""Intake's pure logic: the envelope, every field type, consent and `Prefer`, no database."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leads.api.schema import CONSENT_SCHEMA
from leads.intake import (
    FieldError,
    FieldSpec,
    normalise_consent,
    normalise_fields,
    normalise_value,
    parse_prefer_wait,
    parse_submission,
)
from leads.models import FieldType
from simulator.demo import demo_document


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def spec_of(field: dict[str, Any]) -> FieldSpec:
    return FieldSpec(
        name=field["name"],
        field_type=field["field_type"],
        required=field.get("required", False),
        choices=tuple(field.get("choices", ())),
        min_value=_decimal(field.get("min_value")),
        max_value=_decimal(field.get("max_value")),
        max_length=field.get("max_length"),
    )


# The demo's auto insurance schema (simulator/demo_marketplace.yaml).
(AUTO_FIELDS,) = [
    v["fields"] for v in demo_document()["verticals"] if v["slug"] == "auto-insurance"
]
AUTO = tuple(spec_of(f) for f in AUTO_FIELDS)
AUTO_NAMES = frozenset(spec.name for spec in AUTO)
# One field of every type with no range or length, as ops may define them.
OPEN = (
    *(FieldSpec(name=f"any_{t}", field_type=t) for t in FieldType.values),
    FieldSpec(name="any_pick", field_type=FieldType.CHOICE, choices=("a", "B")),
)


def valid_auto(**overrides: Any) -> dict[str, Any]:
    return {
        "first_name": "mary",
        "last_name": "MAJOR",
        "email": "Mary.Major@Example.com",
        "phone": "(212) 555-0142",
        "street_address": "1 Main Street",
        "zip_code": "10001",
        "date_of_birth": "1980-04-02",
        "currently_insured": True,
        "vehicle_year": 2019,
        "vehicle_make": "Toyota",
        "vehicle_model": "Camry",
        **overrides,
    }


def value_of(field_type: str, value: Any, *, name: str = "x", **options: Any) -> Any:
    return normalise_value(FieldSpec(name=name, field_type=field_type, **options), value)


def error_of(field_type: str, value: Any, *, name: str = "x", **options: Any) -> str:
    with pytest.raises(FieldError) as caught:
        normalise_value(FieldSpec(name=name, field_type=field_type, **options), value)
    return str(caught.value)


# --- Text and names --------------------------------------------------------------------------


def test_text_is_trimmed_and_inner_runs_of_space_collapsed():
    assert value_of(FieldType.STRING, "  1  Main\t Street \n") == "1 Main Street"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("mary", "Mary"),
        ("MARY-ANN", "Mary-Ann"),
        ("o'neil", "O'Neil"),
        ("  de la  cruz ", "De La Cruz"),
        ("McDonald", "McDonald"),  # typed in mixed case: the partner knew better
        ("van Dyke", "van Dyke"),
    ],
)
def test_names_typed_all_in_one_case_are_title_cased(sent, stored):
    assert value_of(FieldType.STRING, sent, name="first_name") == stored


def test_text_that_is_not_a_name_keeps_its_case():
    assert value_of(FieldType.STRING, "TOYOTA", name="vehicle_make") == "TOYOTA"


def test_text_longer_than_the_field_allows_is_an_error():
    assert error_of(FieldType.STRING, "abcdef", max_length=5) == "At most 5 characters."
    assert value_of(FieldType.STRING, "  abcde  ", max_length=5) == "abcde"


@pytest.mark.parametrize(
    ("value", "named"),
    [(12, "a number"), (True, "a boolean"), ([], "a list"), ({}, "an object")],
)
def test_text_fields_name_the_type_they_were_given_instead(value, named):
    assert error_of(FieldType.STRING, value) == f"Expected text, got {named}."


# --- Email -----------------------------------------------------------------------------------


def test_emails_are_lower_cased():
    assert value_of(FieldType.EMAIL, " Mary.Major@Example.COM ".strip()) == "mary.major@example.com"


@pytest.mark.parametrize("email", ["mary", "mary@", "@example.com", "mary@@example.com", "a b@c.d"])
def test_malformed_emails_are_errors(email):
    assert error_of(FieldType.EMAIL, email).startswith("Not a valid email address: ")


def test_an_email_is_checked_without_dns():
    # A domain that cannot resolve is still a well-formed address; intake never waits on DNS.
    assert value_of(FieldType.EMAIL, "x@no-such-domain.example") == "x@no-such-domain.example"


# --- Phone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "(212) 555-0142",
        "212-555-0142",
        "212.555.0142",
        "2125550142",
        "+1 212 555 0142",
        "1 (212) 555-0142",
        "+1-212-555-0142",
        2125550142,
    ],
)
def test_us_phones_in_any_common_format_become_e164(phone):
    assert value_of(FieldType.PHONE, phone) == "+12125550142"


def test_puerto_rican_numbers_share_the_us_plan():
    assert value_of(FieldType.PHONE, "(787) 555-1234") == "+17875551234"


@pytest.mark.parametrize(
    ("phone", "message"),
    [
        ("+44 20 7946 0958", "Not a valid US phone number; give one such as (212) 555-0142."),
        ("(555) 555-1234", "Not a valid US phone number; give one such as (212) 555-0142."),
        ("555-1234", "Not a valid US phone number; give one such as (212) 555-0142."),
        ("call me", "Not a phone number; give a US number such as (212) 555-0142."),
    ],
)
def test_foreign_invalid_and_non_numbers_are_phone_errors(phone, message):
    assert error_of(FieldType.PHONE, phone) == message


def test_a_boolean_is_not_a_phone_number():
    assert error_of(FieldType.PHONE, True) == "Expected text, got a boolean."


# --- ZIP and state ---------------------------------------------------------------------------


@pytest.mark.parametrize("zip_code", ["10001", "10001-1234", "100011234", " 10001 "])
def test_zip_codes_keep_their_five_digits(zip_code):
    assert value_of(FieldType.ZIP, zip_code.strip()) == "10001"


def test_a_zip_code_sent_as_a_number_is_refused_for_its_lost_leading_zeros():
    assert error_of(FieldType.ZIP, 2134) == (
        'Send ZIP codes as text ("02134") so that leading zeros survive.'
    )


def test_zip_codes_of_the_wrong_shape_or_not_in_the_us_are_errors():
    assert error_of(FieldType.ZIP, "1000") == "Give a 5-digit ZIP code (or ZIP+4), e.g. 30301."
    assert error_of(FieldType.ZIP, "00000") == "00000 is not a US ZIP code."


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("tx", "TX"),
        ("NY", "NY"),
        (" il ", "IL"),
        ("new  york", "NY"),
        ("Puerto Rico", "PR"),
        (" district of COLUMBIA ", "DC"),
    ],
)
def test_states_by_code_or_name_become_their_code(state, code):
    assert value_of(FieldType.STATE, state) == code


@pytest.mark.parametrize("state", ["ZZ", "Texass", "T"])
def test_unknown_states_are_errors(state):
    assert error_of(FieldType.STATE, state) == (
        "Give a US state's two-letter code or name, e.g. TX or Texas."
    )


# --- Numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("sent", "stored"), [(5, 5), ("5", 5), ("1,000", 1000), (5.0, 5)])
def test_integers_from_numbers_or_numeric_text(sent, stored):
    value = value_of(FieldType.INTEGER, sent)
    assert value == stored
    assert type(value) is int


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (5.5, "Expected a whole number."),
        ("five", "Expected a number, got 'five'."),
        (True, "Expected a number, got a boolean."),
        ([1], "Expected a number, got a list."),
        ("NaN", "Expected a finite number."),
        ("Infinity", "Expected a finite number."),
    ],
)
def test_integers_refuse_what_is_not_a_whole_finite_number(sent, message):
    assert error_of(FieldType.INTEGER, sent) == message


def test_numbers_outside_the_fields_range_are_errors():
    year = {"min_value": Decimal(1981), "max_value": Decimal(2027)}
    assert error_of(FieldType.INTEGER, 1980, **year) == "At least 1981."
    assert error_of(FieldType.INTEGER, "2028", **year) == "At most 2027."
    assert value_of(FieldType.INTEGER, 2027, **year) == 2027
    bill = {"min_value": Decimal("0.50"), "max_value": Decimal(2000)}
    assert error_of(FieldType.DECIMAL, "0.25", **bill) == "At least 0.5."


@pytest.mark.parametrize(("sent", "stored"), [("25,000", 25000), ("12.5", 12.5), (99.99, 99.99)])
def test_decimals_are_json_numbers_whole_ones_integers(sent, stored):
    value = value_of(FieldType.DECIMAL, sent)
    assert value == stored
    assert type(value) is type(stored)


@pytest.mark.parametrize("field_type", [FieldType.INTEGER, FieldType.DECIMAL])
@pytest.mark.parametrize("huge", ["1e99999999", "-1e99999999", 1e300, "1" + "0" * 40])
def test_an_absurdly_large_number_is_refused_at_once(field_type, huge):
    # Converting 1e99999999 to an int would take minutes: one request would hold a worker.
    started = time.monotonic()
    assert error_of(field_type, huge) == "Too large a number."
    assert time.monotonic() - started < 5  # the conversion itself would take minutes


# --- Booleans, dates, choices ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        ("Y", True),
        (" TRUE ", True),
        ("1", True),
        (1, True),
        ("no", False),
        ("0", False),
        (0, False),
    ],
)
def test_booleans_understand_yes_no_and_one_zero(sent, stored):
    assert value_of(FieldType.BOOLEAN, sent) is stored


@pytest.mark.parametrize("sent", ["maybe", 2, 1.0, [], {}])
def test_other_booleans_are_errors(sent):
    assert error_of(FieldType.BOOLEAN, sent) == (
        "Give true or false (yes/no and 1/0 are understood)."
    )


@pytest.mark.parametrize(
    ("sent", "stored"), [("1980-04-02", "1980-04-02"), ("4/2/1980", "1980-04-02")]
)
def test_dates_in_iso_or_us_order_become_iso(sent, stored):
    assert value_of(FieldType.DATE, sent) == stored


@pytest.mark.parametrize("sent", ["02/30/1980", "1980-13-01", "yesterday", "2/4/80"])
def test_impossible_or_unreadable_dates_are_errors(sent):
    assert error_of(FieldType.DATE, sent) == "Give a date as YYYY-MM-DD (or MM/DD/YYYY)."


def test_choices_are_matched_without_regard_to_case_and_stored_as_listed():
    gender = {"choices": ("male", "female", "non_binary")}
    assert value_of(FieldType.CHOICE, "Female", **gender) == "female"
    assert error_of(FieldType.CHOICE, "other", **gender) == (
        "Choose one of male, female, non_binary."
    )


# --- A whole lead ----------------------------------------------------------------------------


def test_a_valid_lead_is_normalised_and_enriched_from_its_zip_code():
    lead, errors = normalise_fields(AUTO, valid_auto())

    assert errors == {}
    assert lead is not None
    assert lead.data == {
        "first_name": "Mary",
        "last_name": "Major",
        "email": "mary.major@example.com",
        "phone": "+12125550142",
        "street_address": "1 Main Street",
        "zip_code": "10001",
        "state": "NY",
        "date_of_birth": "1980-04-02",
        "currently_insured": True,
        "vehicle_year": 2019,
        "vehicle_make": "Toyota",
        "vehicle_model": "Camry",
        "city": "New York",
        "county": "New York County",
        "time_zone": "America/New_York",
    }
    assert (lead.email, lead.phone, lead.zip_code, lead.state) == (
        "mary.major@example.com",
        "+12125550142",
        "10001",
        "NY",
    )


def test_enrichment_never_overwrites_what_the_partner_sent():
    lead, errors = normalise_fields(
        (*AUTO, FieldSpec(name="city", field_type=FieldType.STRING)),
        valid_auto(city="manhattan", state="new york"),
    )

    assert errors == {}
    assert lead.data["city"] == "Manhattan"
    assert lead.data["state"] == "NY"


def test_a_state_that_contradicts_the_zip_code_is_an_error():
    lead, errors = normalise_fields(AUTO, valid_auto(state="CA"))

    assert lead is None
    assert errors == {"fields.state": ["CA contradicts ZIP code 10001, which is in NY."]}


def test_every_problem_of_a_lead_is_reported_at_once():
    fields = valid_auto(email="nope", vehicle_year=1900, colour="red")
    del fields["zip_code"]

    lead, errors = normalise_fields(AUTO, fields)

    assert lead is None
    assert errors == {
        "fields.colour": [
            "Unknown field; this vertical's fields are " + ", ".join(sorted(AUTO_NAMES)) + "."
        ],
        "fields.email": ["Not a valid email address: An email address must have an @-sign."],
        "fields.zip_code": ["This field is required."],
        "fields.vehicle_year": ["At least 1981."],
    }


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_a_required_field_sent_empty_is_missing(empty):
    _, errors = normalise_fields(AUTO, valid_auto(vehicle_make=empty))
    assert errors == {"fields.vehicle_make": ["This field is required."]}


def test_an_optional_field_sent_empty_is_left_out():
    lead, errors = normalise_fields(AUTO, valid_auto(gender="", homeowner=None))
    assert errors == {}
    assert "gender" not in lead.data
    assert "homeowner" not in lead.data


# --- The envelope ----------------------------------------------------------------------------


def test_a_submission_envelope_is_read_and_trimmed():
    submission, errors = parse_submission(
        {"vertical": " solar ", "fields": {"a": 1}, "sub_id": " s-1 ", "test": True}
    )

    assert errors == {}
    assert submission.vertical == "solar"
    assert submission.fields == {"a": 1}
    assert submission.sub_id == "s-1"
    assert submission.test is True
    assert submission.consent == {}


@pytest.mark.parametrize(
    ("document", "errors"),
    [
        ([], {"_": ["Send a JSON object, not a list."]}),
        ("lead", {"_": ["Send a JSON object, not text."]}),
        (None, {"_": ["Send a JSON object, not null."]}),
        (
            {},
            {
                "vertical": ["This field is required: the slug of the lead's vertical."],
                "fields": ["This field is required: an object of the lead's fields."],
            },
        ),
        (
            {"vertical": 3, "fields": [], "sub_id": 7, "test": "yes", "extra": 1},
            {
                "extra": [
                    "Unknown member; the body has vertical, fields, sub_id, consent, test, ping_id."
                ],
                "vertical": ["Give the vertical's slug as text, not a number."],
                "fields": ["Give an object of field names to values, not a list."],
                "sub_id": ["Give the sub-id as text, not a number."],
                "test": ["Give true or false, not text."],
            },
        ),
        (
            {"vertical": "  ", "fields": {}, "sub_id": "x" * 256},
            {
                "vertical": ["This field is required: the slug of the lead's vertical."],
                "sub_id": ["At most 255 characters."],
            },
        ),
    ],
)
def test_envelope_errors_name_each_member_at_fault(document, errors):
    submission, found = parse_submission(document)
    assert submission is None
    assert found == errors


@pytest.mark.parametrize(
    "document",
    [
        {"vertical": "auto\u0000", "fields": {}},
        {"vertical": "auto", "fields": {"first_name": "Ma\u0000ry"}},
        {"vertical": "auto", "fields": {"\u0000": 1}},
        {"vertical": "auto", "fields": {"x": ["\ud800"]}},
        {"vertical": "auto", "fields": {}, "consent": {"text": "I agree\u0000"}},
    ],
)
def test_nul_characters_and_lone_surrogates_anywhere_are_refused(document):
    # Neither can be stored: PostgreSQL's text and jsonb refuse NUL, UTF-8 refuses surrogates.
    submission, errors = parse_submission(document)
    assert submission is None
    assert errors == {
        "_": ["Text may not contain NUL characters (\\u0000) or unpaired surrogates."]
    }


# --- Consent ---------------------------------------------------------------------------------


def test_consent_is_normalised():
    consent, errors = normalise_consent(
        {
            "text": "  I agree  ",
            "timestamp": "2026-05-01T09:03:00-05:00",
            "ip": "2001:DB8:0:0::0001",
            "trustedform_cert_url": "https://cert.trustedform.com/0123abcd",
            "sellers": [" Acme Insurance ", ""],
            "page_url": "http://example.com/quote",
            "jornaya_leadid": "",
            "user_agent": None,
        }
    )

    assert errors == {}
    assert consent == {
        "text": "I agree",
        "timestamp": "2026-05-01T14:03:00Z",
        "ip": "2001:db8::1",
        "trustedform_cert_url": "https://cert.trustedform.com/0123abcd",
        "sellers": ["Acme Insurance"],
        "page_url": "http://example.com/quote",
    }


@pytest.mark.parametrize(
    ("consent", "errors"),
    [
        ("yes", {"consent": ["Give an object, not text."]}),
        (
            {"signed": True},
            {
                "consent.signed": [
                    "Unknown member; consent has text, timestamp, ip, trustedform_cert_url, "
                    "jornaya_leadid, sellers, page_url, user_agent."
                ]
            },
        ),
        (
            {"timestamp": "2026-05-01T14:03:00"},
            {"consent.timestamp": ["Give the time zone, e.g. 2026-05-01T14:03:00Z or …-05:00."]},
        ),
        (
            {"timestamp": "yesterday"},
            {"consent.timestamp": ["Give an ISO 8601 time, e.g. 2026-05-01T14:03:00Z."]},
        ),
        (
            {"timestamp": "0001-01-01T00:00:00+01:00"},
            {"consent.timestamp": ["Give an ISO 8601 time, e.g. 2026-05-01T14:03:00Z."]},
        ),
        ({"ip": "300.1.1.1"}, {"consent.ip": ["Give the consumer's IPv4 or IPv6 address."]}),
        (
            {"trustedform_cert_url": "https://trustedform.com.evil.example/cert"},
            {
                "consent.trustedform_cert_url": [
                    "A TrustedForm certificate URL is on trustedform.com."
                ]
            },
        ),
        ({"page_url": "javascript:alert(1)"}, {"consent.page_url": ["Give an http(s) URL."]}),
        (
            {"sellers": "Acme"},
            {"consent.sellers": ["Give a list of the company names the consumer agreed to."]},
        ),
        ({"text": 5}, {"consent.text": ["Give text, not a number."]}),
        ({"text": "x" * 10_001}, {"consent.text": ["At most 10000 characters."]}),
        ({"jornaya_leadid": "x" * 1001}, {"consent.jornaya_leadid": ["At most 1000 characters."]}),
    ],
)
def test_consent_errors_name_the_member_at_fault(consent, errors):
    assert normalise_consent(consent) == ({}, errors)


@pytest.mark.parametrize("key", ["trustedform_cert_url", "page_url"])
@pytest.mark.parametrize("port", ["", ":", ":0", ":443", ":00080", ":65535", ":65536", ":8331071"])
def test_the_schema_allows_a_consent_url_port_exactly_when_intake_does(key, port):
    """A port over 65535 is no URL to intake; the schema's pattern must say so, or a lead the
    schema allows is refused for its envelope (schemathesis found one)."""
    url = f"https://cert.trustedform.com{port}/abc"
    pattern = CONSENT_SCHEMA["properties"][key]["anyOf"][0]["pattern"]
    accepted, errors = normalise_consent({key: url})
    assert bool(re.search(pattern, url)) == (key in accepted), errors


# --- Prefer: wait ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("wait=5", 5),
        ("WAIT = 3", 3),
        ('wait="4"', 4),
        ("respond-async, wait=2", 2),
        ("wait=7; foo=bar", 7),
        ("wait=60", 10),
        ("wait=0", 0),
        ("", None),
        ("return=minimal", None),
        ("wait=soon", None),
        ("wait=-1", None),
        ("wait=2.5", None),
        ("wait=²", None),
        ("wait=٣", None),
        ("wait=" + "9" * 5000, None),
    ],
)
def test_prefer_wait_is_read_capped_and_otherwise_ignored(header, wait):
    assert parse_prefer_wait(header, limit=10) == wait


# --- Properties ------------------------------------------------------------------------------

# Real area codes (and Puerto Rico's 787); exchanges and lines are drawn freely and kept when
# libphonenumber calls the number valid.
AREA_CODES = ("212", "312", "415", "617", "713", "305", "206", "404", "303", "702", "787")
PHONE_FORMATS = (
    "{a}{e}{n}",
    "({a}) {e}-{n}",
    "({a}){e}-{n}",
    "{a}-{e}-{n}",
    "{a}.{e}.{n}",
    "{a} {e} {n}",
    "1{a}{e}{n}",
    "1-{a}-{e}-{n}",
    "1 ({a}) {e}-{n}",
    "+1{a}{e}{n}",
    "+1 {a} {e} {n}",
    "+1 ({a}) {e}-{n}",
    "+1-{a}-{e}-{n}",
    "+1.{a}.{e}.{n}",
    "  ({a})  {e} - {n}  ",
)


@given(
    area=st.sampled_from(AREA_CODES),
    exchange=st.from_regex(r"\A[2-9][0-9]{2}\Z"),
    line=st.from_regex(r"\A[0-9]{4}\Z"),
)
def test_any_valid_nanp_number_in_any_common_format_has_one_e164_form(area, exchange, line):
    digits = f"{area}{exchange}{line}"
    try:
        expected = value_of(FieldType.PHONE, digits)
    except FieldError:
        return  # a number libphonenumber knows to be unassigned: nothing to compare
    assert expected == f"+1{digits}"
    spellings = [fmt.format(a=area, e=exchange, n=line) for fmt in PHONE_FORMATS]
    spellings.append(int(digits))
    assert {
        value_of(FieldType.PHONE, s.strip() if isinstance(s, str) else s) for s in spellings
    } == {expected}
    # What intake stores reads back as itself.
    assert value_of(FieldType.PHONE, expected) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["10001", "NY", "CA", "yes", "1980-04-02", "1e99999999", "(212) 555-0142"]),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(sorted(AUTO_NAMES | {s.name for s in OPEN})) | st.text(max_size=12)


def assert_errors_are_messages(errors: dict[str, list[str]]) -> None:
    assert errors
    for path, messages in errors.items():
        assert isinstance(path, str)
        assert messages
        assert all(isinstance(m, str) and m for m in messages)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(field_names, json_values, max_size=8))
@example(fields={"any_integer": "1e99999999", "any_decimal": "-1e99999999"})
@example(fields={"phone": True, "zip_code": 10001, "state": [], "email": {}})
def test_normalise_fields_never_raises_it_returns_a_lead_or_errors(fields):
    for specs in (AUTO, OPEN):
        lead, errors = normalise_fields(specs, fields)
        if lead is None:
            assert_errors_are_messages(errors)
        else:
            assert errors == {}
            json.dumps(lead.data)  # storable as JSON


@given(
    fields=st.dictionaries(st.text(max_size=12), json_values, min_size=1, max_size=5).filter(
        lambda fields: not set(fields) <= AUTO_NAMES
    )
)
def test_unknown_fields_always_produce_an_error_naming_them(fields):
    lead, errors = normalise_fields(AUTO, {**valid_auto(), **fields})

    assert lead is None
    for name in set(fields) - AUTO_NAMES:
        assert errors[f"fields.{name}"][0].startswith("Unknown field; this vertical's fields are ")


@given(
    document=json_values
    | st.dictionaries(
        st.sampled_from(["vertical", "fields", "sub_id", "consent", "test", "x"]), json_values
    )
)
def test_parse_submission_never_raises_for_any_json_document(document):
    submission, errors = parse_submission(document)
    if submission is None:
        assert_errors_are_messages(errors)
    else:
        assert errors == {}


@given(
    consent=st.dictionaries(
        st.sampled_from(["text", "timestamp", "ip", "trustedform_cert_url", "sellers", "page_url"]),
        json_values
        | st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())
        | st.ip_addresses().map(str),
    )
)
def test_normalise_consent_never_raises(consent):
    clean, errors = normalise_consent(consent)
    if errors:
        assert_errors_are_messages(errors)
    json.dumps(clean)


@given(header=st.text() | st.text().map(lambda value: f"wait={value}"))
@example(header="wait=\u00b2")
def test_parse_prefer_wait_never_raises_and_stays_within_its_limit(header):
    wait = parse_prefer_wait(header, limit=10)
    assert wait is None or 0 <= wait <= 10


@given(name=st.text(alphabet=st.characters(categories=["Lu", "Ll", "Zs"]) | st.sampled_from("-'")))
def test_normalising_a_name_twice_changes_nothing_more(name):
    spec = FieldSpec(name="first_name", field_type=FieldType.STRING)
    try:
        once = normalise_value(spec, name)
    except FieldError:
        return
    assert normalise_value(spec, once) == once
