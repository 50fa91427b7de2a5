"""A partner's endpoint on 127.0.0.1 (a postback receiver, a Slack webhook): answers each request
with the next status it is given, and records what it received.

`receiving()` runs one for the length of a block; the `start_receiver` fixture (tests/conftest.py)
runs any number until the test ends. `raw_server()` answers one connection with bytes as written,
for answers no HTTP server would give.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    # The body of an answer of 400 or more (Slack answers a removed webhook with "no_service").
    error_body: str = "ok"
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def bodies(self) -> list[str]:
        return [request["body"] for request in self.received]

    @property
    def messages(self) -> list[Any]:
        """The JSON documents received (a Slack webhook's messages), in order."""
        return [json.loads(body) for body in self.bodies]

    def url(self, path: str = "/hook", *, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def next_status(self) -> int:
        # The last status repeats once the others are used up.
        with self.lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@contextmanager
def receiving(
    *statuses: int, delay_s: float = 0.0, error_body: str = "ok", keep_alive: bool = False
) -> Iterator[Receiver]:
    """Run a receiver answering `statuses` in turn (200 by default) until the block ends;
    `keep_alive` keeps each connection open for the client's next request (HTTP/1.1)."""
    state = Receiver(statuses=list(statuses or (200,)), delay_s=delay_s, error_body=error_body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.received.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body.decode(),
                    "peer": self.client_address[1],  # the client's port: one per connection
                }
            )
            time.sleep(state.delay_s)
            status = state.next_status()
            text = state.error_body if status >= 400 else "ok"
            answer = (
                b"" if status in (204, 304) else text.encode()
            )  # HTTP forbids a body with these
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:  # the client gave up waiting (a test of timeouts)
                self.close_connection = True

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """Yield the port of a server on 127.0.0.1 that accepts one connection, reads the request and
    hands the connection to `answer`, which writes what it likes."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                answer(connection)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield server.getsockname()[1]
        finally:
            thread.join(timeout=5)
