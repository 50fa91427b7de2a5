"""Demo data: two verticals, three sources, seven buyers on the simulator, and staff users.

The data is plain dictionaries of model field values; `demo_load` is the one service that writes
it. It is idempotent by natural keys (vertical slug, source name, buyer company, contract
(buyer, vertical, name), username, group name): an existing row is left exactly as ops staff left
it, and the parts of a vertical, contract, group or user are only written when it is created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from django.contrib.auth.models import Group, Permission, User
from django.db import models, transaction
from django.utils import timezone

from buyers.models import (
    AuthType,
    BodyFormat,
    Buyer,
    BuyerCap,
    CapPeriod,
    ClosedDate,
    Contract,
    ContractCap,
    ContractStatus,
    CriterionOperator,
    DeliveryEndpoint,
    EndpointKind,
    FieldCriterion,
    FieldMapping,
    MappingApplies,
    PriceModel,
    ScheduleWindow,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
    Transform,
)
from leads.models import (
    DistributionMode,
    FieldType,
    PayoutModel,
    ScoringRule,
    Source,
    SourceApiKey,
    Vertical,
    VerticalField,
)
from leads.scoring import RuleKind
from leads.services import source_api_key_create, source_get_or_create

_M = TypeVar("_M", bound=models.Model)

DEFAULT_PASSWORD = "leadswitch-demo"  # noqa: S105 - a published demo password, printed on purpose
AUTO = "auto-insurance"
SOLAR = "solar"

# --- Verticals ---------------------------------------------------------------------------------


def _field(name: str, label: str, field_type: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "field_type": field_type, **options}


def _contact_fields() -> list[dict[str, Any]]:
    pii = {"required": True, "is_pii": True}
    return [
        _field("first_name", "First name", FieldType.STRING, max_length=50, **pii),
        _field("last_name", "Last name", FieldType.STRING, max_length=50, **pii),
        _field("email", "Email", FieldType.EMAIL, max_length=254, **pii),
        _field("phone", "Phone", FieldType.PHONE, **pii),
        _field("street_address", "Street address", FieldType.STRING, max_length=120, **pii),
        _field("zip_code", "ZIP code", FieldType.ZIP, required=True, in_ping=True),
        _field(
            "state",
            "State",
            FieldType.STATE,
            in_ping=True,
            help_text="Filled in from the ZIP code when the partner leaves it out.",
        ),
    ]


AUTO_FIELDS: list[dict[str, Any]] = [
    *_contact_fields(),
    _field("date_of_birth", "Date of birth", FieldType.DATE, required=True, is_pii=True),
    _field(
        "gender", "Gender", FieldType.CHOICE, choices=["male", "female", "non_binary"], in_ping=True
    ),
    _field(
        "marital_status",
        "Marital status",
        FieldType.CHOICE,
        choices=["single", "married", "divorced", "widowed"],
        in_ping=True,
    ),
    _field("homeowner", "Owns their home", FieldType.BOOLEAN, in_ping=True),
    _field(
        "currently_insured", "Currently insured", FieldType.BOOLEAN, required=True, in_ping=True
    ),
    _field(
        "current_insurer",
        "Current insurer",
        FieldType.CHOICE,
        choices=[
            "state_farm",
            "geico",
            "progressive",
            "allstate",
            "usaa",
            "liberty_mutual",
            "farmers",
            "nationwide",
            "travelers",
            "other",
        ],
        in_ping=True,
    ),
    _field(
        "continuous_coverage_months",
        "Months of continuous coverage",
        FieldType.INTEGER,
        min_value=Decimal(0),
        max_value=Decimal(600),
        in_ping=True,
    ),
    _field(
        "vehicle_year",
        "Vehicle year",
        FieldType.INTEGER,
        required=True,
        min_value=Decimal(1981),
        max_value=Decimal(2027),
        in_ping=True,
    ),
    _field(
        "vehicle_make", "Vehicle make", FieldType.STRING, required=True, max_length=40, in_ping=True
    ),
    _field(
        "vehicle_model",
        "Vehicle model",
        FieldType.STRING,
        required=True,
        max_length=60,
        in_ping=True,
    ),
    _field(
        "annual_mileage",
        "Annual mileage",
        FieldType.INTEGER,
        min_value=Decimal(0),
        max_value=Decimal(100000),
        in_ping=True,
    ),
    _field(
        "credit_rating",
        "Credit rating (self-reported)",
        FieldType.CHOICE,
        choices=["excellent", "good", "fair", "poor"],
        in_ping=True,
    ),
    _field(
        "accidents_last_3_years",
        "At-fault accidents, last 3 years",
        FieldType.INTEGER,
        min_value=Decimal(0),
        max_value=Decimal(10),
        in_ping=True,
    ),
    _field("dui", "DUI in the last 5 years", FieldType.BOOLEAN, in_ping=True),
    _field(
        "coverage_type",
        "Coverage wanted",
        FieldType.CHOICE,
        choices=["state_minimum", "standard", "premium"],
        in_ping=True,
    ),
]

SOLAR_FIELDS: list[dict[str, Any]] = [
    *_contact_fields(),
    _field("homeowner", "Owns the property", FieldType.BOOLEAN, required=True, in_ping=True),
    _field(
        "monthly_electric_bill",
        "Average monthly electric bill ($)",
        FieldType.DECIMAL,
        required=True,
        min_value=Decimal(0),
        max_value=Decimal(2000),
        in_ping=True,
    ),
    _field("utility_provider", "Electric utility", FieldType.STRING, max_length=120, in_ping=True),
    _field(
        "roof_type",
        "Roof type",
        FieldType.CHOICE,
        choices=["asphalt_shingle", "metal", "tile", "flat", "wood_shake", "other"],
        in_ping=True,
    ),
    _field(
        "roof_shade",
        "Roof shade",
        FieldType.CHOICE,
        choices=["no_shade", "partial_shade", "full_shade"],
        in_ping=True,
    ),
    _field(
        "property_type",
        "Property type",
        FieldType.CHOICE,
        choices=["single_family", "townhouse", "condo", "mobile_home", "multi_family"],
        in_ping=True,
    ),
    _field(
        "credit_score_range",
        "Credit score range",
        FieldType.CHOICE,
        choices=["720_plus", "680_719", "620_679", "below_620"],
        in_ping=True,
    ),
    _field(
        "purchase_timeline",
        "Purchase timeline",
        FieldType.CHOICE,
        choices=["immediately", "within_3_months", "within_6_months", "researching"],
        in_ping=True,
    ),
]

# Scoring rules (leads.scoring): points summed, multiplied by boosts, clamped to 0-100. A boost
# names its source by name; the sources are created after the verticals.


def _rule(name: str, kind: str, points: int = 0, **options: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "points": points, **options}


AUTO_SCORING: list[dict[str, Any]] = [
    _rule(
        "Good or excellent credit",
        RuleKind.MATCH,
        20,
        field="credit_rating",
        values="excellent, good",
    ),
    _rule("Currently insured", RuleKind.MATCH, 15, field="currently_insured", values="true"),
    _rule(
        "Insured a year or more",
        RuleKind.RANGE,
        10,
        field="continuous_coverage_months",
        min_value=Decimal(12),
    ),
    _rule("Homeowner", RuleKind.MATCH, 15, field="homeowner", values="true"),
    _rule(
        "No at-fault accidents",
        RuleKind.RANGE,
        10,
        field="accidents_last_3_years",
        min_value=Decimal(0),
        max_value=Decimal(0),
    ),
    _rule("Recent vehicle", RuleKind.RANGE, 10, field="vehicle_year", min_value=Decimal(2018)),
    _rule(
        "Wants more than the minimum",
        RuleKind.MATCH,
        10,
        field="coverage_type",
        values="standard, premium",
    ),
    _rule("DUI in the last 5 years", RuleKind.MATCH, -25, field="dui", values="true"),
    _rule(
        "Affiliate traffic converts less",
        RuleKind.BOOST,
        multiplier=Decimal("0.90"),
        source="ClickRiver Affiliates",
    ),
]

SOLAR_SCORING: list[dict[str, Any]] = [
    _rule("Owns the property", RuleKind.MATCH, 25, field="homeowner", values="true"),
    _rule(
        "Electric bill $150 or more",
        RuleKind.RANGE,
        20,
        field="monthly_electric_bill",
        min_value=Decimal(150),
    ),
    _rule(
        "Electric bill $300 or more",
        RuleKind.RANGE,
        10,
        field="monthly_electric_bill",
        min_value=Decimal(300),
    ),
    _rule("Sunny roof", RuleKind.MATCH, 10, field="roof_shade", values="no_shade, partial_shade"),
    _rule("Fully shaded roof", RuleKind.MATCH, -20, field="roof_shade", values="full_shade"),
    _rule(
        "Credit 680 or better",
        RuleKind.MATCH,
        15,
        field="credit_score_range",
        values="720_plus, 680_719",
    ),
    _rule(
        "Buying within 3 months",
        RuleKind.MATCH,
        15,
        field="purchase_timeline",
        values="immediately, within_3_months",
    ),
    _rule(
        "House or townhouse",
        RuleKind.MATCH,
        5,
        field="property_type",
        values="single_family, townhouse",
    ),
    _rule(
        "Qualified by phone",
        RuleKind.BOOST,
        multiplier=Decimal("1.15"),
        source="Keystone Contact Center",
    ),
]

VERTICALS: list[dict[str, Any]] = [
    {
        "slug": AUTO,
        "name": "Auto Insurance",
        "description": "Consumers shopping for a personal auto insurance quote. Sold exclusively.",
        "distribution_mode": DistributionMode.AUCTION,
        "auction_timeout_ms": 1000,
        "max_buyers": 1,
        "min_margin": Decimal("2.00"),
        "duplicate_lookback_days": 30,
        "duplicate_fields": ["email", "phone"],
        # No Hot lead goes for less, whatever a contract's own floor says.
        "floor_hot": Decimal("25.00"),
        "fields": AUTO_FIELDS,
        "scoring": AUTO_SCORING,
    },
    {
        "slug": SOLAR,
        "name": "Solar",
        "description": "Homeowners asking for a residential solar installation quote. Shared by up "
        "to three installers, tried down the ping tree.",
        "distribution_mode": DistributionMode.PRIORITY,
        "auction_timeout_ms": 1500,
        "max_buyers": 3,
        "min_margin": Decimal("5.00"),
        "duplicate_lookback_days": 30,
        "duplicate_fields": ["email", "phone"],
        "floor_hot": Decimal("50.00"),
        "fields": SOLAR_FIELDS,
        "scoring": SOLAR_SCORING,
    },
]

# --- Sources -----------------------------------------------------------------------------------

SOURCES: list[dict[str, Any]] = [
    {
        "name": "BrightPath Media",
        "verticals": [AUTO, SOLAR],
        "payout_model": PayoutModel.FIXED_CPL,
        "payout_amount": Decimal("11.00"),
        "contact_name": "Priya Raman",
        "contact_email": "priya.raman@brightpathmedia.example",
        "notes": "Web-form network: comparison sites and search landing pages. Fixed CPL.",
    },
    {
        "name": "ClickRiver Affiliates",
        "verticals": [AUTO],
        "payout_model": PayoutModel.REVENUE_SHARE,
        "revenue_share_percent": Decimal("60.00"),
        # Paid a share of the sale, it is shown the price it is a share of.
        "sees_buyer_price": True,
        "contact_name": "Marcus Hale",
        "contact_email": "marcus@clickriver.example",
        "notes": "Affiliate network paid 60% of the sale price; sees the buyer's price.",
    },
    {
        "name": "Keystone Contact Center",
        "verticals": [SOLAR],
        "payout_model": PayoutModel.FIXED_CPL,
        "payout_amount": Decimal("18.00"),
        "contact_name": "Elena Ortiz",
        "contact_email": "eortiz@keystonecc.example",
        "notes": "Outbound call centre; leads are qualified by phone before they are submitted.",
    },
]

# --- Buyers and contracts ----------------------------------------------------------------------
# Endpoints are simulator query strings: `buyer` is a label the simulator ignores, the rest
# decides how it answers (see simulator/server.py).

BUSINESS_HOURS = [(day, time(8), time(18)) for day in range(5)]  # Mon-Fri, buyer's time zone
INSTALLER_HOURS = [*((day, time(7), time(19)) for day in range(5)), (5, time(9), time(14))]

SUMMIT_AUTO_MAPPINGS: list[dict[str, Any]] = [
    {"source_field": "first_name", "target_field": "FirstName", "applies_to": MappingApplies.POST},
    {"source_field": "last_name", "target_field": "LastName", "applies_to": MappingApplies.POST},
    {"source_field": "email", "target_field": "EmailAddress", "applies_to": MappingApplies.POST},
    {
        "source_field": "phone",
        "target_field": "PhoneAreaCode",
        "transform": Transform.PHONE_AREA_CODE,
        "applies_to": MappingApplies.POST,
    },
    {
        "source_field": "phone",
        "target_field": "PhoneNumber",
        "transform": Transform.PHONE_LOCAL,
        "applies_to": MappingApplies.POST,
    },
    {
        "source_field": "street_address",
        "target_field": "Address1",
        "applies_to": MappingApplies.POST,
    },
    {
        "source_field": "date_of_birth",
        "target_field": "DOB",
        "transform": Transform.DATE_US,
        "applies_to": MappingApplies.POST,
    },
    {"source_field": "zip_code", "target_field": "ZipCode"},
    {"source_field": "state", "target_field": "State"},
    {
        "source_field": "marital_status",
        "target_field": "MaritalStatus",
        "value_map": {"single": "S", "married": "M", "divorced": "D", "widowed": "W"},
    },
    {"source_field": "homeowner", "target_field": "Homeowner", "transform": Transform.BOOL_YN},
    {
        "source_field": "currently_insured",
        "target_field": "CurrentlyInsured",
        "transform": Transform.BOOL_YN,
    },
    {"source_field": "current_insurer", "target_field": "CurrentCarrier", "default_value": "none"},
    {"source_field": "vehicle_year", "target_field": "VehYear"},
    {"source_field": "vehicle_make", "target_field": "VehMake", "transform": Transform.UPPER},
    {"source_field": "vehicle_model", "target_field": "VehModel", "transform": Transform.UPPER},
    {"source_field": "credit_rating", "target_field": "CreditRating", "transform": Transform.TITLE},
    {"static_value": "LS-DEMO-4417", "target_field": "VendorID"},
]

SUNHARBOR_SOLAR_MAPPINGS: list[dict[str, Any]] = [
    {
        "source_field": "first_name+last_name",
        "target_field": "full_name",
        "applies_to": MappingApplies.POST,
    },
    {"source_field": "email", "target_field": "email_address", "applies_to": MappingApplies.POST},
    {
        "source_field": "phone",
        "target_field": "phone",
        "transform": Transform.PHONE_10,
        "applies_to": MappingApplies.POST,
    },
    {
        "source_field": "street_address",
        "target_field": "address",
        "applies_to": MappingApplies.POST,
    },
    {"source_field": "zip_code", "target_field": "zip"},
    {"source_field": "state", "target_field": "state"},
    {"source_field": "homeowner", "target_field": "owns_home", "transform": Transform.BOOL_10},
    {"source_field": "monthly_electric_bill", "target_field": "avg_monthly_bill"},
    {"source_field": "utility_provider", "target_field": "utility", "transform": Transform.TITLE},
    {
        "source_field": "roof_shade",
        "target_field": "shade",
        "value_map": {"no_shade": "none", "partial_shade": "some", "full_shade": "heavy"},
    },
    {
        "source_field": "property_type",
        "target_field": "dwelling",
        "value_map": {
            "single_family": "SFH",
            "townhouse": "TH",
            "condo": "CONDO",
            "mobile_home": "MH",
            "multi_family": "MFH",
        },
    },
    {"static_value": "SH-22731", "target_field": "vendor_id"},
    {"static_value": "residential_pv", "target_field": "product"},
]

BUYERS: list[dict[str, Any]] = [
    {
        "company": "Summit Mutual Insurance",
        "time_zone": "America/Chicago",
        "contact_name": "Dana Whitfield",
        "contact_email": "dana.whitfield@summitmutual.example",
        "contact_phone": "+1 312 555 0142",
        "notes": "Regional carrier, Midwest only. Buys during agency hours.",
        "contracts": [
            {
                "vertical": AUTO,
                "name": "Auto - Midwest exclusive",
                "price_model": PriceModel.PING_POST,
                "floor_price": Decimal("15.00"),
                "priority": 1,
                "refuse_bought_within_days": 30,
                "max_lead_age_minutes": 15,
                "ping": {"query": {"bid": "18-32", "delay_ms": 40, "decline": 0.1, "fail": 0.02}},
                "post": {
                    "query": {"accept": 0.9, "delay_ms": 90},
                    "auth_type": AuthType.BASIC,
                    "auth_username": "leadswitch",
                    "auth_secret": "summit-demo-basic-password",
                },
                "caps": [
                    {"period": CapPeriod.DAY, "max_leads": 150},
                    {"period": CapPeriod.WEEK, "max_budget": Decimal("20000.00")},
                ],
                "schedule": BUSINESS_HOURS,
                "territory": [{"kind": TerritoryKind.STATES, "values": "IL IN WI MI OH MN IA MO"}],
                "criteria": [
                    {"field": "vehicle_year", "operator": CriterionOperator.GTE, "value": "2005"}
                ],
                "mappings": SUMMIT_AUTO_MAPPINGS,
            },
        ],
    },
    {
        "company": "Pacific Crest Auto Insurance Agency",
        "time_zone": "America/Los_Angeles",
        "contact_name": "Kenji Watanabe",
        "contact_email": "kwatanabe@pacificcrest.example",
        "contact_phone": "+1 213 555 0178",
        "notes": "West Coast agency group; their quoting API is slow (~180 ms) but bids high.",
        "contracts": [
            {
                "vertical": AUTO,
                "name": "Auto - West Coast preferred credit",
                "price_model": PriceModel.PING_POST,
                "floor_price": Decimal("20.00"),
                "priority": 1,
                "weight": 2,
                "ping": {
                    "query": {"bid": "22-40", "delay_ms": 180, "decline": 0.2, "fail": 0.05},
                    "read_timeout_ms": 900,
                },
                "post": {"query": {"accept": 0.85, "delay_ms": 250}},
                "caps": [
                    {"period": CapPeriod.HOUR, "max_leads": 20},
                    {"period": CapPeriod.DAY, "max_leads": 250},
                ],
                "territory": [{"kind": TerritoryKind.STATES, "values": "CA OR WA NV AZ"}],
                "criteria": [
                    {
                        "field": "credit_rating",
                        "operator": CriterionOperator.IN,
                        "value": "excellent,good",
                    }
                ],
            },
        ],
    },
    {
        "company": "Liberty Bell Insurance Group",
        "time_zone": "America/New_York",
        "contact_name": "Margaret O'Connell",
        "contact_email": "moconnell@libertybellins.example",
        "contact_phone": "+1 215 555 0103",
        "notes": "National direct writer. Fixed price, posts without a ping; takes test leads.",
        "contracts": [
            {
                "vertical": AUTO,
                "name": "Auto - national direct post",
                "price_model": PriceModel.FIXED,
                "fixed_price": Decimal("21.00"),
                "floor_price": Decimal("0.00"),
                "priority": 2,
                "accepts_test_leads": True,
                "post": {
                    "query": {"accept": 0.9, "delay_ms": 60, "price": "21.00"},
                    "body_format": BodyFormat.FORM,
                    "headers": {"X-Partner": "leadswitch"},
                    "auth_type": AuthType.HEADER,
                    "auth_param_name": "X-Api-Key",
                    "auth_secret": "lb-demo-4f9c2e7a1d",
                },
                "caps": [
                    {
                        "period": CapPeriod.DAY,
                        "max_leads": 200,
                        "max_budget": Decimal("4200.00"),
                    }
                ],
                "territory": [
                    {
                        "mode": TerritoryMode.EXCLUDE,
                        "kind": TerritoryKind.STATES,
                        "values": "MI NY",
                    }
                ],
                "criteria": [{"field": "dui", "operator": CriterionOperator.NE, "value": "true"}],
            },
        ],
    },
    {
        "company": "Heartland Home & Auto",
        "caps": [{"period": CapPeriod.DAY, "max_leads": 60}],
        "time_zone": "America/Chicago",
        "contact_name": "Luis Navarro",
        "contact_email": "lnavarro@heartlandhomeauto.example",
        "contact_phone": "+1 214 555 0190",
        "notes": "Texas agency. Also resells solar installs; solar is on hold.",
        "contracts": [
            {
                "vertical": AUTO,
                "name": "Auto - Dallas and Houston ZIPs",
                "price_model": PriceModel.PING_POST,
                "floor_price": Decimal("10.00"),
                "priority": 2,
                "weight": 3,
                "ping": {"query": {"bid": "12.50", "delay_ms": 25, "decline": 0.05}},
                "post": {"query": {"accept": 0.95, "delay_ms": 40}},
                "caps": [{"period": CapPeriod.MONTH, "max_leads": 2000}],
                "territory": [
                    {
                        "kind": TerritoryKind.ZIPS,
                        "values": "75201, 75204, 75205, 75206, 75214, 75219, 75230, "
                        "77002, 77005, 77006, 77019, 77024, 77056, 77098",
                    }
                ],
            },
            {
                "vertical": SOLAR,
                "name": "Solar - Texas resale",
                "price_model": PriceModel.FIXED,
                "fixed_price": Decimal("30.00"),
                "priority": 3,
                "exclusive": False,
                "paused_reason": "Buyer asked to pause: install crews booked through month end.",
                "post": {"query": {"accept": 0.9, "delay_ms": 50, "price": "30.00"}},
                "caps": [{"period": CapPeriod.DAY, "max_leads": 25}],
                "territory": [{"kind": TerritoryKind.STATES, "values": "TX OK"}],
            },
        ],
    },
    {
        "company": "SunHarbor Solar",
        "time_zone": "America/Phoenix",
        "contact_name": "Rachel Kim",
        "contact_email": "rachel.kim@sunharborsolar.example",
        "contact_phone": "+1 602 555 0121",
        "notes": "Southwest installer; first in the solar ping tree.",
        "contracts": [
            {
                "vertical": SOLAR,
                "name": "Solar - Southwest homeowners",
                "price_model": PriceModel.PING_POST,
                "floor_price": Decimal("30.00"),
                "priority": 1,
                "exclusive": False,
                "ping": {"query": {"bid": "35-70", "delay_ms": 60, "decline": 0.15, "fail": 0.02}},
                "post": {"query": {"accept": 0.85, "delay_ms": 120}},
                "caps": [
                    {"period": CapPeriod.DAY, "max_leads": 80},
                    {"period": CapPeriod.WEEK, "max_budget": Decimal("25000.00")},
                ],
                "territory": [{"kind": TerritoryKind.STATES, "values": "AZ NV NM UT TX CA"}],
                "criteria": [
                    {"field": "homeowner", "operator": CriterionOperator.EQ, "value": "true"},
                    {
                        "field": "monthly_electric_bill",
                        "operator": CriterionOperator.GTE,
                        "value": "100",
                    },
                ],
                "mappings": SUNHARBOR_SOLAR_MAPPINGS,
            },
        ],
    },
    {
        "company": "Rocky Mountain Solar Co.",
        "time_zone": "America/Denver",
        "contact_name": "Tyler Brennan",
        "contact_email": "tbrennan@rockymountainsolar.example",
        "contact_phone": "+1 303 555 0166",
        "notes": "Front Range installer; buys within 100 miles of downtown Denver during office "
        "hours.",
        "contracts": [
            {
                "vertical": SOLAR,
                "name": "Solar - Denver metro direct post",
                "price_model": PriceModel.FIXED,
                "fixed_price": Decimal("45.00"),
                "priority": 2,
                "exclusive": False,
                "post": {"query": {"accept": 0.9, "delay_ms": 70, "price": "45.00"}},
                "caps": [{"period": CapPeriod.DAY, "max_leads": 40}],
                "schedule": INSTALLER_HOURS,
                "closed_dates": [
                    (date(2026, 12, 24), "Christmas Eve"),
                    (date(2026, 12, 25), "Christmas Day"),
                    (date(2027, 1, 1), "New Year's Day"),
                ],
                "territory": [
                    {"kind": TerritoryKind.RADIUS, "values": "80202", "radius_miles": 100}
                ],
                "criteria": [
                    {"field": "homeowner", "operator": CriterionOperator.EQ, "value": "true"}
                ],
            },
        ],
    },
    {
        "company": "BrightGrid Energy",
        "time_zone": "America/New_York",
        "contact_name": "Olivia Grant",
        "contact_email": "ogrant@brightgrid.example",
        "contact_phone": "+1 973 555 0155",
        "notes": "East Coast installer; rejects some posts as outside its service area.",
        "contracts": [
            {
                "vertical": SOLAR,
                "name": "Solar - East Coast",
                "price_model": PriceModel.PING_POST,
                "floor_price": Decimal("35.00"),
                "priority": 1,
                "exclusive": False,
                "ping": {"query": {"bid": "40-85", "delay_ms": 90, "decline": 0.1}},
                "post": {
                    "query": {"accept": 0.8, "delay_ms": 150, "reason": "outside service area"}
                },
                "caps": [
                    {"period": CapPeriod.HOUR, "max_leads": 10},
                    {"period": CapPeriod.MONTH, "max_budget": Decimal("60000.00")},
                ],
                "territory": [
                    {
                        "kind": TerritoryKind.STATES,
                        "values": "NJ NY MA CT PA MD VA NC SC GA FL",
                    }
                ],
                "criteria": [
                    {
                        "field": "credit_score_range",
                        "operator": CriterionOperator.NOT_IN,
                        "value": "below_620",
                    }
                ],
            },
        ],
    },
]

# --- Users -------------------------------------------------------------------------------------

OPS = "Ops"
SALES = "Sales"
PERMISSION_APPS = ("leads", "buyers", "notifications", "routing", "teams", "exchange")
# Leads are evidence (raw request, consent) and auctions, attempts and sales are the transaction
# log: ops may work with them but never delete them.
OPS_FORBIDDEN = {
    "leads.delete_lead",
    "routing.delete_auction",
    "routing.delete_attempt",
    "routing.delete_sale",
}


USERS: list[dict[str, Any]] = [
    {
        "username": "admin",
        "email": "admin@leadswitch.example",
        "first_name": "Demo",
        "last_name": "Admin",
        "is_superuser": True,
        "groups": [],
    },
    {
        "username": "ops",
        "email": "ops@leadswitch.example",
        "first_name": "Olga",
        "last_name": "Operations",
        "is_superuser": False,
        "groups": [OPS],
    },
    {
        "username": "sales",
        "email": "sales@leadswitch.example",
        "first_name": "Sam",
        "last_name": "Sales",
        "is_superuser": False,
        "groups": [SALES],
    },
]


# --- The service -------------------------------------------------------------------------------


@dataclass
class VerticalResult:
    vertical: Vertical
    created: bool
    field_count: int


@dataclass
class SourceResult:
    source: Source
    created: bool
    api_key: str | None  # the plaintext key, only when it was minted by this run
    key_prefixes: list[str] = field(default_factory=list)


@dataclass
class BuyerResult:
    buyer: Buyer
    created: bool
    contracts: list[Contract]
    contracts_created: int


@dataclass
class UserResult:
    user: User
    created: bool
    password_set: bool


@dataclass
class DemoResult:
    simulator_url: str
    password: str
    verticals: list[VerticalResult]
    sources: list[SourceResult]
    buyers: list[BuyerResult]
    groups: dict[str, bool]  # name -> created
    users: list[UserResult]

    @property
    def contract_count(self) -> int:
        return sum(len(b.contracts) for b in self.buyers)

    @property
    def created_anything(self) -> bool:
        return any(
            [
                *(v.created for v in self.verticals),
                *(s.created for s in self.sources),
                *(b.created or b.contracts_created for b in self.buyers),
                *self.groups.values(),
                *(u.created for u in self.users),
            ]
        )


def _create(model: type[_M], **values: Any) -> _M:
    obj = model(**values)
    obj.full_clean()
    obj.save()
    return obj


def _vertical_get_or_create(spec: dict[str, Any]) -> VerticalResult:
    spec = dict(spec)
    fields = spec.pop("fields")
    spec.pop("scoring")
    vertical = Vertical.objects.filter(slug=spec["slug"]).first()
    if vertical is not None:
        return VerticalResult(vertical, created=False, field_count=vertical.fields.count())
    vertical = _create(Vertical, **spec)
    for position, field_spec in enumerate(fields, start=1):
        _create(VerticalField, vertical=vertical, position=position * 10, **field_spec)
    # Once more now that the fields exist: duplicate_fields must name them.
    vertical.full_clean()
    return VerticalResult(vertical, created=True, field_count=len(fields))


def _scoring_rules_create(vertical: Vertical, rules: list[dict[str, Any]]) -> None:
    """Give a vertical created by this run its scoring rules (after the sources they name)."""
    for position, rule in enumerate(rules, start=1):
        options = dict(rule)
        source = options.pop("source", None)
        _create(
            ScoringRule,
            vertical=vertical,
            position=position * 10,
            source=Source.objects.get(name=source) if source else None,
            **options,
        )


def _source_get_or_create(spec: dict[str, Any], verticals: dict[str, Vertical]) -> SourceResult:
    spec = dict(spec)
    allowed = [verticals[slug] for slug in spec.pop("verticals")]
    source = Source.objects.filter(name=spec["name"]).first()
    if source is None:
        source, _ = source_get_or_create(verticals=allowed, **spec)
        _, raw_key = source_api_key_create(source=source, name="Demo key")
        return SourceResult(source, created=True, api_key=raw_key)
    prefixes = list(
        SourceApiKey.objects.filter(source=source, revoked_at__isnull=True).values_list(
            "prefix", flat=True
        )
    )
    return SourceResult(source, created=False, api_key=None, key_prefixes=prefixes)


def _endpoint_url(simulator_url: str, kind: str, company: str, query: dict[str, Any]) -> str:
    label = company.split(maxsplit=1)[0].lower().strip(".,&")
    return f"{simulator_url}/{kind}?" + urlencode({**query, "buyer": label}, quote_via=quote)


def _contract_create(
    buyer: Buyer, vertical: Vertical, spec: dict[str, Any], simulator_url: str
) -> Contract:
    spec = dict(spec)
    parts = {
        name: spec.pop(name, [])
        for name in ("caps", "schedule", "closed_dates", "territory", "criteria", "mappings")
    }
    endpoints = {kind: spec.pop(kind, None) for kind in (EndpointKind.PING, EndpointKind.POST)}
    paused_reason = spec.pop("paused_reason", "")
    spec.pop("vertical")
    if paused_reason:
        spec |= {
            "status": ContractStatus.PAUSED,
            "paused_reason": paused_reason,
            "paused_at": timezone.now(),
        }
    contract = _create(Contract, buyer=buyer, vertical=vertical, **spec)
    for kind, endpoint in endpoints.items():
        if endpoint is None:
            continue
        options = dict(endpoint)
        url = _endpoint_url(simulator_url, kind, buyer.company, options.pop("query"))
        _create(DeliveryEndpoint, contract=contract, kind=kind, url=url, **options)
    for cap in parts["caps"]:
        _create(ContractCap, contract=contract, **cap)
    for weekday, opens_at, closes_at in parts["schedule"]:
        _create(
            ScheduleWindow,
            contract=contract,
            weekday=weekday,
            opens_at=opens_at,
            closes_at=closes_at,
        )
    for day, note in parts["closed_dates"]:
        _create(ClosedDate, contract=contract, date=day, note=note)
    for rule in parts["territory"]:
        _create(TerritoryRule, contract=contract, **rule)
    for criterion in parts["criteria"]:
        _create(FieldCriterion, contract=contract, **criterion)
    for position, mapping in enumerate(parts["mappings"], start=1):
        options = {"applies_to": MappingApplies.BOTH, **mapping}
        _create(FieldMapping, contract=contract, position=position * 10, **options)
    return contract


def _buyer_get_or_create(
    spec: dict[str, Any], verticals: dict[str, Vertical], simulator_url: str
) -> BuyerResult:
    spec = dict(spec)
    contract_specs = spec.pop("contracts")
    buyer_caps = spec.pop("caps", [])
    buyer = Buyer.objects.filter(company=spec["company"]).first()
    created = buyer is None
    if buyer is None:
        buyer = _create(Buyer, **spec)
        for cap in buyer_caps:
            _create(BuyerCap, buyer=buyer, **cap)
    contracts, contracts_created = [], 0
    for contract_spec in contract_specs:
        vertical = verticals[contract_spec["vertical"]]
        contract = Contract.objects.filter(
            buyer=buyer, vertical=vertical, name=contract_spec["name"]
        ).first()
        if contract is None:
            contract = _contract_create(buyer, vertical, contract_spec, simulator_url)
            contracts_created += 1
        contracts.append(contract)
    return BuyerResult(buyer, created, contracts, contracts_created)


def _group_permissions(name: str) -> list[Permission]:
    permissions = Permission.objects.filter(
        content_type__app_label__in=PERMISSION_APPS
    ).select_related("content_type")
    if name == SALES:
        # Sales view everything, consumers' personal data masked (config/admin_pii.py).
        return [p for p in permissions if p.codename.startswith("view_")]
    return [
        p
        for p in permissions
        if p.codename.split("_", 1)[0] in {"add", "change", "delete", "view"}
        and f"{p.content_type.app_label}.{p.codename}" not in OPS_FORBIDDEN
    ]


def _group_get_or_create(name: str) -> tuple[Group, bool]:
    group = Group.objects.filter(name=name).first()
    if group is not None:
        return group, False
    group = _create(Group, name=name)
    group.permissions.set(_group_permissions(name))
    return group, True


def _user_get_or_create(
    spec: dict[str, Any], groups: dict[str, Group], password: str, reset_password: bool
) -> UserResult:
    spec = dict(spec)
    group_names = spec.pop("groups")
    user = User.objects.filter(username=spec["username"]).first()
    if user is None:
        user = User(is_staff=True, **spec)
        user.set_password(password)
        user.full_clean()
        user.save()
        user.groups.set([groups[name] for name in group_names])
        return UserResult(user, created=True, password_set=True)
    if reset_password:
        user.set_password(password)
        user.save(update_fields=["password"])
    return UserResult(user, created=False, password_set=reset_password)


def demo_load(*, simulator_url: str, password: str, reset_passwords: bool = False) -> DemoResult:
    """Create the demo verticals, sources, buyers and users that do not exist yet."""
    simulator_url = simulator_url.rstrip("/")
    if not password:
        raise ValueError("the demo users need a password")
    with transaction.atomic():
        vertical_results = [_vertical_get_or_create(spec) for spec in VERTICALS]
        verticals = {r.vertical.slug: r.vertical for r in vertical_results}
        source_results = [_source_get_or_create(spec, verticals) for spec in SOURCES]
        for spec, result in zip(VERTICALS, vertical_results, strict=True):
            if result.created:
                _scoring_rules_create(result.vertical, spec["scoring"])
        buyer_results = [_buyer_get_or_create(spec, verticals, simulator_url) for spec in BUYERS]
        groups, groups_created = {}, {}
        for name in (OPS, SALES):
            groups[name], groups_created[name] = _group_get_or_create(name)
        user_results = [
            _user_get_or_create(spec, groups, password, reset_passwords) for spec in USERS
        ]
    return DemoResult(
        simulator_url=simulator_url,
        password=password,
        verticals=vertical_results,
        sources=source_results,
        buyers=buyer_results,
        groups=groups_created,
        users=user_results,
    )
