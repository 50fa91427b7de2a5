"""Eligibility of one lead against 1,000 contracts with realistic rules (pure evaluation).

    .venv/bin/python bench/eligibility.py [--contracts 1000] [--leads 300] [--seed 7]

Builds compiled contract rules in memory the way routing.selectors compiles them from the
database (states, 10,000-ZIP lists, radius areas, schedules in several time zones, criteria,
source lists, consent, already-bought, caps), then times `evaluate_all` for random leads and prints
the median and p95 per lead. Target on the 2-core machine: median under 20 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time as clock
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")

import django

django.setup()

from buyers.caps import CapLimitSpec, CapUsage, period_bounds
from buyers.models import CapPeriod, SourceFilter
from buyers.schedule import Schedule
from leads.geo import _table, zip_lookup
from leads.states import US_STATES
from routing.eligibility import (
    ContractRules,
    LeadFacts,
    PastSale,
    RadiusArea,
    compile_criterion,
    evaluate_all,
)

ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
CRITERIA = [
    ("credit_rating", "in", "excellent, good"),
    ("vehicle_year", "gte", "2008"),
    ("homeowner", "eq", "true"),
    ("accidents_last_3_years", "lte", "1"),
    ("monthly_electric_bill", "between", "100, 900"),
    ("county", "not_in", "Cook County, Kings County"),
    ("coverage_type", "ne", "minimum"),
    ("phone", "regex", r"^\+1[2-9]"),
    ("current_insurer", "exists", ""),
    ("dui", "missing", ""),
]


def build_contracts(count: int, rng: random.Random) -> tuple[list[ContractRules], dict]:
    zips = [z for z, info in _table().items() if info.active]
    now = datetime.now(UTC)
    contracts, usage = [], {}
    for number in range(1, count + 1):
        kwargs: dict = {}
        roll = rng.random()
        if roll < 0.35:
            kwargs["states_in"] = frozenset(rng.sample(US_STATES, rng.randint(3, 20)))
        elif roll < 0.55:
            kwargs["zips_in"] = frozenset(rng.sample(zips, 10_000))
        elif roll < 0.65:
            centres = [zip_lookup(z) for z in rng.sample(zips, rng.randint(1, 3))]
            kwargs["radius_in"] = tuple(
                RadiusArea(c.zip_code, c.lat, c.lon, rng.choice([25, 50, 100, 250]))
                for c in centres
            )
        if rng.random() < 0.15:
            kwargs["states_out"] = frozenset(rng.sample(US_STATES, 2))
        if rng.random() < 0.10:
            kwargs["zips_out"] = frozenset(rng.sample(zips, 1_000))
        if rng.random() < 0.6:
            opens, closes = rng.choice([(8, 20), (0, 24), (9, 17), (7, 22)])
            closing = time(23, 59) if closes == 24 else time(closes)
            windows = [(day, time(opens), closing) for day in range(rng.choice([5, 6, 7]))]
            kwargs["schedule"] = Schedule.build(rng.choice(ZONES), windows, [])
        kwargs["criteria"] = tuple(
            compile_criterion(*c) for c in rng.sample(CRITERIA, rng.randint(0, 3))
        )
        roll = rng.random()
        if roll < 0.1:
            kwargs["source_filter"] = SourceFilter.ALLOW
            kwargs["source_ids"] = frozenset(rng.sample(range(1, 40), 10))
        elif roll < 0.2:
            kwargs["source_filter"] = SourceFilter.BLOCK
            kwargs["source_ids"] = frozenset(rng.sample(range(1, 40), 3))
        if rng.random() < 0.2:
            kwargs["consent_names"] = (f"buyer {number}",)
        if rng.random() < 0.1:
            kwargs["requires_certificate"] = True
        if rng.random() < 0.3:
            kwargs["bought_within"] = timedelta(days=30)
        if rng.random() < 0.2:
            kwargs["max_age"] = timedelta(minutes=30)
        buyer_id = rng.randint(1, count // 3 + 1)
        contracts.append(
            ContractRules(
                contract_id=number,
                name=f"Contract {number}",
                buyer_id=buyer_id,
                buyer_name=f"Buyer {buyer_id}",
                accepts_test_leads=rng.random() < 0.3,
                price_hint=Decimal(rng.randint(5, 60)),
                **kwargs,
            )
        )
        caps = []
        for period in rng.sample(list(CapPeriod.values), rng.randint(0, 3)):
            tz = ZoneInfo(rng.choice(ZONES))
            start, end = period_bounds(period, now, tz)
            max_leads = rng.choice([None, 50, 500])
            max_budget = rng.choice([None, Decimal("5000")])
            if max_leads is None and max_budget is None:
                max_leads = 100
            limit = CapLimitSpec("contract", number, period, max_leads, max_budget)
            caps.append(
                CapUsage(limit, start, end, rng.randint(0, 60), Decimal(rng.randint(0, 900)))
            )
        usage[number] = caps
    return contracts, usage


def random_lead(rng: random.Random) -> LeadFacts:
    info = zip_lookup(rng.choice(list(_table())))
    while info is None or not info.active:
        info = zip_lookup(rng.choice(list(_table())))
    return LeadFacts(
        source_id=rng.randint(1, 40),
        source_name="Partner",
        received_at=datetime.now(UTC) - timedelta(minutes=rng.randint(0, 90)),
        fields={
            "credit_rating": rng.choice(["excellent", "good", "fair", "poor"]),
            "vehicle_year": rng.randint(1995, 2026),
            "homeowner": rng.random() < 0.6,
            "accidents_last_3_years": rng.randint(0, 3),
            "monthly_electric_bill": rng.randint(30, 600),
            "county": info.county,
            "coverage_type": rng.choice(["minimum", "standard", "premium"]),
            "phone": f"+1{rng.randint(2000000000, 9999999999)}",
            "current_insurer": rng.choice(["", "Geico", "State Farm"]),
        },
        is_test=rng.random() < 0.05,
        state=info.state,
        zip_code=info.zip_code,
        lat=info.lat,
        lon=info.lon,
        consent={"text": f"I agree to be contacted by buyer {rng.randint(1, 1000)}."},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = clock.perf_counter()
    contracts, usage = build_contracts(args.contracts, rng)
    print(f"built {len(contracts)} contracts in {clock.perf_counter() - started:.1f} s")
    leads = [random_lead(rng) for _ in range(args.leads)]
    past = [PastSale(rng.randint(1, args.contracts), rng.randint(1, 300), datetime.now(UTC))]

    timings, eligible = [], []
    for facts in leads:
        now = datetime.now(UTC)
        started = clock.perf_counter()
        verdicts = evaluate_all(contracts, facts, now=now, usage=usage, past_sales=past)
        timings.append((clock.perf_counter() - started) * 1000)
        eligible.append(sum(v.eligible for v in verdicts))
    timings.sort()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    print(
        f"eligibility, {args.contracts} contracts, {args.leads} leads: "
        f"median {statistics.median(timings):.2f} ms, p95 {p95:.2f} ms per lead "
        f"(median {statistics.median(eligible):.0f} eligible)"
    )


if __name__ == "__main__":
    main()
