"""The one HTTP client that talks to buyers: a pooled aiohttp session on a long-lived loop.

Routing code is synchronous (the ORM), but its pings must go out in parallel and cheaply:
aiohttp costs about a fifth of the CPU per request of requests or httpx on this stack (see
PERF-NOTES). So each process keeps one event loop in a daemon thread with one pooled session,
and `send_all` hands it a batch of requests and blocks the calling thread until every answer,
error or deadline. Many routing threads can use it at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import aiohttp
from yarl import URL

from routing.mapping import OutgoingRequest
from routing.netguard import ForbiddenAddressError, GuardedResolver, check_outbound_url

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class HttpResult:
    """What became of one request."""

    status: int | None = None
    body: str = ""
    latency_ms: int = 0
    error: str = ""
    # True when the request may have reached the buyer but no answer came (a read timeout or a
    # dropped connection after sending): a post must then not be blindly sent again.
    ambiguous: bool = False
    timed_out: bool = False
    # Never sent: the address is one the platform may not call (routing/netguard.py).
    refused: bool = False

    @property
    def transient(self) -> bool:
        """A failure worth retrying: nothing reached the buyer, or it said try again."""
        if self.ambiguous or self.refused:
            return False
        if self.status is None:
            return True
        return self.status >= 500 or self.status == 429


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Client:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        import os

        with self._lock:
            # A forked Celery child must not use its parent's loop thread (it did not survive).
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                ready = threading.Event()
                self._loop = _new_loop()
                thread = threading.Thread(
                    target=self._run, args=(self._loop, ready), name="buyer-http", daemon=True
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

    async def _open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=200, ttl_dns_cache=300, resolver=GuardedResolver()
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def _send(self, request: OutgoingRequest, deadline: float) -> HttpResult:
        connect_s, read_s = request.timeout
        budget = max(0.001, deadline - time.monotonic())
        timeout = aiohttp.ClientTimeout(
            total=min(budget, connect_s + read_s), sock_connect=min(connect_s, budget)
        )
        started = time.monotonic()
        sent = False
        try:
            check_outbound_url(request.url)
            async with self._session.request(
                request.method,
                # encoded=True: send the URL byte for byte as it was built and logged.
                URL(request.url, encoded=True),
                data=request.body or None,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                sent = True
                raw = await response.content.read(MAX_BODY_BYTES)
                return HttpResult(
                    status=response.status,
                    body=raw.decode(response.charset or "utf-8", errors="replace"),
                    latency_ms=round((time.monotonic() - started) * 1000),
                )
        except aiohttp.ConnectionTimeoutError as exc:
            return self._failed(started, f"connect timeout: {exc}", timed_out=True)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            # The request went out (or may have): the buyer may have acted on it.
            return self._failed(
                started, f"no answer in time: {exc or 'timeout'}", ambiguous=True, timed_out=True
            )
        except (ForbiddenAddressError, aiohttp.ClientConnectorError) as exc:
            return self._not_connected(started, exc)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            return self._failed(started, f"connection dropped: {exc}", ambiguous=True)
        except aiohttp.ClientError as exc:
            return self._failed(started, f"{type(exc).__name__}: {exc}", ambiguous=sent)

    @classmethod
    def _not_connected(
        cls, started: float, exc: ForbiddenAddressError | aiohttp.ClientConnectorError
    ) -> HttpResult:
        # The guard raises for a literal address itself, and through aiohttp for a name.
        forbidden = exc if isinstance(exc, ForbiddenAddressError) else exc.os_error
        if isinstance(forbidden, ForbiddenAddressError):
            return cls._failed(started, f"refused: {forbidden}", refused=True)
        return cls._failed(started, f"cannot connect: {exc}")

    @staticmethod
    def _failed(started: float, error: str, **flags: bool) -> HttpResult:
        return HttpResult(
            latency_ms=round((time.monotonic() - started) * 1000), error=error[:500], **flags
        )

    async def _send_all(
        self, requests: Sequence[OutgoingRequest], deadline: float
    ) -> list[HttpResult]:
        return list(await asyncio.gather(*(self._send(r, deadline) for r in requests)))

    def send_all(self, requests: Sequence[OutgoingRequest], *, deadline: float) -> list[HttpResult]:
        """Send every request in parallel; return their results in order, by `deadline` at the
        latest (a time.monotonic() value)."""
        if not requests:
            return []
        future: Future = asyncio.run_coroutine_threadsafe(
            self._send_all(requests, deadline), self.loop()
        )
        return future.result(timeout=max(0.0, deadline - time.monotonic()) + 5)


client = _Client()


def send_all(requests: Sequence[OutgoingRequest], *, deadline: float) -> list[HttpResult]:
    return client.send_all(requests, deadline=deadline)
