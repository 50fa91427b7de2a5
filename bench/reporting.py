"""Time every dashboard page, CSV export and report on a large generated data set.

    .venv/bin/python bench/reporting.py [--leads 1000000] [--seed 1] [--runs 5] [--regenerate]

Works in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/leadswitch_bench_reporting;
its name must contain "bench", as its leads are truncated). Creates the database if missing,
migrates it, generates the data set with `manage.py generate_report_data` unless it already
holds that many leads, then requests each page through Django's test client as a Sales user
(the whole stack: URL router, auth, selectors, templates) and prints each page's median.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_database_require, database_create

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadswitch_bench_reporting"
TARGET_MS = 500
PRESETS = ("today", "last_7_days", "last_30_days")


def configure_environment() -> str:
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    bench_database_require(database_url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "SECURE_SSL_REDIRECT": "0",
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "ENV_FILE": "",
            # As in production, Celery beat keeps the rollups current; the pages only read.
            # Nothing is published: the broker URL only turns off refresh-on-read.
            "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/12"),
        }
    )
    os.environ.setdefault("SECRET_KEY", "bench-reporting-" + secrets.token_urlsafe(40))
    return database_url


def pages(source_id: int, buyer_id: int) -> list[tuple[str, str, dict]]:
    """(label, path, query) of every page timed."""
    timed: list[tuple[str, str, dict]] = []
    for preset in PRESETS:
        query = {"preset": preset}
        timed += [
            (f"dashboard overview {preset}", "/dashboard/", query),
            (f"dashboard buyers {preset}", "/dashboard/buyers/", query),
            (f"dashboard sources {preset}", "/dashboard/sources/", query),
        ]
        for report in ("summary", "timeseries", "buyers", "sources", "tiers"):
            timed.append((f"api {report} {preset}", f"/api/v1/reports/{report}/", query))
    week = {"preset": "last_7_days"}
    timed += [
        ("overview 7d, one source", "/dashboard/", {**week, "source": source_id}),
        ("overview 7d, one buyer", "/dashboard/", {**week, "buyer": buyer_id}),
        ("buyers 7d, one vertical", "/dashboard/buyers/", {**week, "vertical": "bench-auto"}),
    ]
    for table in ("summary", "timeseries", "buyers", "sources", "tiers"):
        timed.append((f"csv {table} 7d", f"/dashboard/export/{table}.csv", week))
    timed.append(("csv leads today", "/dashboard/export/leads.csv", {"preset": "today"}))
    return timed


def measure(client, path: str, query: dict, runs: int) -> tuple[float, int]:
    timings = []
    status = 0
    for attempt in range(runs + 1):
        started = time.perf_counter()
        response = client.get(path, query)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
        elapsed = (time.perf_counter() - started) * 1000
        status = response.status_code
        if attempt:  # the first run warms the connection and the template cache
            timings.append(elapsed)
    return statistics.median(timings), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args()

    database_url = configure_environment()
    name = database_create(database_url)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from buyers.models import Buyer
    from leads.models import Lead, Source

    print(f"Database {name}")
    call_command("migrate", verbosity=0)
    have = Lead.objects.count()
    if args.regenerate or have != args.leads:
        started = time.perf_counter()
        call_command("generate_report_data", leads=args.leads, seed=args.seed, days=args.days)
        print(f"Generation and rollups: {time.perf_counter() - started:.1f} s")
    else:
        print(f"Reusing {have:,} leads (--regenerate to build them again)")

    user, _ = User.objects.get_or_create(username="bench-sales", defaults={"is_staff": True})
    user.groups.add(Group.objects.get(name="Sales"))
    client = Client()
    client.force_login(user)
    source = Source.objects.filter(name__startswith="Bench source").order_by("pk").first()
    buyer = Buyer.objects.filter(company__startswith="Bench buyer").order_by("pk").first()

    print(f"\n{'page':<36} {'median ms':>10}  status")
    slow = []
    for label, path, query in pages(source.pk, buyer.pk):
        median, status = measure(client, path, query, args.runs)
        flag = "" if median < TARGET_MS else f"  over {TARGET_MS} ms"
        print(f"{label:<36} {median:>10.0f}  {status}{flag}", flush=True)
        if median >= TARGET_MS:
            slow.append(label)
        if status != 200:
            raise SystemExit(f"{path} answered {status}")
    print(f"\n{len(slow)} page(s) over {TARGET_MS} ms" + (f": {', '.join(slow)}" if slow else ""))


if __name__ == "__main__":
    main()
