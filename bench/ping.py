"""Inbound pings under gunicorn: answer time and pings answered per second (issue 19).

    .venv/bin/python bench/ping.py [--quick] [--buyers 20] [--in-flight 16] [--seconds 10]
        [--workers 2] [--threads 8] [--keep]

Works in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/leadswitch_bench_ping, created
if missing and migrated; its name must contain "bench"). Starts `manage.py simulate_buyers` on
127.0.0.1 and builds a vertical with --buyers ping/post contracts whose pings answer after 50 ms
(bench/auction.py's `build_vertical`, breakers relaxed), a bench source and its API key; then
starts gunicorn (threaded workers, DEBUG off) and drives POST /api/v1/pings/ from this process
with --in-flight pings at a time for a fixed time after a warm-up. Each ping is answered in its
web request: eligibility, the buyers pinged under the vertical's deadline, the ping and its
bids stored.

The yardstick, in the same run: a bare fan-out with aiohttp to the same simulator, no Django and
no database: the same buyers pinged in parallel (one ping's worth of HTTP), with as many in
flight. The machine's speed moves between hours and hosts: the ratio of pings answered per second
to bare fan-outs per second, and each one's time over the buyers' 50 ms, are the figures that
travel, with the CPU gunicorn spent per ping and how its workers shared it (each keeps the
keep-alive connections it accepted).

Goals on the 2-core machine (web, simulator, PostgreSQL and this load generator on it): at
N = 20 buyers answering in 50 ms and 16 pings in flight, p50 under 50 + 15 ms and p99 under
50 + 40 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadswitch_bench_ping")

import aiohttp

from bench.auction import (
    BARE_PING,
    DELAY_MS,
    build_vertical,
    delete_bench_data,
    ensure_database,
    start_simulator,
    stop_processes,
    wait_until_up,
)
from bench.common import percentile
from bench.intake import (
    configure_environment,
    cpu_snapshot,
    cpu_used,
    start_gunicorn,
    stop_gunicorn,
)
from bench.intake import wait_until_up as wait_until_web_up
from simulator.server import run_event_loop

SLUG_PREFIX = "bench-ping"
GOAL_P50_MS = DELAY_MS + 15
GOAL_P99_MS = DELAY_MS + 40
PING_FIELDS = {"zip_code": "60601", "state": "IL", "credit_rating": "good", "vehicle_year": 2019}


def prepare(buyers: int, simulator_url: str):
    """Migrate, clear earlier bench rows, build the vertical and a source; return its key."""
    import django

    django.setup()
    from django.core.management import call_command

    from leads.models import Source
    from leads.services import source_api_key_create

    call_command("migrate", verbosity=0)
    clear()
    source = Source.objects.create(name=f"{SLUG_PREFIX} source", rate_limit_per_second=100_000)
    vertical = build_vertical(
        buyers, [simulator_url], source, relax_breakers=True, slug=f"{SLUG_PREFIX}-n{buyers}"
    )
    _, key = source_api_key_create(source=source, name="bench/ping.py")
    return vertical, key


def clear() -> None:
    from exchange.models import InboundPing

    InboundPing.objects.filter(source__name__startswith=SLUG_PREFIX).delete()
    delete_bench_data(SLUG_PREFIX)


async def _load(
    send, *, in_flight: int, seconds: float, warmup: float
) -> tuple[list[float], dict[str, int]]:
    """Run `send()` from `in_flight` loops; return the wall times (ms) of the completions inside
    the measured window, and the count of each outcome (`all`: every completion, warm-up too)."""
    walls: list[float] = []
    outcomes: dict[str, int] = {"all": 0}
    start = time.perf_counter() + warmup
    end = start + seconds

    async def loop() -> None:
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                outcome = await send()
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                outcome = type(error).__name__
            finished = time.perf_counter()
            outcomes["all"] += 1
            if start <= finished <= end:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                walls.append((finished - began) * 1000)

    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return walls, outcomes


async def pings(base_url: str, key: str, vertical: str, **load) -> tuple[list[float], dict]:
    body = json.dumps({"vertical": vertical, "fields": PING_FIELDS}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> str:
            async with session.post(f"{base_url}/api/v1/pings/", data=body, headers=headers) as r:
                answer = await r.read()
                return json.loads(answer)["status"] if r.status == 200 else f"HTTP {r.status}"

        return await _load(send, **load)


async def bare(urls: list[str], **load) -> tuple[list[float], dict]:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> dict:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=BARE_PING, headers=headers, timeout=timeout) as r:
                return json.loads(await r.read())

        async def send() -> str:
            answers = await asyncio.gather(*(one(url) for url in urls))
            return "bid" if any(a.get("status") == "bid" for a in answers) else "no_bid"

        return await _load(send, **load)


async def one_ping(base_url: str, key: str, vertical: str) -> tuple[int, str]:
    """One ping, to check the set-up before the load: its status and answer."""
    body = {"vertical": vertical, "fields": PING_FIELDS}
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/api/v1/pings/", json=body, headers=headers) as response,
    ):
        return response.status, (await response.text())[:300]


def line(
    label: str, walls: list[float], outcomes: dict, seconds: float
) -> tuple[float, float, float]:
    if not walls:
        raise SystemExit(f"{label}: nothing completed in the window ({outcomes})")
    rate = len(walls) / seconds
    p50, p99 = percentile(walls, 0.5), percentile(walls, 0.99)
    shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()) if o != "all")
    print(
        f"  {label:<44} {rate:7.1f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"(over {DELAY_MS} ms: +{p50 - DELAY_MS:.1f} / +{p99 - DELAY_MS:.1f})  [{shown}]"
    )
    return rate, p50, p99


def worker_shares(master: int, before: dict, after: dict) -> str:
    """How the gunicorn workers shared the pings' CPU: each worker keeps the keep-alive
    connections it accepted, so one may serve most of the load while another's threads idle."""
    spent = sorted(
        (
            seconds - before.get(pid, (group, 0.0))[1]
            for pid, (group, seconds) in after.items()
            if group == "gunicorn" and pid != master
        ),
        reverse=True,
    )
    total = sum(spent) or 1.0
    shares = " / ".join(f"{100 * worker / total:.0f}%" for worker in spent)
    return f"gunicorn workers' shares of that CPU: {shares}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s windows, 1 s warm-up")
    parser.add_argument("--buyers", type=int, default=20)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="leave the bench rows for inspection")
    args = parser.parse_args()
    seconds, warmup = (3.0, 1.0) if args.quick else (args.seconds, 2.0)
    configure_environment()
    print(f"bench/ping.py on {ensure_database()}")
    log = tempfile.NamedTemporaryFile(prefix="bench-ping-", suffix=".log", delete=False)  # noqa: SIM115
    simulator, simulator_url = start_simulator(log)
    server = None
    try:
        wait_until_up(simulator, simulator_url)
        vertical, key = prepare(args.buyers, simulator_url)
        from django.db import connection

        connection.close()
        server = start_gunicorn(args.workers, Path(log.name + ".web"), threads=args.threads)
        run_event_loop(wait_until_web_up(server, key))
        print(
            f"N = {args.buyers} buyers answering in {DELAY_MS} ms, {args.in_flight} in flight, "
            f"gunicorn {args.workers} workers x {args.threads} threads, {seconds:.0f} s windows"
        )
        status, answer = run_event_loop(one_ping(server.base_url, key, vertical.slug))
        if status != 200:
            raise SystemExit(f"a ping answered {status}: {answer}\n{server.log_tail()}")
        print(f"  first ping: {answer}")
        load = {"in_flight": args.in_flight, "seconds": seconds, "warmup": warmup}
        database = connection.settings_dict["NAME"]
        before = cpu_snapshot(server.process.pid, database)
        walls, outcomes = run_event_loop(pings(server.base_url, key, vertical.slug, **load))
        after = cpu_snapshot(server.process.pid, database)
        used = cpu_used(before, after)
        rate, p50, p99 = line("inbound pings (POST /api/v1/pings/)", walls, outcomes, seconds)
        print(
            f"  per ping: {used['gunicorn'] * 1000 / outcomes['all']:.1f} ms of gunicorn CPU, "
            f"{used['PostgreSQL'] * 1000 / outcomes['all']:.1f} ms of PostgreSQL; other "
            f"processes on the machine used {used['other processes'] / (seconds + warmup):.2f} "
            "of its cores meanwhile"
        )
        print(f"  {worker_shares(server.process.pid, before, after)}")
        urls = list(
            vertical.contracts.filter(endpoints__kind="ping").values_list(
                "endpoints__url", flat=True
            )
        )
        ref_rate, ref_p50, ref_p99 = line(
            "reference: bare aiohttp fan-out, same buyers",
            *run_event_loop(bare(urls, **load)),
            seconds,
        )
        print(
            f"  ratio pings/s to bare fan-outs/s: {rate / ref_rate:.2f}; p50 {p50:.1f} ms "
            f"(goal < {GOAL_P50_MS} ms: {'met' if p50 < GOAL_P50_MS else 'missed'}), p99 "
            f"{p99:.1f} ms (goal < {GOAL_P99_MS} ms: {'met' if p99 < GOAL_P99_MS else 'missed'}); "
            f"reference p50 {ref_p50:.1f} ms, p99 {ref_p99:.1f} ms"
        )
    finally:
        if server is not None:
            stop_gunicorn(server)
        stop_processes([simulator])
        if not args.keep:
            clear()


if __name__ == "__main__":
    main()
