"""The one HTTP client for calls leaving the platform: a pooled aiohttp session on a long-lived
loop, behind the address guard.

Routing code is synchronous (the ORM), but its pings must go out in parallel and cheaply:
aiohttp costs about a fifth of the CPU per request of requests or httpx on this stack (README,
Benchmarks). So each process keeps one event loop in a daemon thread with one pooled session.
`send_all` hands it a batch of requests (a routing run's pings or posts) and blocks the calling
thread until every answer, error or deadline; `send` makes one request (a postback, a Slack
message) the same way. Many threads can use it at once.

Every name is resolved once, by the guard (outbound.guard.GuardedResolver), and aiohttp connects
to the very addresses the guard checked; redirects are never followed. Neither call raises: what
happened is an Outcome (outbound.rules), which also says whether another try may help.

A request's timeouts are the endpoint's as configured: getting a connection (pool, name, TCP,
TLS) is bounded by the connect timeout, and the wait for the whole answer (status, headers and
body) by the read timeout alone, counted from the moment the request has its connection and is
written. The batch's deadline bounds both.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from outbound.guard import ForbiddenAddressError, GuardedResolver, check_outbound_url
from outbound.rules import Outcome

MAX_BODY_BYTES = 64 * 1024


class Request(Protocol):
    """What the client needs of a request (routing.mapping.OutgoingRequest is one)."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def timeout(self) -> tuple[float, float]: ...  # connect, read (seconds)


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: tuple[float, float] = (2.0, 5.0)


def _text(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


@dataclass
class _AnswerClock:
    """The wait for one request's answer: read seconds from when it has its connection, never
    past the batch's deadline. Until then no timer runs: aiohttp's connect timeout bounds that."""

    deadline: asyncio.Timeout
    read_s: float
    latest: float  # the batch's deadline, in the loop's time
    by_batch: bool = False  # the batch's deadline comes before the read timeout

    def start(self, now: float) -> None:
        self.by_batch = self.latest < now + self.read_s
        self.deadline.reschedule(min(self.latest, now + self.read_s))


# The clock of the request the current task is making (each request of a batch is a task).
_answer_clock: ContextVar[_AnswerClock | None] = ContextVar("answer_clock", default=None)


class _Connector(aiohttp.TCPConnector):
    """Starts the wait for the answer when a request has its connection, new or pooled.

    aiohttp's own timeouts cannot say this: `total` counts the connecting too, and `sock_read`
    bounds each pause between bytes, not the whole answer. The request is written right after
    (a buyer's request is small), so this is when the buyer has it.
    """

    async def connect(
        self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        clock = _answer_clock.get()
        if clock is not None:
            clock.start(asyncio.get_running_loop().time())
        return connection


async def _read_body(content: aiohttp.StreamReader) -> bytes:
    """The answer's body up to MAX_BODY_BYTES (a read gives only what has arrived so far)."""
    body = await content.read(MAX_BODY_BYTES)
    while not content.at_eof() and len(body) < MAX_BODY_BYTES:
        chunk = await content.read(MAX_BODY_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    return body


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Client:
    def __init__(self, resolver: Callable[[], AbstractResolver] = GuardedResolver) -> None:
        self._resolver = resolver
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked Celery child must not use its parent's loop thread (it did not survive).
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                ready = threading.Event()
                self._loop = _new_loop()
                thread = threading.Thread(
                    target=self._run, args=(self._loop, ready), name="outbound-http", daemon=True
                )
                thread.start()
                ready.wait()
            return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        finally:
            ready.set()
        loop.run_forever()
        loop.close()  # stopped by close()

    async def _open(self) -> None:
        connector = _Connector(
            limit=0, limit_per_host=200, ttl_dns_cache=300, resolver=self._resolver()
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def _send(self, request: Request, deadline: float) -> Outcome:
        connect_s, read_s = request.timeout
        loop = asyncio.get_running_loop()
        budget = max(0.001, deadline - time.monotonic())
        latest = loop.time() + budget  # the loop's clock (uvloop keeps its own)
        # Getting a connection (pool, name, TCP, TLS): aiohttp's connect timeout, by the batch's
        # deadline at the latest. No total: the answer clock bounds the rest.
        connect = min(connect_s, budget)
        timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect)
        started = time.monotonic()
        sent = False
        clock: _AnswerClock | None = None
        session = self._session
        if session is None:  # closed (close()) while this request waited for the loop
            return self._failed(started, "the outbound client is closed")
        try:
            check_outbound_url(request.url)
            async with asyncio.timeout_at(None) as limit:  # _Connector starts it
                clock = _AnswerClock(deadline=limit, read_s=read_s, latest=latest)
                _answer_clock.set(clock)
                async with session.request(
                    request.method,
                    # encoded=True: send the URL byte for byte as it was built and logged.
                    URL(request.url, encoded=True),
                    data=request.body or None,
                    headers=request.headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    sent = True
                    raw = await _read_body(response.content)
                    return Outcome(
                        status=response.status,
                        body=_text(raw, response.charset),
                        latency_ms=round((time.monotonic() - started) * 1000),
                    )
        except aiohttp.ConnectionTimeoutError as exc:
            return self._failed(started, f"connect timeout: {exc}", timed_out=True)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            by_batch = clock is not None and clock.by_batch
            return self._timed_out(started, exc, read_s=read_s, by_batch=by_batch)
        except (ForbiddenAddressError, aiohttp.ClientConnectorError) as exc:
            return self._not_connected(started, exc)
        except (aiohttp.ClientError, ValueError) as exc:
            return self._client_error(started, exc, sent=sent)

    @classmethod
    def _timed_out(
        cls, started: float, exc: TimeoutError, *, read_s: float, by_batch: bool
    ) -> Outcome:
        # The request had its connection and went out (or may have): the other side may have
        # acted on it.
        bound = "the deadline" if by_batch else f"the read timeout ({read_s:g} s)"
        return cls._failed(
            started, f"no answer in time: {str(exc) or bound}", ambiguous=True, timed_out=True
        )

    @classmethod
    def _not_connected(
        cls, started: float, exc: ForbiddenAddressError | aiohttp.ClientConnectorError
    ) -> Outcome:
        # The guard raises for a literal address itself, and through aiohttp for a name.
        forbidden = exc if isinstance(exc, ForbiddenAddressError) else exc.os_error
        if isinstance(forbidden, ForbiddenAddressError):
            return cls._failed(started, f"refused: {forbidden}", refused=True)
        return cls._failed(started, f"cannot connect: {exc}")

    @classmethod
    def _client_error(
        cls, started: float, exc: aiohttp.ClientError | ValueError, *, sent: bool
    ) -> Outcome:
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
            return cls._failed(started, f"connection dropped: {exc}", ambiguous=True)
        if isinstance(exc, aiohttp.ClientResponseError):
            # An answer came but could not be read (it broke HTTP): the request went out.
            return cls._failed(started, f"unreadable answer: {exc}", ambiguous=True)
        if not sent and isinstance(
            exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError | ValueError
        ):
            # A URL aiohttp cannot call (no host, not http) or a header it cannot send: never
            # sent, and it would fail alike every time.
            return cls._failed(started, f"invalid request: {exc}", refused=True)
        return cls._failed(started, f"{type(exc).__name__}: {exc}", ambiguous=sent)

    @staticmethod
    def _failed(
        started: float,
        error: str,
        *,
        ambiguous: bool = False,
        timed_out: bool = False,
        refused: bool = False,
    ) -> Outcome:
        return Outcome(
            latency_ms=round((time.monotonic() - started) * 1000),
            error=error[:500],
            ambiguous=ambiguous,
            timed_out=timed_out,
            refused=refused,
        )

    async def _send_all(self, requests: Sequence[Request], deadline: float) -> list[Outcome]:
        return list(await asyncio.gather(*(self._send(r, deadline) for r in requests)))

    def send_all(self, requests: Sequence[Request], *, deadline: float) -> list[Outcome]:
        """Send every request in parallel; return their outcomes in order, by `deadline` at the
        latest (a time.monotonic() value)."""
        if not requests:
            return []
        future: Future[list[Outcome]] = asyncio.run_coroutine_threadsafe(
            self._send_all(requests, deadline), self.loop()
        )
        return future.result(timeout=max(0.0, deadline - time.monotonic()) + 5)

    def close(self) -> None:
        """Close the session and stop the loop (a process's own client lives as long as it)."""
        with self._lock:
            loop, session, self._loop, self._session = self._loop, self._session, None, None
        if loop is None:
            return
        if session is not None:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)


client = _Client()


def send_all(requests: Sequence[Request], *, deadline: float) -> list[Outcome]:
    """Send every request in parallel (each under its own connect and read timeouts, all by
    `deadline`, a time.monotonic() value); return their outcomes in order."""
    return client.send_all(requests, deadline=deadline)


def send(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: tuple[float, float],
) -> Outcome:
    """Make one request and wait for its outcome (`timeout`: connect, read seconds); never raise."""
    connect_s, read_s = timeout
    call = _Call(method=method, url=url, headers=dict(headers or {}), body=body, timeout=timeout)
    try:
        return client.send_all([call], deadline=time.monotonic() + connect_s + read_s)[0]
    except Exception as exc:  # the loop itself failed: an attempt that got no answer
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:500])
