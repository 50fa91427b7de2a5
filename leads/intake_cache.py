"""A per-process cache of what every intake request reads: API keys and allowed verticals.

Each intake request would otherwise spend two ORM queries (a quarter of its CPU, measured) on
rows that change a few times a day. Entries are kept per process under a generation token held
in the shared cache (Redis in production): any save of a source, key, vertical or field, a key
revocation or a change of a source's verticals replaces the token, so every process drops its
copies at its next request. One cache GET per request checks the token (a request reads it
once, however many entries it looks up); entries also expire
after a minute, which bounds changes made outside Django (raw SQL). Without a shared cache
(the embedded default) nothing is cached: a revocation must reach every web worker at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache

from config.cache import CACHE_DOWN

logger = logging.getLogger(__name__)
GENERATION_KEY = "intake:generation"
ENTRY_SECONDS = 60.0
MISSING = object()

_entries: dict[tuple[Any, ...], tuple[str, float, Any]] = {}
_lock = threading.Lock()
# The token as the current request read it (None until its first read); only inside a request.
_request = threading.local()


def request_started(**kwargs: object) -> None:
    _request.token = None
    _request.active = True


def request_finished(**kwargs: object) -> None:
    _request.active = False
    _request.token = None


def generation() -> str | None:
    """Return the current token (created on first use, and again after a cache flush), or None
    while the shared cache cannot be reached: then nothing is served from the local copies."""
    if getattr(_request, "active", False) and _request.token is not None:
        return _request.token
    token = _read_generation()
    if getattr(_request, "active", False):
        _request.token = token
    return token


def _read_generation() -> str | None:
    try:
        token = cache.get(GENERATION_KEY)
        if token is None:
            cache.add(GENERATION_KEY, secrets.token_hex(8), timeout=None)
            token = cache.get(GENERATION_KEY)
    except CACHE_DOWN:
        logger.warning("the shared cache is down: intake reads keys and verticals afresh")
        return None
    return token


def invalidate() -> None:
    """Make every process forget its cached keys and verticals."""
    clear_local()
    try:
        cache.set(GENERATION_KEY, secrets.token_hex(8), timeout=None)
    except CACHE_DOWN:
        # Other processes read afresh while the cache is down; once it is back, their copies
        # may lag this change by at most ENTRY_SECONDS.
        logger.warning("the shared cache is down: other processes may keep cached entries")


def _shared() -> bool:
    # A process-local cache (the embedded default) cannot tell one web worker that another
    # revoked a key: without a shared one, every request reads the database.
    return not isinstance(caches["default"], LocMemCache)


def cached(key: tuple[Any, ...], token: str | None, load: Callable[[], Any]) -> Any:
    """Return the value cached under key for this token, loading it when absent or stale."""
    if token is None or not _shared():
        return load()
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key)
    if entry is not None and entry[0] == token and entry[1] > now:
        return entry[2]
    value = load()
    with _lock:
        if len(_entries) > 10_000:  # unknown keys from a scanner must not grow it forever
            _entries.clear()
        _entries[key] = (token, now + ENTRY_SECONDS, value)
    return value


def clear_local() -> None:
    _request.token = None
    with _lock:
        _entries.clear()
