"""Races on real connections: many threads, each on a database connection of its own, released
together once every one of them is ready."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")
Go = Callable[[], None]  # what a racer calls when it is ready


def all_at_once(count: int, call: Callable[[int, Go], T], *, who: str = "a racer") -> list[T]:
    """Run `call(n, go)` for n in range(count), each in a thread of its own; each calls `go()`
    when ready (connected, its rows loaded), which waits until all are. Return the results in
    order; fail on any exception, or on a thread still running after 90 s (a deadlock)."""
    barrier = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def go() -> None:
        barrier.wait(timeout=30)

    def run(n: int) -> None:
        try:
            results[n] = call(n, go)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,), name=f"racer-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), f"{who} hung (deadlock?)"
    assert errors == []
    return results  # type: ignore[return-value]  # every one was set: no errors
