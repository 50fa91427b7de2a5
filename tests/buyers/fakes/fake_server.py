"""What every fake buyer shares: a real HTTP server on 127.0.0.1 in a thread, a record of what it
received, the ping ids it issued, and the rules of a campaign's fields (the formats those rules
check are in `formats`).

A fake is a `FakeBuyer` subclass that turns a `Request` into an `Answer` in `answer`; it runs
for the length of a `with` block, on a port of its own, and answers one request at a time (fakes
keep state between requests):

    with LeadProsperFake() as buyer:
        requests.post(buyer.url("/ping"), json={...})
        assert buyer.received[0].status == 200
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypedDict
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import requests
from defusedxml import ElementTree

from tests.buyers.fakes.formats import FORM, JSON

if TYPE_CHECKING:
    from decimal import Decimal

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
        """Return the body parsed as JSON; ValueError when it is not JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The x-www-form-urlencoded body, every value of every field, blanks kept (empty when
        the body is not a form)."""
        if self.media_type != FORM:
            return {}
        return parse_qs(self.text, keep_blank_values=True)


@dataclass(frozen=True)
class Answer:
    """What the fake sends back."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(payload).encode(), f"{JSON}; charset=utf-8")

    @classmethod
    def xml(cls, text: str, status: int = 200, content_type: str = "text/xml") -> Answer:
        return cls(status, text.encode("utf-8"), f"{content_type}; charset=utf-8")

    @classmethod
    def xml_elements(cls, root: str, elements: Mapping[str, Any], status: int = 200) -> Answer:
        """An XML answer: one element per item under `root`, in order; None leaves it out."""
        return cls.xml(xml_document(root, elements), status, content_type="application/xml")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Answer:
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8")


@dataclass(frozen=True)
class Received:
    """One exchange: the request and the answer the fake gave it."""

    request: Request
    answer: Answer

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def status(self) -> int:
        return self.answer.status

    @property
    def answer_body(self) -> str:
        return self.answer.body.decode("utf-8")


def xml_document(root: str, elements: Mapping[str, Any]) -> str:
    """Return `<?xml ...?><root><name>value</name>...</root>`; a dict value nests, None is left
    out, a list repeats its element."""

    def render(name: str, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, list):
            return "".join(render(name, item) for item in value)
        if isinstance(value, Mapping):
            inner = "".join(render(key, item) for key, item in value.items())
            return f"<{name}>{inner}</{name}>"
        return f"<{name}>{escape(str(value))}</{name}>"

    return '<?xml version="1.0" encoding="UTF-8"?>\n' + render(root, dict(elements)) + "\n"


class PingBook:
    """The ping ids a fake issued: each one may be posted once, within `ttl_s` seconds.

    `clock` is injectable so tests can expire an id without sleeping.
    """

    def __init__(self, *, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._issued: dict[str, tuple[float, dict[str, Any]]] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def issue(self, ping_id: str, **facts: Any) -> str:
        """Record a new ping id with what the fake wants to remember of it (its price...)."""
        with self._lock:
            self._issued[ping_id] = (self.clock(), facts)
        return ping_id

    def redeem(self, ping_id: str) -> tuple[str, dict[str, Any]]:
        """Spend a ping id: return ("ok", facts), or ("unknown" | "expired" | "used", {})."""
        with self._lock:
            if ping_id not in self._issued:
                return "unknown", {}
            if ping_id in self._used:
                return "used", {}
            issued_at, facts = self._issued[ping_id]
            if self.clock() - issued_at > self.ttl_s:
                return "expired", {}
            self._used.add(ping_id)
            return "ok", facts

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)


class FakeBuyer:
    """A buyer's endpoint on 127.0.0.1, started and stopped by `with`: subclasses answer in
    `answer`; `received` lists every exchange in arrival order."""

    path: ClassVar[str] = "/"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)

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

    def requests_to(self, path: str) -> list[Received]:
        """The exchanges at one path, in order."""
        return [exchange for exchange in self.received if exchange.path == path]

    def next_number(self) -> int:
        """A number no other answer of this fake has used (for lead and ping ids)."""
        return next(self._ids)

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


class PingPostBehaviour(TypedDict, total=False):
    """What a test may ask of any ping/post fake (see `PingPostFake`)."""

    price: Decimal
    decline: bool | str | None
    reject_post: str | None
    ping_ttl_s: float
    clock: Callable[[], float]


class PingPostFake(FakeBuyer):
    """A ping/post buyer's behaviour per test: its bid (`price`), `decline` (refuse pings; a
    text where the buyer gives a reason), `reject_post` (refuse posts with this text), the ping
    ids it issued, valid for `ping_ttl_s` by `clock`, and the leads it bought (a post whose phone
    or e-mail one of them has is a duplicate, for the buyers that say so). A fake bids its
    spec's example price unless a test names another."""

    default_price: ClassVar[Decimal]

    def __init__(
        self,
        *,
        price: Decimal | None = None,
        decline: bool | str | None = None,
        reject_post: str | None = None,
        ping_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.price = self.default_price if price is None else price
        self.decline = decline
        self.reject_post = reject_post
        self.pings = PingBook(ttl_s=ping_ttl_s, clock=clock)
        self.accepted: list[dict[str, Any]] = []

    def accept_unless_duplicate(
        self, fields: Mapping[str, Any], *, phone: str, email: str, keep: bool = True
    ) -> bool:
        """Record a bought lead (when `keep`); False when an earlier one has its phone or e-mail."""
        if any(
            lead[phone] == fields[phone] or lead[email] == fields[email] for lead in self.accepted
        ):
            return False
        if keep:
            self.accepted.append(dict(fields))
        return True


class ManualClock:
    """A fake's clock that a test moves on, to expire its ping ids without sleeping."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def xml_fields(response: requests.Response) -> dict[str, str]:
    """The elements of an XML `<response>` answer, by tag (a flat one, as portals give)."""
    root = ElementTree.fromstring(response.content)
    assert root.tag == "response"
    return {child.tag: child.text or "" for child in root}


# What `field_problems` says of a field that is required but absent or blank, and of a value that
# is not one of the field's choices (a check's own text says anything else).
ABSENT = "absent"
NOT_ALLOWED = "not an allowed value"


@dataclass
class FieldRule:
    """One field of a buyer's campaign: when it is required, and what a value must look like.

    `check` returns an error text for a bad value, or None.
    """

    name: str
    ping: bool = False
    post: bool = False
    check: Callable[[Any], str | None] | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)

    def required_for(self, kind: str) -> bool:
        return self.ping if kind == "ping" else self.post

    def problem(self, value: Any) -> str | None:
        """Return what is wrong with a present value, or None."""
        if self.choices and value not in self.choices:
            return NOT_ALLOWED
        return self.check(value) if self.check else None


def field_problems(
    rules: Iterable[FieldRule], fields: Mapping[str, Any], kinds: tuple[str, ...]
) -> Iterator[tuple[str, str]]:
    """Yield each field a request of these kinds (ping, post) gets wrong, in the rules' order,
    with what is wrong: `ABSENT`, `NOT_ALLOWED` or its check's text. Each buyer words these its
    own way."""
    for rule in rules:
        value = fields.get(rule.name)
        if value is None or value == "":
            if any(rule.required_for(kind) for kind in kinds):
                yield rule.name, ABSENT
            continue
        why = rule.problem(value)
        if why:
            yield rule.name, why
