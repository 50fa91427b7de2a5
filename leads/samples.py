"""Made-up values for a vertical's fields, that intake accepts as they are (pure).

Routing's sample lead (previews, save-time checks of buyers' templates) and a source's posting
instructions (their example requests) take their values from here: one plausible value per field,
within the field's choices, range and length. ZIP and state agree (10001 is in NY).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from leads.models import FieldType

SAMPLE_CONSENT = {
    "text": "By clicking Submit I agree to be contacted by Sample Insurance at the number I gave.",
    "timestamp": "2026-01-15T14:03:00+00:00",
    "ip": "203.0.113.7",
    "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567",
    "jornaya_leadid": "01234567-89AB-CDEF-0123-456789ABCDEF",
    "page_url": "https://quotes.example/auto",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Sample/1.0",
    "sellers": ["Sample Insurance"],
}

# Plausible values for the usual field names; anything else gets a value of its field's type.
SAMPLE_BY_NAME: dict[str, Any] = {
    "first_name": "Jane",
    "last_name": "Sample",
    "full_name": "Jane Sample",
    "name": "Jane Sample",
    "street_address": "1 Test Street",
    "address": "1 Test Street",
    "city": "New York",
    "county": "New York",
    "date_of_birth": "1980-04-02",
    "vehicle_year": 2019,
    "vehicle_make": "Toyota",
    "vehicle_model": "Camry",
}
SAMPLE_BY_TYPE: dict[str, Any] = {
    FieldType.STRING: "sample",
    FieldType.EMAIL: "jane.sample@example.com",
    FieldType.PHONE: "+12025550143",
    FieldType.ZIP: "10001",
    FieldType.STATE: "NY",
    FieldType.INTEGER: 1,
    FieldType.DECIMAL: "100.00",
    FieldType.BOOLEAN: True,
    FieldType.DATE: "1980-04-02",
}


def sample_value(spec: Any) -> Any:
    """Return a value of the field (a VerticalField or FieldSpec) as intake stores it: a JSON
    number for a number, whole values as integers."""
    if spec.field_type == FieldType.CHOICE:
        return spec.choices[0] if spec.choices else ""
    if spec.field_type in (FieldType.INTEGER, FieldType.DECIMAL):
        integer = spec.field_type == FieldType.INTEGER
        number = Decimal(str(SAMPLE_BY_NAME.get(spec.name, SAMPLE_BY_TYPE[spec.field_type])))
        low, high = spec.min_value, spec.max_value
        if low is not None and number < low:
            number = Decimal(math.ceil(low)) if integer else low
        if high is not None and number > high:
            number = Decimal(math.floor(high)) if integer else high
        if integer or number == number.to_integral_value():
            return int(number)
        return float(number)
    if spec.field_type == FieldType.STRING and spec.name in SAMPLE_BY_NAME:
        value = str(SAMPLE_BY_NAME[spec.name])
    else:
        value = SAMPLE_BY_TYPE.get(spec.field_type, "sample")
    if spec.field_type == FieldType.DATE and spec.name not in SAMPLE_BY_NAME:
        value = "1980-04-02"
    if spec.field_type == FieldType.STRING and spec.max_length:
        value = value[: spec.max_length]
    return value
