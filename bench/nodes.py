"""One node against two: intake and routing throughput when a second node joins (issue 24).

    .venv/bin/python bench/nodes.py [--quick] [--seconds 10] [--connections 16] [--rounds 2]

A "node" is a process group bound to its own loopback address, as a machine would be: gunicorn
as deployed (config/gunicorn.py, 2 workers of 8 threads) on 127.0.0.2 or 127.0.0.3, and a Celery
worker (threads pool, 16) beside it. Both nodes share one PostgreSQL and one Redis, as nodes of a
real installation do; the demo's buyers are one buyer simulator on 127.0.0.1.

Works in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/leadswitch_bench_nodes; its name
must contain "bench") and CELERY_BROKER_URL (default redis://127.0.0.1:6379/9, a numbered database
other than 0: it is flushed), with bench/intake.py's data (the demo and a bench source) and load
generator. Each round submits leads for `--seconds` over `--connections` connections, spread
evenly over the nodes' addresses, while the workers route them; intake is the 202s per second,
routing the leads brought to a final state per second from the round's start until the last.

Rounds alternate one node and two (the second node started for its rounds and stopped after),
so that the ratio two / one compares minutes of the same hour on the same machine: that ratio is
the figure that travels, not the leads per second. Each round prints the CPU that every group of
processes used, in cores: on a machine with fewer cores than the processes want, PostgreSQL's
share and the total say where the ceiling is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port
from bench.intake import (
    LeadBodies,
    Round,
    configure_environment,
    cpu_used,
    drive,
    latency_ms,
    postgres_serves,
    prepare_data,
    processes_cpu,
)
from simulator.server import run_event_loop

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/leadswitch_bench_nodes")
# Fixed, unlike bench/intake.py's random one: the demo buyers' credentials are stored encrypted with
# a key derived from it, and a later run must read them (as every node of an installation must).
os.environ.setdefault("SECRET_KEY", "bench-nodes-not-a-secret-" + "k" * 40)
ADDRESSES = ("127.0.0.2", "127.0.0.3")
BIN = Path(sys.executable).parent
GROUPS = ("web", "workers", "PostgreSQL", "Redis", "simulator", "load generator", "other")


@dataclass
class Node:
    address: str
    web: subprocess.Popen
    worker: subprocess.Popen
    url: str

    @property
    def pgids(self) -> set[int]:
        return {self.web.pid, self.worker.pid}


def spawn(command: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own command lines
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONWARNINGS": "ignore:No directory at:UserWarning"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def node_start(address: str, tmp: Path) -> Node:
    port = free_port()
    web = spawn(
        [
            str(BIN / "gunicorn"),
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"{address}:{port}",
            "--workers",
            "2",
            "--threads",
            "8",
            "--log-level",
            "warning",
        ],
        tmp / f"web-{address}.log",
    )
    worker = spawn(
        [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "16",
            "-n",
            f"bench-{address}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        tmp / f"worker-{address}.log",
    )
    node = Node(address, web, worker, f"http://{address}:{port}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{node.url}/health/ready", timeout=2).status_code == 200:
                return node
        except requests.RequestException:
            pass
        time.sleep(0.2)
    node_stop(node)
    raise SystemExit(
        f"node {address} did not become ready:\n{(tmp / f'web-{address}.log').read_text()}"
    )


def node_stop(node: Node) -> None:
    for process in (node.web, node.worker):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in (node.web, node.worker):
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def cpu_snapshot(
    nodes: list[Node], simulator: subprocess.Popen, database: str
) -> dict[int, tuple[str, float]]:
    """Each process's group (a node's web or worker, the simulator, PostgreSQL ...) and the CPU
    seconds it has used so far."""
    workers = {node.worker.pid for node in nodes}
    webs = {node.web.pid for node in nodes}
    snapshot = {}
    own = os.getpid()
    for pid, pgid, name, title, seconds in processes_cpu():
        if pid == own:
            group = "load generator"
        elif pgid in webs:
            group = "web"
        elif pgid in workers:
            group = "workers"
        elif pgid == simulator.pid:
            group = "simulator"
        elif name == "postgres":
            group = "PostgreSQL" if postgres_serves(title, database) else "other"
        elif name.startswith("redis-server"):
            group = "Redis"
        else:
            group = "other"
        snapshot[pid] = (group, seconds)
    return snapshot


@dataclass
class Result:
    nodes: int
    accepted: int
    intake_rate: float
    routed_rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    cores: dict[str, float]


def measure_round(
    nodes: list[Node], api_key: str, *, connections: int, seconds: float, simulator, database: str
) -> Result:
    from leads.models import FINAL_STATUSES, Lead

    bodies = LeadBodies()
    started_at = time.time()
    before = cpu_snapshot(nodes, simulator, database)
    began = time.perf_counter()

    async def all_nodes():
        share = max(1, connections // len(nodes))
        return await asyncio.gather(
            *(
                drive(
                    f"{node.url}/api/v1/leads/",
                    api_key,
                    bodies,
                    connections=share,
                    seconds=seconds,
                    server_pgid=-1,
                    database=database,
                )
                for node in nodes
            )
        )

    rounds = run_event_loop(all_nodes())
    intake_elapsed = time.perf_counter() - began
    accepted = sum(r.accepted for r in rounds)
    since = datetime.fromtimestamp(started_at, tz=UTC)
    submitted = Lead.objects.filter(received_at__gte=since)
    deadline = time.monotonic() + 300
    while submitted.exclude(status__in=FINAL_STATUSES).exists():
        if time.monotonic() > deadline:
            raise SystemExit("leads not routed within 300 s of the round's end")
        time.sleep(0.2)
    routed_elapsed = time.perf_counter() - began
    used = cpu_used(before, cpu_snapshot(nodes, simulator, database))
    latencies = [latency for r in rounds for latency in r.latencies]
    merged = Round(connections=connections)
    merged.latencies = latencies
    return Result(
        nodes=len(nodes),
        accepted=accepted,
        intake_rate=accepted / intake_elapsed,
        routed_rate=submitted.count() / routed_elapsed,
        p50_ms=latency_ms(merged, 0.5),
        p99_ms=latency_ms(merged, 0.99),
        errors=sum(r.errors for r in rounds),
        cores={group: used[group] / routed_elapsed for group in GROUPS},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round each, 6 s")
    parser.add_argument("--seconds", type=float, default=None, help="intake time per round (10)")
    parser.add_argument("--connections", type=int, default=16, help="in flight, over all nodes")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each (2)")
    args = parser.parse_args()
    seconds = args.seconds or (6.0 if args.quick else 10.0)
    rounds = args.rounds or (1 if args.quick else 2)

    database_url, broker_url = configure_environment()
    os.environ["ALLOWED_HOSTS"] = ",".join(ADDRESSES)
    from bench.common import database_create

    name = database_create(database_url)
    api_key, _ = prepare_data()

    import redis

    from buyers.models import BuyerCap, ClosedDate, ContractCap, DeliveryEndpoint, ScheduleWindow
    from leads.models import Lead
    from routing.models import ContractHealth

    # Routing is measured with buyers able to buy: the demo's caps, hours and closed days, whose
    # outcome depends on the hour the bench runs in and on the runs before, are lifted here.
    for model in (ContractCap, BuyerCap, ScheduleWindow, ClosedDate):
        model.objects.all().delete()
    redis.Redis.from_url(broker_url).flushdb()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp_name:
        tmp = Path(tmp_name)
        sim_port = free_port()
        simulator_url = f"http://127.0.0.1:{sim_port}"
        simulator = spawn(
            [
                str(BIN / "python"),
                "manage.py",
                "simulate_buyers",
                "--host",
                "127.0.0.1",
                "--port",
                str(sim_port),
            ],
            tmp / "simulator.log",
        )
        # The demo's buyers point at the usual simulator port (or a run before's): at this run's
        # simulator instead, with their breakers closed again.
        for endpoint in DeliveryEndpoint.objects.all():
            endpoint.url = re.sub(r"^http://127\.0\.0\.1:\d+", simulator_url, endpoint.url)
            endpoint.save(update_fields=["url"])
        ContractHealth.objects.all().delete()
        first = node_start(ADDRESSES[0], tmp)
        try:
            for _ in range(rounds):
                for count in (1, 2):
                    nodes = [first]
                    if count == 2:
                        nodes.append(node_start(ADDRESSES[1], tmp))
                    try:
                        # Warm-up: each process builds its tables and connections on first use.
                        measure_round(
                            nodes,
                            api_key,
                            connections=args.connections,
                            seconds=2,
                            simulator=simulator,
                            database=name,
                        )
                        result = measure_round(
                            nodes,
                            api_key,
                            connections=args.connections,
                            seconds=seconds,
                            simulator=simulator,
                            database=name,
                        )
                    finally:
                        for extra in nodes[1:]:
                            node_stop(extra)
                    results.append(result)
                    cores = ", ".join(f"{g} {c:.2f}" for g, c in result.cores.items())
                    print(
                        f"{result.nodes} node(s): intake {result.intake_rate:6.1f} leads/s "
                        f"(p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, errors "
                        f"{result.errors}), routed {result.routed_rate:6.1f} leads/s; CPU in "
                        f"cores of {os.cpu_count()}: {cores}",
                        flush=True,
                    )
        finally:
            node_stop(first)
            simulator.send_signal(signal.SIGTERM)
            simulator.wait(timeout=10)
            redis.Redis.from_url(broker_url).flushdb()
        outcomes = Counter(Lead.objects.values_list("status", flat=True))
        print(f"cross-check: leads by status {dict(outcomes)}")
        if outcomes.get("failed"):
            for log in sorted(tmp.glob("worker-*.log")):
                print(f"--- {log.name} (last lines) ---")
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))

    one = [r for r in results if r.nodes == 1]
    two = [r for r in results if r.nodes == 2]
    intake_ratio = statistics.median([r.intake_rate for r in two]) / statistics.median(
        [r.intake_rate for r in one]
    )
    routed_ratio = statistics.median([r.routed_rate for r in two]) / statistics.median(
        [r.routed_rate for r in one]
    )
    postgres = statistics.median([r.cores["PostgreSQL"] for r in two])
    total = statistics.median([sum(r.cores.values()) for r in two])
    print(
        f"two nodes / one (medians of {rounds} round(s) each): intake {intake_ratio:.2f}, "
        f"routing {routed_ratio:.2f}; with two nodes PostgreSQL used {postgres:.2f} cores, "
        f"everything {total:.2f} of {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
