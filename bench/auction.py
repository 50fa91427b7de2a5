"""Routing engine against the buyer simulator: auction wall time and routed leads/s (issue 5).

    .venv/bin/python bench/auction.py [--quick] [--threads 4,16,32,64] [--relax-breakers]
        [--delivery plain|mapping|template] [--no-gc-freeze] [--simulators 1] [--wait-quiet 30]
        [--keep]

Works in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/leadswitch_bench_auction,
created if missing and migrated). Everything it creates hangs off verticals named
"bench-auction-*", deleted at the start and at the end (--keep leaves them for inspection).
Starts `manage.py simulate_buyers` in --simulators processes on 127.0.0.1, builds one vertical
per N = 5, 20, 50 with N ping/post contracts whose pings answer after 50 ms
(`/ping?bid=5-30&delay_ms=50`) and whose posts accept (`/post`), then calls
`routing.engine.lead_route` in this process on accepted leads made with the ORM.

--delivery says how the contracts build their requests: `plain` sends the lead's fields as they
are (a ping only the ping fields); `mapping` gives each contract flat field mappings for ping and
post (the buyer's names, transforms, a value map and the ping's bid id in the post); `template`
sends the same fields with the same formats from JSON body templates, nested a little, with
filters. The two send equivalent requests, so their runs compare a flat mapping with a template.

1. One lead at a time: auction wall time p50/p99 and the overhead over the 50 ms physical
   bound; per phase (engine functions wrapped from here, not edited) the wall time, the CPU
   time of the routing thread and the queries (a pass of its own under CaptureQueriesContext);
   the CPU of outbound.http's event loop thread, and from both the one-core ceiling of a process.
2. Many leads in flight, N = 20: lead_route from a pool of threads (the Celery worker runs
   `--pool threads`), measured for a fixed time after a warm-up: leads/s, p50/p99 per lead, CPU
   per process, what PostgreSQL's backends wait on, commits per lead. Each thread keeps its
   database connection (CONN_MAX_AGE, or Celery with CELERY_DB_REUSE_MAX); a last run at the
   best thread count closes it after every lead, as Celery 5.7's Django fix-up does by default.

3. The yardstick, in the same run: a bare fan-out with aiohttp to the same simulators, with no
   database and no Django: N pings in parallel (POST, a JSON body like the engine's), then one
   post to the highest bid, one lead's worth of HTTP at a time and then as many in flight as
   the thread pool had. The machine's speed moves by a third or more between hours and hosts:
   the ratio of routed leads/s to bare fan-outs/s, and each one's overhead over the buyers'
   50 ms, are the figures that travel.

Both print the event loop's lag (how late it wakes from a 10 ms sleep: the wait every buyer's
answer has before it is read) and the garbage collector's pauses, and say when a run opened
contracts' circuit breakers (the model defaults: 10 pings over 200 ms, or 5 failures): then the
leads after that found no buyer, and --relax-breakers measures the engine alone.

Targets on the 2-core machine: overhead under 15 ms at p50 for N = 20, and at least 100 routed
leads/s per process. The simulators, PostgreSQL and this process share the cores; so does any
other work on the machine, which is why each measurement first waits (up to --wait-quiet
seconds) for the machine to be quiet and says how busy it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import http.client
import importlib
import json
import logging
import math
import os
import pkgutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# DEBUG only spares a SECRET_KEY; it is switched off before anything is timed.
os.environ.setdefault("DEBUG", "1")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/leadswitch_bench_auction"
os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
# The buyers are the simulator on 127.0.0.1, which outbound calls may otherwise not reach.
os.environ.setdefault("OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1/32")

import django

from bench.common import database_create, free_port, percentile

SLUG_PREFIX = "bench-auction"
DELAY_MS = 50
PING_QUERY = f"bid=5-30&delay_ms={DELAY_MS}"
BUYER_COUNTS = (5, 20, 50)
THROUGHPUT_N = 20
TARGET_OVERHEAD_MS = 15.0
TARGET_RATE = 100.0
WARMUP_LIMIT_S = 30.0
DELIVERIES = ("plain", "mapping", "template")
# --delivery mapping: the buyer's names and formats for the vertical's fields, by flat mappings.
CREDIT_CODES = {"excellent": "A", "good": "B", "fair": "C", "poor": "D"}
BENCH_MAPPINGS = (
    {"source_field": "zip_code", "target_field": "zip", "transform": "digits"},
    {"source_field": "state", "target_field": "state", "transform": "upper"},
    {"source_field": "credit_rating", "target_field": "credit", "value_map": CREDIT_CODES},
    {"source_field": "vehicle_year", "target_field": "vehicle_year"},
    {
        "source_field": "first_name",
        "target_field": "first_name",
        "transform": "title",
        "applies_to": "post",
    },
    {
        "source_field": "last_name",
        "target_field": "last_name",
        "transform": "title",
        "applies_to": "post",
    },
    {"source_field": "email", "target_field": "email", "transform": "lower", "applies_to": "post"},
    {
        "source_field": "phone",
        "target_field": "phone",
        "transform": "phone_10",
        "applies_to": "post",
    },
    {"source_field": "ping.reference", "target_field": "bid_id", "applies_to": "post"},
)
# --delivery template: the same fields in the same formats, nested, from JSON body templates.
_CREDIT_LOOKUP = "lookup({" + ", ".join(f"'{k}': '{v}'" for k, v in CREDIT_CODES.items()) + "})"
_PING_LEAD = {
    "zip": "{{ fields.zip_code | digits }}",
    "state": "{{ fields.state | upper }}",
    "credit": "{{ fields.credit_rating | " + _CREDIT_LOOKUP + " }}",
    "vehicle": {"year": "{{ fields.vehicle_year }}"},
}
PING_TEMPLATE = json.dumps({"lead": _PING_LEAD}, indent=2)
POST_TEMPLATE = json.dumps(
    {
        "lead": {
            **_PING_LEAD,
            "contact": {
                "first_name": "{{ fields.first_name | title_words }}",
                "last_name": "{{ fields.last_name | title_words }}",
                "email": "{{ fields.email | lower }}",
                "phone": "{{ fields.phone | phone('10') }}",
            },
        },
        "bid_id": "{{ ping.reference }}",
    },
    indent=2,
)
# --relax-breakers: limits no run reaches, to measure the engine alone when the defaults (5
# failures, 10 pings over 200 ms) would pause every contract halfway through a run.
RELAXED_BREAKERS = {"breaker_failures": 1000, "latency_limit_ms": 60000, "latency_strikes": 1000}

# Self time per phase of a routing run: engine functions wrapped from here, never edited.
# send_all is split by its caller: inside ping_all it is the ping round, else the posts.
PHASES = {
    "claimed_run": "claim",
    "explain": "eligibility",
    "_contracts": "contracts+health",
    "health_admit": "contracts+health",
    "ping_all": "ping build/parse",
    "cap_reserve": "cap reserve",
    "post_all": "post build",
    "_settle_post": "post settle",
    "_save_attempts": "attempts+health",
    "_record_health": "attempts+health",
    "finish": "finish",
}
PING_HTTP, POST_HTTP, OTHER = "ping HTTP", "post HTTP", "other"
PHASE_ORDER = (
    "claim",
    "eligibility",
    "contracts+health",
    "ping build/parse",
    PING_HTTP,
    "attempts+health",
    "cap reserve",
    "post build",
    POST_HTTP,
    "post settle",
    "finish",
    OTHER,
)


# --- Measuring --------------------------------------------------------------------------------


class PhaseClock:
    """Self time, CPU time and queries per phase of the lead_route calls on the current thread.

    A sample is {phase: [wall seconds, thread CPU seconds, queries]}; queries are counted only
    under count_queries (with a query log, as CaptureQueriesContext keeps).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def _now(self) -> tuple[float, float, int]:
        from django.db import connection

        queries = len(connection.queries_log) if self._local.count_queries else 0
        return time.perf_counter(), time.thread_time(), queries

    @contextlib.contextmanager
    def lead(self, *, count_queries: bool = False) -> Iterator[dict[str, list[float]]]:
        """Time one lead_route call; yield its sample, filled on exit."""
        local = self._local
        local.stack = []
        local.totals = defaultdict(lambda: [0.0, 0.0, 0.0])
        local.count_queries = count_queries
        result: dict[str, list[float]] = {}
        before = self._now()
        try:
            yield result
        finally:
            after = self._now()
            result.update(local.totals)
            result[OTHER] = [
                after[i] - before[i] - sum(v[i] for v in local.totals.values()) for i in range(3)
            ]
            local.stack = None

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            local = self._local
            stack = getattr(local, "stack", None)
            if stack is None:
                return function(*args, **kwargs)
            if name == "send_all":
                inside_pings = bool(stack) and stack[-1][0] == PHASES["ping_all"]
                label = PING_HTTP if inside_pings else POST_HTTP
            else:
                label = PHASES[name]
            nested = [0.0, 0.0, 0.0]  # what phases called from this one took
            stack.append((label, nested))
            before = self._now()
            try:
                return function(*args, **kwargs)
            finally:
                after = self._now()
                stack.pop()
                totals = local.totals[label]
                for i in range(3):
                    spent = after[i] - before[i]
                    totals[i] += spent - nested[i]
                    if stack:
                        stack[-1][1][i] += spent

        return timed


CLOCK = PhaseClock()


def instrument_engine() -> list[str]:
    """Wrap the engine's phases in CLOCK in each of its modules that calls them (a call finds
    the name in its own module); return the names the engine no longer has."""
    from routing import engine

    modules = [
        importlib.import_module(f"{engine.__name__}.{module.name}")
        for module in pkgutil.iter_modules(engine.__path__)
    ]
    missing = []
    for name in [*PHASES, "send_all"]:
        holders = [module for module in modules if callable(getattr(module, name, None))]
        if not holders:
            missing.append(name)
        for module in holders:
            setattr(module, name, CLOCK.wrap(name, getattr(module, name)))
    return missing


WALL, CPU, QUERIES = 0, 1, 2


def mean_phases(samples: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Return {phase: [wall ms, CPU ms, queries]}, means over the samples."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for sample in samples:
        for phase, values in sample.items():
            for i in range(3):
                sums[phase][i] += values[i]
    count = max(1, len(samples))
    return {p: [v[0] * 1000 / count, v[1] * 1000 / count, v[2] / count] for p, v in sums.items()}


def phase_line(means: dict[str, list[float]], what: int) -> str:
    total = sum(values[what] for values in means.values())
    parts = [f"{phase} {means[phase][what]:.1f}" for phase in PHASE_ORDER if phase in means]
    return f"{total:.1f} = " + " | ".join(parts)


@dataclass
class CpuSample:
    """CPU seconds used so far: this process, its outbound-http loop thread, the simulators,
    PostgreSQL (every client's backends), and the whole machine."""

    process: float
    loop_thread: float
    simulators: float
    postgres: dict[int, float]
    machine_busy: float
    machine_total: float
    at: float = field(default_factory=time.perf_counter)


TICKS = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float:
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _loop_thread_cpu() -> float:
    """CPU of outbound.http's event loop thread, which parses every buyer's answer."""
    for thread in threading.enumerate():
        if thread.name == "outbound-http" and thread.native_id is not None:
            return _stat_cpu(f"/proc/self/task/{thread.native_id}/stat")
    return 0.0


def machine_busy(seconds: float = 1.0) -> float:
    """Return the share of the machine's CPU that was busy over the next `seconds`."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        return sum(values) - values[3] - values[4], sum(values)

    busy, total = sample()
    time.sleep(seconds)
    busy_after, total_after = sample()
    return (busy_after - busy) / max(1, total_after - total)


def _postgres_cpu() -> dict[int, float]:
    """CPU so far of each PostgreSQL process, by pid (backends come and go)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == "postgres":
                    found[int(proc.name)] = _stat_cpu(str(proc / "stat"))
    return found


def cpu_sample(simulators: list[subprocess.Popen]) -> CpuSample:
    times = os.times()
    line = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in line]
    idle = values[3] + values[4]  # idle, iowait
    return CpuSample(
        process=times.user + times.system,
        loop_thread=_loop_thread_cpu(),
        simulators=sum(_stat_cpu(f"/proc/{p.pid}/stat") for p in simulators),
        postgres=_postgres_cpu(),
        machine_busy=(sum(values[:8]) - idle) / TICKS,
        machine_total=sum(values[:8]) / TICKS,
    )


def cpu_line(before: CpuSample, after: CpuSample, leads: int) -> str:
    wall = after.at - before.at
    cores = os.cpu_count() or 1
    process = after.process - before.process
    simulators = after.simulators - before.simulators
    # A backend that exited in between takes its CPU along: a slight undercount.
    postgres = sum(cpu - before.postgres.get(pid, 0.0) for pid, cpu in after.postgres.items())
    busy = after.machine_busy - before.machine_busy
    total = max(1e-9, after.machine_total - before.machine_total)
    others = max(0.0, busy - process - simulators - postgres)
    return (
        f"CPU (% of one core): bench process {process / wall:.0%} "
        f"(outbound-http loop thread {(after.loop_thread - before.loop_thread) / wall:.0%}), "
        f"simulators {simulators / wall:.0%}, PostgreSQL (all clients) {postgres / wall:.0%}, "
        f"other processes {others / wall:.0%}; machine {busy / total:.0%} busy of {cores} cores; "
        f"{process * 1000 / max(1, leads):.1f} ms bench CPU per lead"
    )


def wait_for_quiet(limit_s: float, *, busy_below: float = 0.25) -> str:
    """Wait up to limit_s for other work on the machine to calm down; say how busy it was."""
    deadline = time.monotonic() + limit_s
    busy = machine_busy(0.5)
    while busy >= busy_below and time.monotonic() < deadline:
        busy = machine_busy(1.0)
    return f"machine {busy:.0%} busy just before" + (" (NOT QUIET)" if busy >= busy_below else "")


class LoopLag:
    """How late outbound.http's event loop wakes from a 10 ms sleep: the wait any buyer's answer
    has before the loop reads it (GIL contention with the routing threads, or a busy loop)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._running = False
        self._future: Any = None

    def start(self) -> None:
        from outbound.http import client

        async def watch() -> None:
            while self._running:
                started = time.perf_counter()
                await asyncio.sleep(0.01)
                self.samples.append((time.perf_counter() - started - 0.01) * 1000)

        self._running = True
        self._future = asyncio.run_coroutine_threadsafe(watch(), client.loop())

    def stop(self) -> str:
        self._running = False
        with contextlib.suppress(Exception):
            self._future.result(5)
        if not self.samples:
            return "loop lag not measured"
        return (
            f"event loop lag p50 {percentile(self.samples, 0.5):.1f} ms, "
            f"p99 {percentile(self.samples, 0.99):.1f} ms, max {max(self.samples):.0f} ms"
        )


class DbSampler:
    """What this database's backends do during a run (sampled from pg_stat_activity every
    100 ms on a connection of its own), and its commits and rows written (pg_stat_database)."""

    def __init__(self) -> None:
        self.states: Counter[str] = Counter()
        self.lock_queries: Counter[str] = Counter()
        self.samples = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self._totals: list[tuple[int, int, int]] = []

    @staticmethod
    def _connect():
        import psycopg
        from django.db import connection

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        return psycopg.connect(autocommit=True, **params)

    def _counters(self, conn) -> tuple[int, int, int]:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
        return row[0], row[1], row[2]

    def _watch(self) -> None:
        with self._connect() as conn:
            self._totals.append(self._counters(conn))
            while self._running:
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 60) "
                    "FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                ).fetchall()
                for state, wait_type, wait_event, query in rows:
                    if state != "active":
                        key = "idle (waiting for Python)" if state == "idle" else state
                    elif wait_type is None or wait_type == "CPU":
                        key = "running"
                    elif wait_type == "Lock":
                        key = f"lock wait ({wait_event})"
                        self.lock_queries[query] += 1
                    else:
                        key = f"{wait_type} {wait_event}"
                    self.states[key] += 1
                self.samples += 1
                time.sleep(0.1)
            # Backends report their counters at most once a second.
            time.sleep(1.1)
            self._totals.append(self._counters(conn))

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """End the sampling (the commit counters are read a second later)."""
        self._running = False

    def report(self, leads: int) -> str:
        self._running = False
        if self._thread is not None:
            self._thread.join(10)
        if not self.samples or len(self._totals) < 2:
            return "database not sampled"
        shown = ", ".join(
            f"{count / self.samples:.1f} {state}" for state, count in self.states.most_common(5)
        )
        (commits, inserted, updated), (commits2, inserted2, updated2) = self._totals
        per_lead = max(1, leads)
        waits = "; ".join(
            f"{count / self.samples:.1f} on {query!r}"
            for query, count in self.lock_queries.most_common(2)
        )
        return (
            f"backends on average: {shown}; per lead ~{(commits2 - commits) / per_lead:.0f} "
            f"transactions, {(inserted2 - inserted) / per_lead:.0f} rows inserted, "
            f"{(updated2 - updated) / per_lead:.0f} updated (counts lag up to 1 s)"
            + (f"\n   lock waits: {waits}" if waits else "")
        )


class GcWatch:
    """Garbage collector pauses (they stop every thread, the event loop's included)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._started) * 1000))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def line(self, leads: int) -> str:
        full = [ms for generation, ms in self.pauses if generation == 2]
        total = sum(ms for _, ms in self.pauses)
        return (
            f"GC: {len(self.pauses)} collections, {total / max(1, leads):.1f} ms/lead, "
            f"{len(full)} full ones up to {max(full, default=0):.0f} ms"
        )


# --- Database and fixtures --------------------------------------------------------------------


def ensure_database() -> str:
    """Create DATABASE_URL's PostgreSQL database when it is missing; return a label for it."""
    import environ

    url = os.environ["DATABASE_URL"]
    if not url.startswith(("postgres://", "postgresql://")):
        return url
    host = environ.Env.db_url_config(url)["HOST"] or "localhost"
    return f"PostgreSQL database {database_create(url)} on {host}"


def delete_bench_data(prefix: str = SLUG_PREFIX) -> None:
    """Delete every row this benchmark made (its verticals and what hangs off them)."""
    from buyers.models import Buyer, CapReservation, Contract
    from leads.models import Lead, Source, Vertical
    from routing.models import Attempt, Auction, ContractHealth, HealthEvent, Sale

    verticals = Vertical.objects.filter(slug__startswith=prefix)
    leads = Lead.objects.filter(vertical__in=verticals)
    contracts = Contract.objects.filter(vertical__in=verticals)
    # Children first: sales protect leads and contracts.
    for model, query in (
        (Sale, {"lead__in": leads}),
        (Attempt, {"lead__in": leads}),
        (CapReservation, {"lead__in": leads}),
        (Auction, {"lead__in": leads}),
        (HealthEvent, {"contract__in": contracts}),
        (ContractHealth, {"contract__in": contracts}),
    ):
        model.objects.filter(**query).delete()
    leads.delete()
    buyer_ids = list(contracts.values_list("buyer_id", flat=True))
    contracts.delete()
    Buyer.objects.filter(pk__in=buyer_ids).delete()
    verticals.delete()
    Source.objects.filter(name__startswith=prefix).delete()


def build_vertical(
    count: int,
    simulator_urls: list[str],
    source,
    *,
    relax_breakers: bool,
    delivery: str = "plain",
    slug: str = "",
) -> Any:
    """A vertical with a few fields and `count` ping/post contracts, one buyer each, whose
    requests are made as `delivery` says (DELIVERIES)."""
    from buyers.models import (
        Buyer,
        Contract,
        DeliveryEndpoint,
        EndpointKind,
        FieldMapping,
        PriceModel,
    )
    from leads.models import DistributionMode, FieldType, Vertical, VerticalField

    vertical = Vertical.objects.create(
        slug=slug or f"{SLUG_PREFIX}-n{count}",
        name=f"{slug}, {count} buyers" if slug else f"Bench auction, {count} buyers",
        distribution_mode=DistributionMode.AUCTION,
        auction_timeout_ms=1000,
        max_buyers=1,
        duplicate_fields=[],
    )
    VerticalField.objects.bulk_create(
        VerticalField(vertical=vertical, position=position, **spec)
        for position, spec in enumerate(
            [
                {
                    "name": "zip_code",
                    "field_type": FieldType.ZIP,
                    "required": True,
                    "in_ping": True,
                },
                {"name": "state", "field_type": FieldType.STATE, "in_ping": True},
                {
                    "name": "credit_rating",
                    "field_type": FieldType.CHOICE,
                    "choices": ["excellent", "good", "fair", "poor"],
                    "in_ping": True,
                },
                {"name": "vehicle_year", "field_type": FieldType.INTEGER, "in_ping": True},
                {"name": "first_name", "field_type": FieldType.STRING, "is_pii": True},
                {"name": "last_name", "field_type": FieldType.STRING, "is_pii": True},
                {"name": "email", "field_type": FieldType.EMAIL, "is_pii": True},
                {"name": "phone", "field_type": FieldType.PHONE, "is_pii": True},
            ]
        )
    )
    source.verticals.add(vertical)
    buyers = Buyer.objects.bulk_create(
        Buyer(company=f"{vertical.slug} buyer {number}") for number in range(count)
    )
    contracts = Contract.objects.bulk_create(
        Contract(
            buyer=buyer,
            vertical=vertical,
            name=f"Ping/post {number}",
            price_model=PriceModel.PING_POST,
            floor_price=Decimal("0.00"),
            **RELAXED_BREAKERS if relax_breakers else {},
        )
        for number, buyer in enumerate(buyers)
    )
    templated = delivery == "template"
    endpoints = []
    for number, contract in enumerate(contracts):
        base = simulator_urls[number % len(simulator_urls)]
        endpoints += [
            DeliveryEndpoint(
                contract=contract,
                kind=EndpointKind.PING,
                url=f"{base}/ping?{PING_QUERY}&buyer={number}",
                body_template=PING_TEMPLATE if templated else "",
            ),
            DeliveryEndpoint(
                contract=contract,
                kind=EndpointKind.POST,
                url=f"{base}/post?buyer={number}",
                body_template=POST_TEMPLATE if templated else "",
            ),
        ]
    if templated:
        # The check a template passes when saved (it renders, strictly, a valid document).
        for endpoint in endpoints[:2]:
            endpoint.full_clean()
    DeliveryEndpoint.objects.bulk_create(endpoints)
    if delivery == "mapping":
        FieldMapping.objects.bulk_create(
            FieldMapping(contract=contract, position=position, **spec)
            for contract in contracts
            for position, spec in enumerate(BENCH_MAPPINGS)
        )
    return vertical


class LeadMaker:
    """Accepted leads with unique emails and phones, written in bulk."""

    def __init__(self, source) -> None:
        self.source = source
        self.serial = 0

    def make(self, vertical, count: int) -> list[str]:
        """Write `count` leads; return their ids."""
        from leads.models import Lead

        leads = self.build(vertical, count)
        Lead.objects.bulk_create(leads, batch_size=1000)
        return [str(lead.pk) for lead in leads]

    def build(self, vertical, count: int) -> list[Any]:
        """Return `count` leads, not yet written."""
        from leads.models import Lead, LeadStatus

        leads = []
        for _ in range(count):
            self.serial += 1
            email = f"bench.auction.{self.serial}@example.com"
            phone = f"+1312{self.serial:07d}"
            leads.append(
                Lead(
                    vertical=vertical,
                    source=self.source,
                    status=LeadStatus.ACCEPTED,
                    email=email,
                    phone=phone,
                    zip_code="60601",
                    state="IL",
                    data={
                        "zip_code": "60601",
                        "state": "IL",
                        "credit_rating": "good",
                        "vehicle_year": 2019,
                        "first_name": "Mary",
                        "last_name": "Major",
                        "email": email,
                        "phone": phone,
                    },
                )
            )
        return leads


def outcome_counts(lead_ids: list[str]) -> Counter[str]:
    from leads.models import Lead

    statuses = Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)
    return Counter(statuses)


def ping_line(lead_ids: list[str]) -> str:
    """Ping latency as the engine recorded it (its own queueing included), and the outcomes."""
    from buyers.models import EndpointKind
    from routing.models import Attempt

    pings = list(
        Attempt.objects.filter(lead_id__in=lead_ids, kind=EndpointKind.PING).values_list(
            "latency_ms", "outcome"
        )
    )
    latencies = [ms for ms, _ in pings if ms is not None]
    if not latencies:
        return "no ping recorded"
    outcomes = Counter(outcome for _, outcome in pings)
    shown = ", ".join(f"{n} {o}" for o, n in outcomes.most_common())
    return (
        f"pings as recorded: p50 {percentile(latencies, 0.5)} ms, "
        f"p99 {percentile(latencies, 0.99)} ms, {len(pings) / len(lead_ids):.1f}/lead ({shown})"
    )


def breaker_report(vertical) -> str:
    """Say which breakers the run opened, then forget every breaker state of the vertical."""
    from routing.models import ContractHealth, HealthEvent

    contracts = vertical.contracts.all()
    events = HealthEvent.objects.filter(contract__in=contracts).count()
    not_closed = ContractHealth.objects.filter(contract__in=contracts).exclude(status="closed")
    reasons = Counter(not_closed.values_list("reason", flat=True))
    HealthEvent.objects.filter(contract__in=contracts).delete()
    ContractHealth.objects.filter(contract__in=contracts).delete()
    if not events and not reasons:
        return ""
    shown = "; ".join(f"{n}× {r}" for r, n in reasons.most_common(3))
    return f"breakers: {events} events, {sum(reasons.values())} not closed ({shown})"


# --- Simulators -------------------------------------------------------------------------------


def start_simulator(log) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "simulate_buyers",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_until_up(process: subprocess.Popen, base_url: str, *, seconds: float = 20) -> None:
    port = int(base_url.rsplit(":", 1)[1])
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the simulator on port {port} exited with {process.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise SystemExit(f"the simulator did not answer at {base_url}/health")


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --- The bare fan-out: the same buyers' HTTP, no database, no Django ---------------------------

BARE_PING = json.dumps(
    {"zip_code": "60601", "state": "IL", "credit_rating": "good", "vehicle_year": 2019}
).encode()
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class BareResult:
    concurrency: int
    rate: float
    p50: float
    p99: float
    cpu_ms: float  # this process's CPU per fan-out
    errors: int


async def _bare_request(session: Any, url: str, body: bytes) -> dict[str, Any]:
    import aiohttp

    # The vertical's auction timeout, as the engine gives each request.
    timeout = aiohttp.ClientTimeout(total=1.0)
    async with session.post(url, data=body, headers=JSON_HEADERS, timeout=timeout) as response:
        return json.loads(await response.read())


async def _bare_auction(session: Any, buyers: list[tuple[str, str]], serial: int) -> None:
    """Ping every buyer at once, then post the lead to the highest bid."""
    answers = await asyncio.gather(*(_bare_request(session, ping, BARE_PING) for ping, _ in buyers))
    bids = [
        (float(answer.get("price") or 0), post)
        for answer, (_, post) in zip(answers, buyers, strict=True)
        if answer.get("status") == "bid"
    ]
    if bids:
        _, post = max(bids)
        lead = {"email": f"bare.{serial}@example.com", "phone": "+13125550100", "zip": "60601"}
        await _bare_request(session, post, json.dumps(lead).encode())


async def _bare_run(
    buyers: list[tuple[str, str]], *, concurrency: int, count: int, seconds: float, warmup: float
) -> tuple[list[float], float, float, int]:
    """Fan out `count` times one at a time, or for `seconds` with `concurrency` in flight.

    Return the wall times (ms) in the measured window, its length, the CPU spent in it and
    the errors.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=200)
    walls: list[float] = []
    errors = 0
    serial = 0
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def one() -> bool:
            nonlocal errors, serial
            serial += 1
            try:
                await _bare_auction(session, buyers, serial)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                errors += 1
                return False
            return True

        if concurrency == 1:
            for _ in range(5):
                await one()
            cpu, began = time.process_time(), time.perf_counter()
            for _ in range(count):
                started = time.perf_counter()
                if await one():
                    walls.append((time.perf_counter() - started) * 1000)
            return walls, time.perf_counter() - began, time.process_time() - cpu, errors

        window = {"start": time.perf_counter() + warmup}
        window["end"] = window["start"] + seconds

        async def loop() -> None:
            while time.perf_counter() < window["end"]:
                started = time.perf_counter()
                ok = await one()
                finished = time.perf_counter()
                # Completions inside the window count, whenever they started (as for routing).
                if ok and window["start"] <= finished <= window["end"]:
                    walls.append((finished - started) * 1000)

        tasks = [asyncio.ensure_future(loop()) for _ in range(concurrency)]
        await asyncio.sleep(max(0.0, window["start"] - time.perf_counter()))
        cpu = time.process_time()
        await asyncio.sleep(max(0.0, window["end"] - time.perf_counter()))
        cpu = time.process_time() - cpu
        await asyncio.gather(*tasks)
    return walls, seconds, cpu, errors


def bare_fan_out(
    vertical,
    *,
    concurrency: int = 1,
    count: int = 0,
    seconds: float = 0.0,
    warmup: float = 0.0,
    quiet_s: float,
) -> BareResult:
    """Measure the bare fan-out to the vertical's buyers' own endpoints; print a line."""
    from buyers.models import EndpointKind
    from simulator.server import run_event_loop

    urls: dict[int, dict[str, str]] = defaultdict(dict)
    for endpoint in vertical.contracts.values("pk", "endpoints__kind", "endpoints__url"):
        urls[endpoint["pk"]][endpoint["endpoints__kind"]] = endpoint["endpoints__url"]
    buyers = [(u[EndpointKind.PING], u[EndpointKind.POST]) for u in urls.values()]
    quiet = wait_for_quiet(quiet_s)
    walls, elapsed, cpu, errors = run_event_loop(
        _bare_run(buyers, concurrency=concurrency, count=count, seconds=seconds, warmup=warmup)
    )
    if not walls:
        print(f"   bare fan-out: nothing completed ({errors} errors)")
        return BareResult(concurrency, 0.0, 0.0, 0.0, 0.0, errors)
    result = BareResult(
        concurrency,
        rate=len(walls) / elapsed,
        p50=percentile(walls, 0.5),
        p99=percentile(walls, 0.99),
        cpu_ms=cpu * 1000 / len(walls),
        errors=errors,
    )
    label = "one at a time" if concurrency == 1 else f"{concurrency} in flight"
    print(
        f"   bare fan-out to the same {len(buyers)} buyers, {label}: {result.rate:6.1f}/s  "
        f"p50 {result.p50:6.1f} ms  p99 {result.p99:6.1f} ms  overhead over {DELAY_MS} ms: "
        f"p50 +{result.p50 - DELAY_MS:.1f} ms; {result.cpu_ms:.1f} ms CPU each, "
        f"{errors} errors; {quiet}"
    )
    return result


# --- The runs ---------------------------------------------------------------------------------


def route(lead_id: str) -> str:
    from routing.engine import lead_route

    return lead_route(lead_id=lead_id)


def prepare_requests(vertical, maker: LeadMaker) -> None:
    """Build every contract's ping and post once, as a worker has done after its first leads.

    The engine works out a contract's requests (a template compiled) when it first uses them,
    and keeps them while it keeps the contract: a post when the contract first wins, which a few
    warm-up leads leave undone for most of N contracts. bench/delivery.py times that set-up.
    """
    from buyers.models import EndpointKind
    from leads.models import Vertical
    from routing.engine.mapping import request_for
    from routing.selectors import delivery_setup

    # As the claim reads it: the contracts are kept per version of the vertical's row.
    vertical = Vertical.objects.get(pk=vertical.pk)
    contracts, ping_fields = delivery_setup(
        vertical, vertical.contracts.values_list("pk", flat=True)
    )
    lead = maker.build(vertical, 1)[0]
    for contract in contracts.values():
        request_for(contract, EndpointKind.PING, lead, ping_fields)
        request_for(
            contract,
            EndpointKind.POST,
            lead,
            frozenset(),
            bid=Decimal("10.00"),
            ping={"reference": "warm-up"},
        )


def single_leads(
    vertical, maker: LeadMaker, *, leads: int, warmup: int, quiet_s: float, gc_freeze: bool
) -> float:
    """Route leads one at a time; print wall time, overhead and the split per phase; return p50."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    count = vertical.contracts.count()
    for lead_id in maker.make(vertical, warmup):
        route(lead_id)
    prepare_requests(vertical, maker)
    if gc_freeze:
        # What is loaded by now (the ZIP table, compiled rules, Django) stays for the process's
        # life: leave it out of every later collection.
        gc.collect()
        gc.freeze()
    ids = maker.make(vertical, leads)
    quiet = wait_for_quiet(quiet_s)
    walls, phases = [], []
    loop_cpu = _loop_thread_cpu()
    lag = LoopLag()
    lag.start()
    with GcWatch() as collections:
        for lead_id in ids:
            with CLOCK.lead() as sample:
                route(lead_id)
            phases.append(sample)
            walls.append(sum(values[WALL] for values in sample.values()) * 1000)
    loop_cpu = (_loop_thread_cpu() - loop_cpu) * 1000 / len(ids)
    lag_line = lag.stop()
    outcomes = outcome_counts(ids)

    # Queries, in a pass of their own: the query log costs time.
    query_samples = []
    for lead_id in maker.make(vertical, 3):
        with CaptureQueriesContext(connection), CLOCK.lead(count_queries=True) as sample:
            route(lead_id)
        query_samples.append(sample)

    p50, p99 = percentile(walls, 0.5), percentile(walls, 0.99)
    means = mean_phases(phases)
    status = ", ".join(f"{n} {s}" for s, n in outcomes.most_common())
    print(
        f"N = {count:>2}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  overhead over {DELAY_MS} ms: "
        f"p50 +{p50 - DELAY_MS:.1f} ms, p99 +{p99 - DELAY_MS:.1f} ms  ({len(ids)} leads: {status}; "
        f"{quiet})"
    )
    print(f"   wall ms/lead (mean self time): {phase_line(means, WALL)}")
    print(f"   CPU ms/lead, routing thread:   {phase_line(means, CPU)}")
    print(f"   queries/lead:                  {phase_line(mean_phases(query_samples), QUERIES)}")
    cpu = sum(values[CPU] for values in means.values()) + loop_cpu
    print(
        f"   + {loop_cpu:.1f} ms CPU/lead in the outbound-http loop thread (read in 10 ms ticks): "
        f"one process, held by the GIL to about one core, tops out near {1000 / cpu:.0f} leads/s"
    )
    print(f"   {lag_line}; {collections.line(len(ids))}")
    print(f"   {ping_line(ids)}")
    note = breaker_report(vertical)
    if note:
        print(f"   {note}")
    return p50


@dataclass
class LoadResult:
    threads: int
    rate: float
    sold_rate: float
    p50: float
    p99: float
    breakers_opened: bool


def many_in_flight(
    vertical,
    maker: LeadMaker,
    simulators: list[subprocess.Popen],
    *,
    threads: int,
    seconds: float,
    warmup: float,
    close_per_lead: bool,
    quiet_s: float,
) -> LoadResult:
    """Route from `threads` threads; after a warm-up, measure a window of `seconds`.

    The warm-up lasts `warmup` seconds and until every thread has routed a lead (each has its
    database connection then), at most WARMUP_LIMIT_S more.
    """
    from django.db import connection

    # Enough leads for 2.5 times the target: a run that drains them stops early and says so.
    ids = maker.make(vertical, int((seconds + warmup) * TARGET_RATE * 2.5))
    quiet = wait_for_quiet(quiet_s)
    pending = iter(ids)
    take = threading.Lock()
    window = {"start": math.inf, "end": math.inf}
    done: list[tuple[float, float, str, dict[str, list[float]]]] = []  # started, finished, ...
    errors: list[str] = []
    exhausted = threading.Event()

    def worker() -> None:
        try:
            while time.perf_counter() < window["end"]:
                with take:
                    lead_id = next(pending, None)
                if lead_id is None:
                    exhausted.set()
                    return
                with CLOCK.lead() as sample:
                    started = time.perf_counter()
                    route(lead_id)
                done.append((started, time.perf_counter(), lead_id, sample))
                if close_per_lead:
                    connection.close()
        except Exception as exc:  # reported below; one failing thread must not hang the run
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    began = time.perf_counter()
    for thread in pool:
        thread.start()
    while time.perf_counter() < began + warmup + WARMUP_LIMIT_S and not exhausted.is_set():
        if time.perf_counter() >= began + warmup and len(done) >= threads:
            break
        time.sleep(0.05)
    window["start"] = time.perf_counter()
    window["end"] = window["start"] + seconds
    warmed = window["start"] - began
    before = cpu_sample(simulators)
    lag, db = LoopLag(), DbSampler()
    lag.start()
    db.start()
    with GcWatch() as collections:
        time.sleep(max(0.0, window["end"] - time.perf_counter()))
    after = cpu_sample(simulators)
    db.finish()
    lag_line = lag.stop()
    for thread in pool:
        thread.join(60)

    # Completions inside the window count, whenever they started.
    done_in_window = [
        (started, (finished - started) * 1000, lead_id, sample)
        for started, finished, lead_id, sample in list(done)
        if window["start"] <= finished <= window["end"]
    ]
    phases = [sample for _, _, _, sample in done_in_window]
    walls = [wall for _, wall, _, _ in done_in_window]
    db_line = db.report(len(walls))
    rate = len(walls) / seconds
    label = f"{threads} threads" + (", connection closed after each lead" if close_per_lead else "")
    if not walls:
        print(f"{label}: nothing routed in the window; errors: {errors[:3]}")
        return LoadResult(
            threads, 0.0, 0.0, 0.0, 0.0, breakers_opened=bool(breaker_report(vertical))
        )
    p50, p99 = percentile(walls, 0.5), percentile(walls, 0.99)
    routed_ids = [lead_id for _, _, lead_id, _ in done_in_window]
    outcomes = outcome_counts(routed_ids)
    status = ", ".join(f"{n} {s}" for s, n in outcomes.most_common())
    print(
        f"{label:>46}: {rate:6.1f} leads/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({status}; "
        f"measured {seconds:g} s after a {warmed:.1f} s warm-up)"
    )
    print(f"   wall ms/lead (mean self time): {phase_line(mean_phases(phases), WALL)}")
    print(f"   {ping_line(routed_ids)}")
    print(f"   {lag_line}; {collections.line(len(walls))}")
    print(f"   {cpu_line(before, after, len(walls))}; {quiet}")
    print(f"   {db_line}")
    note = breaker_report(vertical)
    if note:
        print(f"   {note}: the contracts were paused by this process's own latency, and the leads")
        print("   routed after that found no buyer: not a measure of routing")
    if errors:
        print(f"   {len(errors)} threads failed: {errors[:3]}")
    if exhausted.is_set():
        print("   ran out of prepared leads: the rate is a lower bound")
    sold_rate = outcomes.get("sold", 0) / seconds
    return LoadResult(threads, rate, sold_rate, p50, p99, breakers_opened=bool(note))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer leads, shorter runs")
    parser.add_argument("--leads", type=int, default=None, help="single leads per N (100)")
    parser.add_argument("--seconds", type=float, default=None, help="per thread count (10)")
    parser.add_argument("--threads", default=None, help="thread counts (4,16,32,64)")
    parser.add_argument("--simulators", type=int, default=1, help="simulator processes (1)")
    parser.add_argument("--keep", action="store_true", help="keep the bench rows afterwards")
    parser.add_argument(
        "--delivery",
        choices=DELIVERIES,
        default="plain",
        help="the contracts' requests: the lead's fields as they are (plain), flat field "
        "mappings, or JSON body templates sending the same fields (default plain)",
    )
    parser.add_argument(
        "--relax-breakers",
        action="store_true",
        help="give the contracts breaker limits no run reaches (default: the model defaults)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval in ms for this process (Python's default: 5)",
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.freeze() once the ZIP table and the rules are loaded, as the Celery worker does "
        "at start (config/celery.py); --no-gc-freeze leaves every object to the collector",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=1200,
        help="give up (and still stop what was started) after this many seconds (1200)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each measurement, wait up to this many seconds for the machine's other "
        "work to drop under 25%% CPU (30)",
    )
    args = parser.parse_args()
    leads = args.leads or (30 if args.quick else 100)
    seconds = args.seconds or (4.0 if args.quick else 10.0)
    thread_counts = [
        int(t) for t in (args.threads or ("16" if args.quick else "4,16,32,64")).split(",")
    ]
    warmup_leads, warmup_seconds = (5, 1.5) if args.quick else (10, 2.0)

    def give_up(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    # A time limit and SIGTERM end the run through the finally below, which stops the simulators.
    signal.signal(signal.SIGTERM, give_up)
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(args.timeout)

    label = ensure_database()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from leads.models import Source

    call_command("migrate", verbosity=0)
    settings.DEBUG = False  # no query log while timing; CaptureQueriesContext turns it on
    missing = instrument_engine()

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"auction bench: {label}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load average {load}"
    )
    db = settings.DATABASES["default"]
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval / 1000)
    print(
        f"CONN_MAX_AGE {db.get('CONN_MAX_AGE')}, cache {settings.CACHES['default']['BACKEND']}, "
        f"{args.simulators} simulator process(es), pings answer after {DELAY_MS} ms, "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms, {args.delivery} "
        "requests, breakers "
        + ("relaxed" if args.relax_breakers else "at the model defaults")
        + (", gc.freeze() after the first leads" if args.gc_freeze else "")
    )
    # Breakers that open are counted per run below instead of logged line by line.
    logging.getLogger("routing.health").setLevel(logging.ERROR)
    if missing:
        print(f"note: routing.engine has no {', '.join(missing)}; those phases count as other")

    simulators: list[subprocess.Popen] = []
    with tempfile.TemporaryFile() as log:
        try:
            delete_bench_data()
            started = [start_simulator(log) for _ in range(args.simulators)]
            simulators = [process for process, _ in started]
            for process, url in started:
                wait_until_up(process, url)
            urls = [url for _, url in started]
            source = Source.objects.create(name=f"{SLUG_PREFIX} source")
            maker = LeadMaker(source)
            verticals = {
                n: build_vertical(
                    n,
                    urls,
                    source,
                    relax_breakers=args.relax_breakers,
                    delivery=args.delivery,
                )
                for n in BUYER_COUNTS
            }

            print(
                f"\n1. One lead at a time ({leads} leads per N after {warmup_leads} warm-up), "
                "each N followed by the bare fan-out to the same buyers"
            )
            overhead, bare_single = {}, {}
            for n in BUYER_COUNTS:
                overhead[n] = single_leads(
                    verticals[n],
                    maker,
                    leads=leads,
                    warmup=warmup_leads,
                    quiet_s=args.wait_quiet,
                    gc_freeze=args.gc_freeze,
                )
                overhead[n] -= DELAY_MS
                bare_single[n] = bare_fan_out(verticals[n], count=leads, quiet_s=args.wait_quiet)

            print(
                f"\n2. Many leads in flight, N = {THROUGHPUT_N}, lead_route from a thread pool, "
                f"{seconds:g} s after a warm-up"
            )
            results = [
                many_in_flight(
                    verticals[THROUGHPUT_N],
                    maker,
                    simulators,
                    threads=threads,
                    seconds=seconds,
                    warmup=warmup_seconds,
                    close_per_lead=False,
                    quiet_s=args.wait_quiet,
                )
                for threads in thread_counts
            ]
            bare_many = {
                threads: bare_fan_out(
                    verticals[THROUGHPUT_N],
                    concurrency=threads,
                    seconds=seconds,
                    warmup=warmup_seconds,
                    quiet_s=args.wait_quiet,
                )
                for threads in thread_counts
            }
            valid = [r for r in results if not r.breakers_opened] or results
            best = max(valid, key=lambda r: r.sold_rate)
            many_in_flight(
                verticals[THROUGHPUT_N],
                maker,
                simulators,
                threads=best.threads,
                seconds=seconds,
                warmup=warmup_seconds,
                close_per_lead=True,
                quiet_s=args.wait_quiet,
            )

            print("\n3. Targets")
            met = overhead[THROUGHPUT_N] < TARGET_OVERHEAD_MS
            print(
                f"overhead at p50, N = {THROUGHPUT_N}: +{overhead[THROUGHPUT_N]:.1f} ms "
                f"(target < {TARGET_OVERHEAD_MS:g} ms): {'met' if met else 'MISSED'}; "
                f"a sequential engine would take > {THROUGHPUT_N * DELAY_MS} ms"
            )
            met = best.sold_rate >= TARGET_RATE and not best.breakers_opened
            print(
                f"routed (sold) leads/s, one process: {best.sold_rate:.1f} at {best.threads} "
                f"threads, p50 {best.p50:.0f} ms, p99 {best.p99:.0f} ms "
                f"(target ≥ {TARGET_RATE:g}): {'met' if met else 'MISSED'}"
                + ("; every run opened breakers" if best.breakers_opened else "")
            )

            print("\n4. Against the bare fan-out in the same run (the figures to compare)")
            for n in BUYER_COUNTS:
                bare = bare_single[n]
                print(
                    f"one lead at a time, N = {n:>2}: overhead over {DELAY_MS} ms at p50 routing "
                    f"+{overhead[n]:.1f} ms, bare +{bare.p50 - DELAY_MS:.1f} ms, so routing adds "
                    f"{overhead[n] + DELAY_MS - bare.p50:.1f} ms to the same HTTP"
                )
            for result in results:
                bare = bare_many[result.threads]
                share = f"{result.rate / bare.rate:.2f}" if bare.rate else "n/a"
                print(
                    f"N = {THROUGHPUT_N}, {result.threads} in flight: routed/bare {share} "
                    f"({result.rate:.1f} leads/s against {bare.rate:.1f} fan-outs/s); overhead "
                    f"over {DELAY_MS} ms at p50 routing +{result.p50 - DELAY_MS:.0f} ms, bare "
                    f"+{bare.p50 - DELAY_MS:.0f} ms"
                )
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            print(f"load average at the end: {load}")
        finally:
            stop_processes(simulators)
            if not args.keep:
                from django.db import DatabaseError, connection

                # A run cut short may have left this thread's transaction open: start afresh.
                connection.close()
                try:
                    delete_bench_data()
                except DatabaseError as exc:  # threads of a run cut short may still write
                    print(f"bench rows left behind (the next run deletes them): {exc}")
            log.seek(0)
            errors = log.read().decode(errors="replace").strip()
            if errors:
                print(f"simulator stderr:\n{errors[-2000:]}")


if __name__ == "__main__":
    main()
