"""Which timeout bounds an outbound request, against real slow servers on 127.0.0.1: connecting by
the connect timeout, the whole answer by the read timeout alone, everything by the batch's
deadline. Bounds are generous: the machine is shared; what is tested is which timeout applied."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from outbound import http
from tests.outbound.receiver import raw_server, receiving


@contextmanager
def trickling_server(*, every_s: float, length: int) -> Iterator[int]:
    """Answer at once with headers, then one byte of the body every `every_s` seconds."""
    stop = threading.Event()

    def trickle(connection: socket.socket) -> None:
        connection.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
        for _ in range(length):
            if stop.wait(every_s):
                return
            try:
                connection.sendall(b"x")
            except OSError:
                return

    with raw_server(trickle) as port:
        try:
            yield port
        finally:
            stop.set()


def timed_send(url: str, timeout: tuple[float, float]) -> tuple[http.Outcome, float]:
    started = time.monotonic()
    outcome = http.send("POST", url, body=b'{"zip": "60601"}', timeout=timeout)
    return outcome, time.monotonic() - started


def test_the_read_timeout_alone_bounds_the_wait_for_the_answer():
    with receiving(200, delay_s=1.0) as receiver:
        outcome, elapsed = timed_send(receiver.url(), timeout=(1.0, 0.3))

    assert outcome.status is None
    assert (outcome.timed_out, outcome.ambiguous) == (True, True)
    assert outcome.error == "no answer in time: the read timeout (0.3 s)"
    assert 0.25 <= elapsed < 0.8  # not connect + read (1.3 s), which would have let it answer
    assert len(receiver.received) == 1


def test_the_read_timeout_bounds_the_whole_answer_not_each_pause_in_it():
    with trickling_server(every_s=0.1, length=30) as port:
        outcome, elapsed = timed_send(f"http://127.0.0.1:{port}/lead", timeout=(1.0, 0.3))

    assert outcome.status is None
    assert outcome.timed_out
    assert elapsed < 0.8


def test_an_answer_arriving_in_pieces_is_read_whole():
    with trickling_server(every_s=0.02, length=10) as port:
        outcome, _ = timed_send(f"http://127.0.0.1:{port}/lead", timeout=(1.0, 3.0))

    assert (outcome.status, outcome.body) == (200, "x" * 10)


def test_an_answer_within_the_read_timeout_is_read():
    with receiving(200, delay_s=0.1) as receiver:
        outcome, _ = timed_send(receiver.url(), timeout=(1.0, 2.0))

    assert (outcome.status, outcome.body, outcome.error) == (200, "ok", "")


def test_a_pooled_connection_is_bounded_by_the_read_timeout_too():
    with receiving(200, keep_alive=True) as receiver:
        first, _ = timed_send(receiver.url(), timeout=(1.0, 0.3))
        receiver.delay_s = 1.0
        second, elapsed = timed_send(receiver.url(), timeout=(1.0, 0.3))

    assert first.status == 200
    # The second request reused the connection.
    assert receiver.received[0]["peer"] == receiver.received[1]["peer"]
    assert (second.status, second.timed_out, second.ambiguous) == (None, True, True)
    assert elapsed < 0.8


def test_connecting_is_bounded_by_the_connect_timeout_and_sends_nothing():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)  # never accepted: once its one slot is taken, connecting hangs
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            outcome, elapsed = timed_send(f"http://127.0.0.1:{port}/lead", timeout=(0.3, 5.0))

    assert outcome.status is None
    assert outcome.error.startswith("connect timeout")
    assert (outcome.timed_out, outcome.ambiguous) == (True, False)
    assert elapsed < 1.5


def test_the_batchs_deadline_still_bounds_every_request():
    with receiving(200, delay_s=1.0) as receiver:
        call = http._Call(method="POST", url=receiver.url(), timeout=(1.0, 5.0))
        started = time.monotonic()
        (outcome,) = http.send_all([call], deadline=started + 0.3)
        elapsed = time.monotonic() - started

    assert outcome.timed_out
    assert outcome.error == "no answer in time: the deadline"
    assert elapsed < 0.8
