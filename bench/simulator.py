"""Capacity of the buyer simulator, so auction benchmarks know they measure the platform.

    .venv/bin/python bench/simulator.py [--concurrency 200] [--seconds 5] [--delay-ms 50]

Starts `simulate_buyers`' server in its own process on 127.0.0.1 and drives it from this process
with an aiohttp client keeping `concurrency` requests in flight for a fixed time; prints answered
requests/s and the latency added over the requested delay (p50/p99), median of the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile
from simulator.server import run, run_event_loop


def serve(port: int) -> None:
    run("127.0.0.1", port)


async def wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise SystemExit(f"the simulator did not start at {url}")


async def drive(url: str, *, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.post(url, json={"zip_code": "60601"}) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                            continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port,), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{port}"
        run_event_loop(wait_until_up(f"{base}/health"))
        url = f"{base}/ping?bid=8-20&delay_ms={args.delay_ms}"
        rates, p50s, p99s = [], [], []
        for number in range(1, args.runs + 1):
            answered, latencies, errors = run_event_loop(
                drive(url, concurrency=args.concurrency, seconds=args.seconds)
            )
            rate = answered / args.seconds
            p50 = percentile(latencies, 0.50) * 1000 - args.delay_ms
            p99 = percentile(latencies, 0.99) * 1000 - args.delay_ms
            rates.append(rate)
            p50s.append(p50)
            p99s.append(p99)
            print(
                f"run {number}: {rate:,.0f} answers/s, overhead over {args.delay_ms} ms "
                f"p50 {p50:.1f} ms p99 {p99:.1f} ms, errors {errors}"
            )
        print(
            f"simulator, {args.concurrency} in flight, {args.delay_ms} ms answers: "
            f"median {statistics.median(rates):,.0f} answers/s, "
            f"overhead p50 {statistics.median(p50s):.1f} ms, p99 {statistics.median(p99s):.1f} ms"
        )
    finally:
        server.terminate()
        server.join(5)


if __name__ == "__main__":
    main()
