"""explain(lead) end to end on a database: 1,000 contracts, their cap counters and past sales.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/leadswitch .venv/bin/python bench/explain.py

Works in a database of its own (DATABASE_URL's name + "_bench_explain", dropped and created; a
temporary file without DATABASE_URL), so it never touches real data. Fills it with one vertical,
300 buyers and 1,000 contracts with realistic rules (as bench/eligibility.py), 5,000 past sales and
current cap counters, then prints per-lead time and query count of explain() with the compiled
rules cached (the steady state of a worker) and the time to compile the vertical afresh.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time as clock
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database_create

os.environ.setdefault("DEBUG", "1")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"


def isolate_database() -> str:
    """Point DATABASE_URL at a throwaway database and return a label for it."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        return f"SQLite {path}"
    name = database_create(url, suffix="_bench_explain", replace=True)
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name
    return f"PostgreSQL database {name}"


def populate(rng: random.Random, contracts_count: int) -> list:
    from django.utils import timezone

    from buyers.models import (
        Buyer,
        BuyerCap,
        CapPeriod,
        ClosedDate,
        Contract,
        ContractCap,
        FieldCriterion,
        PriceModel,
        ScheduleWindow,
        TerritoryKind,
        TerritoryRule,
    )
    from buyers.services import cap_reserve
    from leads.geo import _table
    from leads.models import Lead, LeadStatus, Source, Vertical
    from leads.states import US_STATES
    from routing.models import Sale

    zips = [z for z, info in _table().items() if info.active]
    zones = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
    vertical = Vertical.objects.create(slug="auto-insurance", name="Auto Insurance")
    sources = Source.objects.bulk_create(Source(name=f"Partner {n}") for n in range(40))
    buyers = Buyer.objects.bulk_create(
        Buyer(company=f"Buyer {n}", time_zone=rng.choice(zones)) for n in range(300)
    )
    contracts = Contract.objects.bulk_create(
        Contract(
            buyer=rng.choice(buyers),
            vertical=vertical,
            name=f"Contract {n}",
            price_model=PriceModel.FIXED if n % 3 == 0 else PriceModel.PING_POST,
            fixed_price=Decimal(rng.randint(10, 60)) if n % 3 == 0 else None,
            floor_price=Decimal(rng.randint(5, 20)),
            refuse_bought_within_days=30 if rng.random() < 0.3 else None,
        )
        for n in range(contracts_count)
    )
    territory, criteria, windows, caps, closed = [], [], [], [], []
    for contract in contracts:
        roll = rng.random()
        if roll < 0.35:
            states = " ".join(rng.sample(US_STATES, rng.randint(3, 20)))
            territory.append(TerritoryRule(contract=contract, kind="states", values=states))
        elif roll < 0.55:
            values = "\n".join(rng.sample(zips, 10_000))
            territory.append(TerritoryRule(contract=contract, kind="zips", values=values))
        elif roll < 0.65:
            territory.append(
                TerritoryRule(
                    contract=contract,
                    kind=TerritoryKind.RADIUS,
                    values=rng.choice(zips),
                    radius_miles=rng.choice([25, 50, 100]),
                )
            )
        for field, operator, value in rng.sample(
            [
                ("credit_rating", "in", "excellent, good"),
                ("vehicle_year", "gte", "2008"),
                ("homeowner", "eq", "true"),
                ("county", "not_in", "Cook County, Kings County"),
            ],
            rng.randint(0, 3),
        ):
            criteria.append(
                FieldCriterion(contract=contract, field=field, operator=operator, value=value)
            )
        if rng.random() < 0.6:
            windows.extend(
                ScheduleWindow(contract=contract, weekday=day, opens_at=time(7), closes_at=time(22))
                for day in range(rng.choice([5, 6, 7]))
            )
            closed.append(ClosedDate(contract=contract, date=timezone.localdate() + timedelta(30)))
        for period in rng.sample(list(CapPeriod.values), rng.randint(0, 3)):
            caps.append(ContractCap(contract=contract, period=period, max_leads=500))
    TerritoryRule.objects.bulk_create(territory)
    FieldCriterion.objects.bulk_create(criteria)
    ScheduleWindow.objects.bulk_create(windows)
    ClosedDate.objects.bulk_create(closed)
    ContractCap.objects.bulk_create(caps)
    BuyerCap.objects.bulk_create(
        BuyerCap(buyer=buyer, period=CapPeriod.MONTH, max_budget=Decimal("100000"))
        for buyer in buyers[::10]
    )

    def lead(status: str) -> Lead:
        info = _table()[rng.choice(zips)]
        return Lead(
            vertical=vertical,
            source=rng.choice(sources),
            status=status,
            email=f"consumer{rng.randint(1, 20_000)}@example.com",
            phone=f"+1{rng.randint(2_000_000_000, 9_999_999_999)}",
            zip_code=info.zip_code,
            state=info.state,
            data={
                "credit_rating": rng.choice(["excellent", "good", "fair", "poor"]),
                "vehicle_year": rng.randint(1995, 2026),
                "homeowner": rng.random() < 0.6,
            },
        )

    sold = Lead.objects.bulk_create(lead(LeadStatus.SOLD) for _ in range(5_000))
    Sale.objects.bulk_create(
        Sale(
            lead=sold_lead,
            contract=contract,
            buyer_id=contract.buyer_id,
            price=Decimal("20"),
            payout=Decimal("8"),
        )
        for sold_lead, contract in zip(sold, (rng.choice(contracts) for _ in sold), strict=True)
    )
    # Current-period counters exist for the contracts that have sold today.
    for contract in rng.sample(contracts, 300):
        cap_reserve(lead=rng.choice(sold), contract=contract, price=Decimal("20"))
    return Lead.objects.bulk_create(lead(LeadStatus.ACCEPTED) for _ in range(300))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    where = isolate_database()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries

    from routing.selectors import clear_rules_cache, explain, vertical_rules

    call_command("migrate", verbosity=0)
    started = clock.perf_counter()
    leads = populate(random.Random(args.seed), args.contracts)
    if connection.vendor == "postgresql":
        # Fresh tables have no planner statistics; a live database's autovacuum keeps them.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"{where}: populated in {clock.perf_counter() - started:.0f} s")

    settings.DEBUG = True  # count queries
    settings.ELIGIBILITY_RULES_TTL = 3600
    compile_times = []
    for _ in range(3):
        clear_rules_cache()
        started = clock.perf_counter()
        vertical_rules(leads[0].vertical_id)
        compile_times.append((clock.perf_counter() - started) * 1000)
    timings, queries = [], []
    for lead in leads[: args.leads]:
        reset_queries()
        started = clock.perf_counter()
        verdicts = explain(lead)
        timings.append((clock.perf_counter() - started) * 1000)
        queries.append(len(connection.queries))
        if len(verdicts) != args.contracts:
            raise SystemExit(f"explain gave {len(verdicts)} verdicts for {args.contracts}")
    timings.sort()
    print(
        f"explain(), {args.contracts} contracts, rules cached: median "
        f"{statistics.median(timings):.1f} ms, p95 {timings[int(0.95 * (len(timings) - 1))]:.1f} "
        f"ms per lead, {max(queries)} queries per lead"
    )
    print(
        f"compiling the vertical's {args.contracts} contracts afresh: median "
        f"{statistics.median(compile_times):.0f} ms (once per ELIGIBILITY_RULES_TTL per worker)"
    )


if __name__ == "__main__":
    main()
