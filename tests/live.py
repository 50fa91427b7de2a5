"""The project served on 127.0.0.1 for one test, on a real socket.

pytest-django's live_server is started once per session, before a test's settings apply, and
Django's security middleware reads them when it starts: tests that change them start their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_django.live_server_helper import LiveServer


@contextmanager
def live_server() -> Iterator[LiveServer]:
    server = LiveServer("127.0.0.1")
    try:
        yield server
    finally:
        # Each request thread closes its database connection when its socket closes, a moment
        # after the client is done: let them finish before the server stops sharing SQLite's
        # in-memory connection, and before PostgreSQL's test database is dropped.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            "process_request_thread" in thread.name for thread in threading.enumerate()
        ):
            time.sleep(0.05)
        server.stop()
