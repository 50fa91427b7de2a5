"""Plumbing shared by the fake buyers of this package's `_b` modules: a real HTTP server on
127.0.0.1 (a free port), run in a thread, that hands each request to the fake and records it.

A fake subclasses `FakeBuyer`, implements `answer(request) -> Answer`, and is used as a context
manager: `with NovoPartnerLead(api_key="k") as buyer: requests.post(buyer.url(), ...)`. Every
request and the answer it got is kept in `buyer.received`, in arrival order.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"
# A bound on what a fake reads, so a runaway client cannot exhaust the test process.
MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One request as the fake received it. Header names are lower case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def media_type(self) -> str:
        """The Content-Type without its parameters, lower case ("" when absent)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"').lower()
        return ""

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The x-www-form-urlencoded body, every value of every field, blanks kept."""
        return parse_qs(self.text, keep_blank_values=True)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    @classmethod
    def xml(cls, text: str, status: int = 200, content_type: str = "text/xml") -> Answer:
        return cls(status, text.encode("utf-8"), f"{content_type}; charset=utf-8")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Answer:
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8")


@dataclass(frozen=True)
class Received:
    """A request and the answer the fake gave it."""

    request: Request
    answer: Answer

    @property
    def status(self) -> int:
        return self.answer.status


class FakeBuyer:
    """A buyer's endpoint on 127.0.0.1, started and stopped by `with`."""

    path: ClassVar[str] = "/"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def answer(self, request: Request) -> Answer:
        raise NotImplementedError

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use it in a with block.")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str | None = None) -> str:
        """The endpoint's URL (the spec's own path unless another is given)."""
        return f"{self.base_url}{self.path if path is None else path}"

    @property
    def requests(self) -> list[Request]:
        return [received.request for received in self.received]

    def _record(self, request: Request) -> Answer:
        # One request at a time: fakes keep state (issued ids, seen leads) between requests.
        with self._lock:
            try:
                answer = self.answer(request)
            except Exception as exc:
                # A bug in a fake must show in the test, not as a connection dropped mid-request.
                answer = Answer.text(f"{type(self).__name__} failed: {exc!r}", status=599)
            self.received.append(Received(request, answer))
        return answer

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                split = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self._read_body(),
                )
                answer = fake._record(request)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.body)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)[:MAX_BODY_BYTES]
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                return self.rfile.read(length)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        server.daemon_threads = True
        self._server = server
        # A short poll keeps stopping quick: tests start and stop a fake each.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
