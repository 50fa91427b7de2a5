"""The CPU time of building one post: a flat field mapping against a request template (issue 18).

    .venv/bin/python bench/delivery.py [--leads 2000] [--rounds 15] [--wait-quiet 30] [--keep]

Works in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/leadswitch_bench_delivery,
created if missing and migrated), in verticals named "bench-delivery-*", deleted at the start and
at the end. It builds one contract for each of bench/auction.py's --delivery choices, as that
bench builds them: `plain` (the lead's fields as they are), `mapping` (flat field mappings with
transforms and a value map) and `template` (a JSON body template sending the same fields in the
same formats, nested, with filters). It loads them as routing does
(`routing.selectors.delivery_setup`: a template is compiled once, on the cached contract), then
times `routing.engine.mapping.request_for` building the post of each of --leads leads (held in
memory, as routing holds a claimed lead), with a bid and the ping's answer, as the post round does.

Each round times every variant over all the leads, in an order that rotates from round to round,
by this thread's CPU time. The yardstick, timed in the same rounds: `json.dumps` of the mapping's
fields (what any JSON post costs at the least). Printed: medians over the rounds, per post, the
ratios to the yardstick, and the template's cost over the mapping's (the median of the rounds'
differences). The goal (issue 18): a template costs no more than a few tenths of a millisecond
over a flat mapping per post. Then, in rounds of their own, what each variant's post costs to
work out before its first use (mappings read, endpoint checked, template compiled): routing does
it once per cached contract, so again after a change in the vertical or when the cache expires
(ELIGIBILITY_RULES_TTL). The machine is shared: each run first waits (up to --wait-quiet
seconds) for it to be quiet and says how busy it was.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadswitch_bench_delivery"
)

import django

from bench.auction import (
    DELIVERIES,
    LeadMaker,
    build_vertical,
    delete_bench_data,
    ensure_database,
    machine_busy,
    wait_for_quiet,
)

SLUG_PREFIX = "bench-delivery"
YARDSTICK = "json.dumps"
BID = Decimal("12.50")
PING_ANSWER = {"reference": "bid_0123456789abcdef", "price": BID}
SETUPS = 50  # a contract's post worked out afresh, per variant and round


def contracts_by_delivery(source, leads: int) -> dict[str, tuple[Any, list[Any]]]:
    """For each delivery choice, a contract as routing holds it and `leads` leads for it."""
    from buyers.models import Contract
    from routing.selectors import delivery_setup

    made = {}
    for delivery in DELIVERIES:
        vertical = build_vertical(
            1,
            ["http://127.0.0.1:9"],
            source,
            relax_breakers=False,
            delivery=delivery,
            slug=f"{SLUG_PREFIX}-{delivery}",
        )
        contract_id = Contract.objects.get(vertical=vertical).pk
        contracts, _ = delivery_setup(vertical, [contract_id])
        # The same lead data for every variant: a maker of its own for each.
        made[delivery] = contracts[contract_id], LeadMaker(source).build(vertical, leads)
    return made


def post_builders(made: dict[str, tuple[Any, list[Any]]]) -> dict[str, Callable[[], object]]:
    """Return, per variant, a function that builds the post of every lead once."""
    from buyers.models import EndpointKind
    from routing.engine.mapping import request_for
    from routing.mapping import map_fields, mapping_from_model

    def posts(contract: Any, leads: list[Any]) -> Callable[[], object]:
        def run() -> object:
            for lead in leads:
                request_for(
                    contract, EndpointKind.POST, lead, frozenset(), bid=BID, ping=PING_ANSWER
                )
            return None

        return run

    contract, leads = made["mapping"]
    specs = [mapping_from_model(m) for m in contract.mappings.all()]
    fields = [
        map_fields(EndpointKind.POST, lead.data, specs, frozenset(), {"ping": PING_ANSWER})
        for lead in leads
    ]

    def dumps() -> object:
        for one in fields:
            json.dumps(one, separators=(",", ":"), ensure_ascii=False).encode()
        return None

    return {YARDSTICK: dumps} | {name: posts(*made[name]) for name in DELIVERIES}


def setup_builders(
    made: dict[str, tuple[Any, list[Any]]], count: int
) -> dict[str, Callable[[], object]]:
    """Return, per variant, a function that works out its contract's post `count` times.

    That is what the engine does at a contract's first post and keeps while it keeps the
    contract (routing/engine/mapping.py): its mappings read, its endpoint checked and its
    template, if any, compiled.
    """
    from buyers.models import EndpointKind
    from routing.mapping import endpoint_from_model, mapping_from_model, prepare_endpoint

    def setup(contract: Any) -> Callable[[], object]:
        endpoint = next(e for e in contract.endpoints.all() if e.kind == EndpointKind.POST)
        rows = list(contract.mappings.all())

        def run() -> object:
            for _ in range(count):
                [mapping_from_model(row) for row in rows]
                prepare_endpoint(endpoint_from_model(endpoint))
            return None

        return run

    return {name: setup(made[name][0]) for name in DELIVERIES}


def show_requests(made: dict[str, tuple[Any, list[Any]]]) -> None:
    """Print the first lead's post as each variant sends it."""
    from buyers.models import EndpointKind
    from routing.engine.mapping import request_for

    for name in DELIVERIES:
        contract, leads = made[name]
        request = request_for(
            contract, EndpointKind.POST, leads[0], frozenset(), bid=BID, ping=PING_ANSWER
        )
        body = json.loads(request.body)
        print(f"   {name:>8}: {json.dumps(body, separators=(',', ':'))}")


def run_rounds(builders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Time each builder once a round, the order rotated every round; return CPU seconds."""
    names = list(builders)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.thread_time()
            builders[name]()
            seconds[name].append(time.thread_time() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000, help="posts per variant a round (2000)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (15)")
    parser.add_argument("--keep", action="store_true", help="keep the bench rows afterwards")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="first wait up to this many seconds for the machine's other work to drop under "
        "25%% CPU (30)",
    )
    args = parser.parse_args()

    label = ensure_database()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from leads.models import Source

    call_command("migrate", verbosity=0)
    settings.DEBUG = False
    print(f"delivery bench: {label}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    try:
        delete_bench_data(SLUG_PREFIX)
        source = Source.objects.create(name=f"{SLUG_PREFIX} source")
        made = contracts_by_delivery(source, args.leads)
        print("one post as each variant sends it (the request's JSON body):")
        show_requests(made)
        builders = post_builders(made)
        run_rounds(builders, 1)  # warm-up: every cache filled, every template compiled
        gc.collect()
        gc.freeze()
        quiet = wait_for_quiet(args.wait_quiet)
        load = os.getloadavg()
        started = time.perf_counter()
        seconds = run_rounds(builders, args.rounds)
        elapsed = time.perf_counter() - started
        setups = run_rounds(setup_builders(made, SETUPS), args.rounds)
        busy = machine_busy(0.5)
        load_after = os.getloadavg()
    finally:
        if not args.keep:
            delete_bench_data(SLUG_PREFIX)

    def per_post(values: list[float]) -> list[float]:
        return [value * 1e6 / args.leads for value in values]

    micro = {name: per_post(values) for name, values in seconds.items()}
    medians = {name: statistics.median(values) for name, values in micro.items()}
    yardstick = medians[YARDSTICK]
    print(
        f"\n{args.rounds} rounds of {args.leads} posts per variant in {elapsed:.1f} s, order "
        f"rotated each round; {quiet}, {busy:.0%} just after; load average "
        f"{load[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("CPU per post, median over the rounds (min–max), and its ratio to the yardstick:")
    for name, values in micro.items():
        what = "the mapping's fields (yardstick)" if name == YARDSTICK else "request_for"
        print(
            f"   {name:>10} {what:<33} {medians[name]:7.1f} µs "
            f"({min(values):.1f}–{max(values):.1f})  × {medians[name] / yardstick:.2f}"
        )
    over = [t - m for t, m in zip(micro["template"], micro["mapping"], strict=True)]
    ratio = [t / m for t, m in zip(micro["template"], micro["mapping"], strict=True)]
    print(
        f"template over mapping: +{statistics.median(over) / 1000:.3f} ms per post "
        f"(rounds {min(over) / 1000:+.3f} to {max(over) / 1000:+.3f} ms), "
        f"template / mapping {statistics.median(ratio):.2f}; "
        f"mapping over plain: +{(medians['mapping'] - medians['plain']) / 1000:.3f} ms"
    )
    setup_ms = {name: statistics.median(values) * 1000 / SETUPS for name, values in setups.items()}
    print(
        "a contract's post worked out (once per cached contract: at its first post, again "
        "after a change or when the cache expires), CPU, median over the rounds: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in setup_ms.items())
    )


if __name__ == "__main__":
    main()
