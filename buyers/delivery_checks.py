"""Checks of a contract's delivery that only the engine can make: whether its request templates
render and its response paths read (routing/templating.py, routing/responses.py).

Routing registers them when it loads (routing/apps.py), so that every save of an endpoint or a
response rule runs them, from the admin, a preset or anywhere else that calls `full_clean()`,
while buyers imports nothing of routing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Each check takes the row and returns its problems by field name ({} when none).
Check = Callable[[Any], dict[str, str]]
_checks: dict[str, list[Check]] = {"endpoint": [], "rule": []}
# While set, problems are collected here (with the row) instead of failing the row's validation.
_deferred: ContextVar[list[tuple[Any, dict[str, str]]] | None] = ContextVar(
    "delivery_checks_deferred", default=None
)


def delivery_check_register(kind: str, check: Check) -> None:
    """Run `check` on every endpoint (`kind="endpoint"`) or response rule (`"rule"`) saved."""
    if check not in _checks[kind]:
        _checks[kind].append(check)


def delivery_check(kind: str, row: Any) -> dict[str, str]:
    """The problems the registered checks find with the row, by field name; none while
    deferred (`delivery_checks_deferred`), which collects them instead."""
    problems: dict[str, str] = {}
    for check in _checks[kind]:
        for name, problem in check(row).items():
            problems.setdefault(name, problem)
    deferred = _deferred.get()
    if deferred is not None and problems:
        deferred.append((row, problems))
        return {}
    return problems


@contextmanager
def delivery_checks_deferred() -> Iterator[list[tuple[Any, dict[str, str]]]]:
    """Save rows whose templates or paths do not check out yet, collecting their problems: a
    preset written for another vertical's fields is saved, and its contract paused until ops
    have fitted it."""
    found: list[tuple[Any, dict[str, str]]] = []
    token = _deferred.set(found)
    try:
        yield found
    finally:
        _deferred.reset(token)
