"""One run at a time for periodic tasks: a lock in the shared cache.

Beat fires a sweeper every few seconds; a run that is slow (a backlog, a slow database) must not
be joined by the next one doing the same work twice. The lock lives as long as a task may (its
hard time limit, with a margin), so a slow run is never overlapped, and a run killed without
releasing it frees the lock when it expires.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import cache

MARGIN_S = 30


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
