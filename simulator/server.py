"""Simulated buyer endpoints for tests, benchmarks and local development.

One server plays any number of buyers: the query string decides how each request is answered, so a
buyer configured with ``/ping?bid=8-20&delay_ms=40&decline=0.1`` carries its whole behaviour in its
URL. Endpoints (GET or POST; a request body is read and counted but otherwise ignored):

- ``/ping``: ``bid`` (amount or ``low-high`` range, default 10.00), ``decline``, ``fail``,
  ``delay_ms``, ``timeout``, ``reason``.
- ``/post``: ``accept`` (default 1), ``price`` (echoed only when given), ``fail``, ``delay_ms``,
  ``timeout``, ``reason``.
- Misbehaviour on either: ``malformed=1`` (a 200 whose body is not JSON), ``huge_kb=N`` (the
  answer padded to N KiB, at most 10 MiB), ``redirect=<url>`` (a 302 to that URL).
- ``/health`` and ``/_ledger`` (requests received per endpoint, and duplicate posts: the same body
  at the same URL, i.e. one lead posted to one buyer, received again although the earlier answer
  did not ask for a retry with a 5xx or 429).

Parameters an endpoint does not use are ignored, so URLs may carry labels such as ``buyer=acme``.
This module imports nothing from Django so benchmarks can run it on its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import re
import signal
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from types import TracebackType
from typing import Any, TypeVar, cast

from aiohttp import web

__all__ = [
    "LEDGER",
    "REASONS",
    "Ledger",
    "SimulatorThread",
    "build_app",
    "is_loopback",
    "run",
]

LOOPBACK = "127.0.0.1"
REASONS = (
    "duplicate",
    "outside service area",
    "invalid phone",
    "no coverage in state",
    "budget reached",
)
DEFAULT_BID_CENTS = 1000
# Long enough that every client gives up first, short enough that a forgotten task still ends.
HANG_SECONDS = 3600.0
MAX_DELAY_MS = 3_600_000
MAX_REASON_LENGTH = 200
MAX_HUGE_KB = 10 * 1024
# Benchmarks open thousands of connections at once; the kernel caps this at net.core.somaxconn.
BACKLOG = 4096
# Hanging (timeout=1) requests would otherwise hold shutdown for aiohttp's default 60 s.
SHUTDOWN_GRACE_SECONDS = 0.5

PROBLEM_CONTENT_TYPE = "application/problem+json"
INVALID_PARAMETERS_TYPE = "urn:leadswitch:problem:invalid-parameters"

_AMOUNT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:-\s*([0-9]+(?:\.[0-9]+)?)\s*)?")
_INTEGER = re.compile(r"[0-9]+")

_T = TypeVar("_T")


@dataclass
class Ledger:
    """Count what the simulator received, so tests can compare it with what the platform sent."""

    requests: Counter[str] = field(default_factory=Counter)
    body_bytes: Counter[str] = field(default_factory=Counter)
    # Posts per (URL with its query, which names the buyer; digest of the body, which is the lead),
    # and how many of their answers invited a retry (a 5xx or a 429).
    posts: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries_invited: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, endpoint: str, body: bytes, *, url: str = "") -> tuple[str, str]:
        """Record one request to an endpoint and the size of its body; return the post's key."""
        self.requests[endpoint] += 1
        self.body_bytes[endpoint] += len(body)
        key = (url, hashlib.sha256(body).hexdigest())
        if endpoint == "post":
            self.posts[key] += 1
        return key

    def answered(self, key: tuple[str, str], status: int) -> None:
        """Note the answer to a post: a 5xx or 429 invites the platform to send it again."""
        if status >= 500 or status == 429:
            self.retries_invited[key] += 1

    @property
    def duplicate_posts(self) -> int:
        """Posts of one lead to one buyer received again without the buyer having asked for it
        (by answering 5xx or 429): after an acceptance, a rejection or no answer at all."""
        return sum(
            max(0, count - 1 - self.retries_invited[key]) for key, count in self.posts.items()
        )

    def as_json(self) -> dict[str, int]:
        """Return the request counts served at ``/_ledger``."""
        return {
            "ping": self.requests["ping"],
            "post": self.requests["post"],
            "duplicate_posts": self.duplicate_posts,
        }


LEDGER = web.AppKey("ledger", Ledger)
RANDOM = web.AppKey("random", random.Random)
HANGING: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("hanging")


def is_loopback(host: str) -> bool:
    """Return whether host is a loopback address literal such as 127.0.0.1 or ::1."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Query parsing. Each parser raises ValueError with a message that reads after the parameter name.


def _parse_probability(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    # NaN fails this comparison too.
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a number between 0 and 1")
    return value


def _parse_delay_ms(raw: str) -> int:
    if not _INTEGER.fullmatch(raw.strip()):
        raise ValueError("must be a non-negative integer")
    value = int(raw)
    if value > MAX_DELAY_MS:
        raise ValueError(f"must be at most {MAX_DELAY_MS}")
    return value


def _parse_flag(raw: str) -> bool:
    if raw.strip() not in {"0", "1"}:
        raise ValueError("must be 0 or 1")
    return raw.strip() == "1"


def _to_cents(amount: str) -> int:
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _parse_amount(raw: str) -> tuple[int, int]:
    """Parse ``12.50`` or ``8-20`` into an inclusive range of cents."""
    match = _AMOUNT.fullmatch(raw)
    if match is None:
        raise ValueError("must be a non-negative amount such as 12.50 or a range such as 8-20")
    low = _to_cents(match.group(1))
    high = _to_cents(match.group(2)) if match.group(2) else low
    if low > high:
        raise ValueError(f"range must not start above its end, got {raw!r}")
    return low, high


def _parse_reason(raw: str) -> str:
    reason = raw.strip()
    if not reason:
        raise ValueError("must not be empty")
    if len(reason) > MAX_REASON_LENGTH:
        raise ValueError(f"must be at most {MAX_REASON_LENGTH} characters")
    return reason


class _QueryReader:
    """Read typed query parameters, collecting every error instead of stopping at the first."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self._query = query
        self.errors: dict[str, list[str]] = {}

    def read(self, name: str, parse: Callable[[str], _T], default: _T) -> _T:
        raw = self._query.get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.errors.setdefault(name, []).append(f"{name} {exc}")
            return default


def _parse_huge_kb(raw: str) -> int:
    if not _INTEGER.fullmatch(raw.strip()) or int(raw) > MAX_HUGE_KB:
        raise ValueError(f"must be an integer from 0 to {MAX_HUGE_KB}")
    return int(raw)


def _parse_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return raw


@dataclass(frozen=True)
class _Common:
    delay_ms: int
    fail: float
    hang: bool
    reason: str | None
    malformed: bool = False
    huge_kb: int = 0
    redirect: str = ""


def _read_common(reader: _QueryReader) -> _Common:
    return _Common(
        delay_ms=reader.read("delay_ms", _parse_delay_ms, 0),
        fail=reader.read("fail", _parse_probability, 0.0),
        hang=reader.read("timeout", _parse_flag, False),
        reason=reader.read("reason", _parse_reason, None),
        malformed=reader.read("malformed", _parse_flag, False),
        huge_kb=reader.read("huge_kb", _parse_huge_kb, 0),
        redirect=reader.read("redirect", _parse_url, ""),
    )


def _answer(common: _Common, body: dict[str, Any] | None) -> web.Response:
    """The response a buyer gives: its body, or one of the misbehaviours the query asked for."""
    if common.redirect:
        return web.Response(status=302, headers={"Location": common.redirect})
    if body is None:
        return _simulated_failure()
    if common.malformed:
        return web.Response(text="<html>Service Unavailable</html>{status: ok", status=200)
    if common.huge_kb:
        body = {**body, "padding": "x" * (common.huge_kb * 1024)}
    return web.json_response(body)


# Responses.


def _problem(
    *,
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    errors: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return web.json_response(
        body, status=status, content_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def _invalid_parameters(errors: dict[str, list[str]]) -> web.Response:
    return _problem(
        status=400,
        title="Invalid query parameters",
        detail="; ".join(message for messages in errors.values() for message in messages),
        type_=INVALID_PARAMETERS_TYPE,
        errors=errors,
    )


def _simulated_failure() -> web.Response:
    return web.json_response({"status": "error", "message": "simulated failure"}, status=500)


@web.middleware
async def _problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer aiohttp's own errors (unknown path, wrong method, huge body) as problem+json."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            detail = f"No simulated endpoint at {request.path}; try /ping, /post or /health."
        elif exc.status == 405:
            detail = f"{request.method} is not allowed on {request.path}; use GET or POST."
        else:
            detail = exc.reason
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _problem(status=exc.status, title=exc.reason, detail=detail, headers=allow)


async def _receive(request: web.Request, endpoint: str) -> tuple[str, str]:
    # Count on arrival, before validation or delay: the ledger answers "what did the platform send".
    return request.app[LEDGER].record(endpoint, await request.read(), url=str(request.rel_url))


async def _wait(request: web.Request, common: _Common) -> None:
    if common.hang:
        # aiohttp cancels this quietly when the client disconnects (handler_cancellation); the
        # set lets shutdown cancel it too instead of waiting out the grace period.
        hanging = request.app[HANGING]
        # aiohttp always runs handlers inside a task.
        task = cast("asyncio.Task[Any]", asyncio.current_task())
        hanging.add(task)
        try:
            await asyncio.sleep(HANG_SECONDS)
        finally:
            hanging.discard(task)
    elif common.delay_ms:
        await asyncio.sleep(common.delay_ms / 1000)


def _new_id(prefix: str) -> str:
    # Not drawn from the seeded generator: ids must stay unique when a seeded run is repeated.
    return f"{prefix}_{uuid.uuid4().hex}"


async def _ping(request: web.Request) -> web.Response:
    await _receive(request, "ping")
    reader = _QueryReader(request.query)
    common = _read_common(reader)
    decline = reader.read("decline", _parse_probability, 0.0)
    low, high = reader.read("bid", _parse_amount, (DEFAULT_BID_CENTS, DEFAULT_BID_CENTS))
    if reader.errors:
        return _invalid_parameters(reader.errors)

    # Decide on arrival so a seeded run depends on request order, not on timers.
    rng = request.app[RANDOM]
    if rng.random() < common.fail:
        body = None
    elif rng.random() < decline:
        body = {"status": "decline", "reason": common.reason or rng.choice(REASONS)}
    else:
        body = {"status": "bid", "price": rng.randint(low, high) / 100, "bid_id": _new_id("bid")}

    await _wait(request, common)
    return _answer(common, body)


async def _post(request: web.Request) -> web.Response:
    key = await _receive(request, "post")
    reader = _QueryReader(request.query)
    common = _read_common(reader)
    accept = reader.read("accept", _parse_probability, 1.0)
    price = reader.read("price", _parse_amount, None)
    if reader.errors:
        return _invalid_parameters(reader.errors)

    rng = request.app[RANDOM]
    body: dict[str, Any] | None
    if rng.random() < common.fail:
        body = None
    elif rng.random() < accept:
        body = {"status": "accepted"}
        # Many real buyers do not echo the price on acceptance; only say it when asked to.
        if price is not None:
            body["price"] = rng.randint(*price) / 100
        body["lead_id"] = _new_id("lead")
    else:
        body = {"status": "rejected", "reason": common.reason or rng.choice(REASONS)}

    await _wait(request, common)
    response = _answer(common, body)
    request.app[LEDGER].answered(key, response.status)
    return response


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ledger(request: web.Request) -> web.Response:
    return web.json_response(request.app[LEDGER].as_json())


async def _cancel_hanging(app: web.Application) -> None:
    for task in list(app[HANGING]):
        task.cancel()


def build_app(*, seed: int | None = None) -> web.Application:
    """Return the simulator application; the same seed and request order replay the same answers."""
    app = web.Application(middlewares=[_problem_middleware])
    app[RANDOM] = random.Random(seed)
    app[LEDGER] = Ledger()
    app[HANGING] = set()
    app.on_shutdown.append(_cancel_hanging)
    for path, handler in (
        ("/ping", _ping),
        ("/post", _post),
        ("/health", _health),
        ("/_ledger", _ledger),
    ):
        app.router.add_get(path, handler, allow_head=False)
        app.router.add_post(path, handler)
    return app


# Serving.


def run_event_loop(main: Awaitable[_T]) -> _T:
    """Run a coroutine to completion on uvloop when it is installed (about twice the throughput)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type]


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_started: Callable[[str], None],
) -> None:
    """Serve app on host:port until stop is set, reporting the bound base URL once listening."""
    runner = web.AppRunner(
        app,
        access_log=None,
        # Drop the handler when its client gives up, so hanging requests do not pile up.
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_address=True)
        await site.start()
        # Port 0 asks the kernel for a free port; report the one actually bound.
        on_started(_base_url(host, runner.addresses[0][1]))
        await stop.wait()
    finally:
        await runner.cleanup()


def run(
    host: str,
    port: int,
    *,
    seed: int | None = None,
    on_started: Callable[[str], None] | None = None,
) -> None:
    """Serve the simulator in this (main) thread until SIGINT or SIGTERM."""
    if not is_loopback(host):
        raise ValueError(f"The buyer simulator only listens on loopback addresses, not {host!r}.")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Stop through an event rather than task cancellation so shutdown runs uncancelled.
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await _serve(
                build_app(seed=seed),
                host=host,
                port=port,
                stop=stop,
                on_started=on_started or (lambda _url: None),
            )
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    run_event_loop(serve())


class SimulatorThread:
    """Serve the simulator on 127.0.0.1 from a background thread with its own event loop.

    ``with SimulatorThread(seed=1) as sim: requests.get(f"{sim.base_url}/ping", timeout=5)``
    """

    def __init__(self, *, port: int = 0, seed: int | None = None) -> None:
        self.app = build_app(seed=seed)
        self._port = port
        self._base_url: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: Exception | None = None

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:<port>`` while running."""
        if self._base_url is None:
            raise RuntimeError("The simulator is not running.")
        return self._base_url

    @property
    def ledger(self) -> Ledger:
        """Return the live ledger, including body sizes that ``/_ledger`` does not show."""
        return self.app[LEDGER]

    def start(self) -> SimulatorThread:
        """Start serving and return once the port is bound; raise if binding failed."""
        if self._thread is not None:
            raise RuntimeError("A SimulatorThread can be started only once.")
        self._thread = threading.Thread(target=self._run, name="buyer-simulator", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving, cancel requests still in flight and wait for the thread to finish."""
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._base_url = None
        if self._error is not None:
            raise self._error

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        # The loop runner also cancels and awaits whatever handlers are left when serving ends.
        run_event_loop(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await _serve(
                self.app,
                host=LOOPBACK,
                port=self._port,
                stop=self._stop,
                on_started=self._on_started,
            )
        except Exception as exc:  # handed to the thread that called start() or stop()
            self._error = exc
        finally:
            self._started.set()

    def _on_started(self, base_url: str) -> None:
        self._base_url = base_url
        self._started.set()
