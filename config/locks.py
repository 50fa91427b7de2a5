"""One run at a time for periodic tasks: a lock in the shared cache.

Beat fires a sweeper every few seconds; a run that is slow (a backlog, a slow database) must not
be joined by the next one doing the same work twice. The lock lives as long as a task may (its
hard time limit, with a margin), so a slow run is never overlapped, and a run killed without
releasing it frees the lock when it expires.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.core.cache import cache

MARGIN_S = 30

P = ParamSpec("P")
T = TypeVar("T")


@contextmanager
def run_alone(name: str) -> Iterator[bool]:
    """Yield True holding the lock `name` for the block, or False when another run holds it."""
    key = f"lock:{name}"
    if not cache.add(key, 1, timeout=settings.CELERY_TASK_TIME_LIMIT + MARGIN_S):
        yield False
        return
    try:
        yield True
    finally:
        cache.delete(key)


def one_at_a_time(*, skipped: T) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Run the decorated periodic task under `run_alone`, its lock named after the function; a
    run that finds the lock held does nothing and returns `skipped`."""

    def decorate(func: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with run_alone(func.__name__) as alone:
                return func(*args, **kwargs) if alone else skipped

        return run

    return decorate
