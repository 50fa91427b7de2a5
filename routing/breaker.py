"""A circuit breaker per contract, as a pure state machine (no database, no clock).

Closed: requests flow; consecutive failures, or consecutive pings slower than the latency limit,
open it. Open: nothing is sent until the cool-down has passed; then one probe may go out
(`begin_probe` moves the breaker to half-open, so concurrent workers see the probe is taken).
Half-open: the probe's answer decides; success closes, failure re-opens with the cool-down
doubled, up to a ceiling. Ops may open or close it by hand; a breaker opened by hand stays open
until closed by hand, whatever probes would say.

Every function takes the state and returns a new one; the caller stores it. `BreakerState` is
plain data: `as_dict`/`from_dict` round-trip it through JSON or table columns. Times are epoch
seconds (time.time()), so a stored state means the same thing to every worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any, Literal


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5  # consecutive failed pings or posts that open the breaker
    latency_limit_ms: int = 200
    slow_threshold: int = 10  # consecutive pings over the latency limit that open it
    cool_down_s: float = 60.0  # the first wait before a probe; doubles on each failed probe
    max_cool_down_s: float = 900.0
    # A probe whose answer never comes (a worker died) must not hold the breaker half-open
    # forever: after this long another probe may go.
    probe_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.slow_threshold < 1:
            raise ValueError("Thresholds must be at least 1.")
        if self.latency_limit_ms < 0:
            raise ValueError("The latency limit cannot be negative.")
        if not 0 < self.cool_down_s <= self.max_cool_down_s:
            raise ValueError("The cool-down must be above 0 and not above its ceiling.")
        if self.probe_timeout_s <= 0:
            raise ValueError("The probe timeout must be above 0.")


DEFAULT_CONFIG = BreakerConfig()


@dataclass(frozen=True, slots=True)
class BreakerState:
    status: BreakerStatus = BreakerStatus.CLOSED
    failures: int = 0  # consecutive failures while closed
    slow_pings: int = 0  # consecutive pings over the latency limit while closed
    opened_at: float | None = None  # when it last opened (or re-opened after a failed probe)
    cool_down_s: float = 0.0  # the wait that applies to the current opening
    probe_started_at: float | None = None
    forced: bool = False  # opened by hand: only force_close closes it
    reason: str = ""  # why it is open, or how it last closed
    changed_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the state as JSON-ready plain values."""
        data = asdict(self)
        data["status"] = str(self.status)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakerState:
        """Rebuild a state from as_dict's output; missing keys take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "status" in values:
            values["status"] = BreakerStatus(values["status"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Transition:
    state: BreakerState
    opened: bool = False  # this step opened it (from closed, or again after a failed probe)
    closed: bool = False  # this step closed it
    reason: str = ""  # why, in plain words, when it opened or closed


def _cool_down_words(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} s"


def _open(state: BreakerState, *, now: float, cool_down_s: float, reason: str) -> Transition:
    opened = replace(
        state,
        status=BreakerStatus.OPEN,
        failures=0,
        slow_pings=0,
        opened_at=now,
        cool_down_s=cool_down_s,
        probe_started_at=None,
        reason=reason,
        changed_at=now,
    )
    return Transition(opened, opened=True, reason=reason)


def _close(state: BreakerState, *, now: float, reason: str) -> Transition:
    closed = BreakerState(reason=reason, changed_at=now)
    return Transition(closed, closed=True, reason=reason)


def record(
    state: BreakerState,
    *,
    ok: bool,
    latency_ms: int | None,
    kind: Literal["ping", "post"],
    now: float,
    config: BreakerConfig = DEFAULT_CONFIG,
) -> Transition:
    """Count one ping or post answer and return the new state, saying if it opened or closed.

    ok is whether the buyer answered usefully (a bid, a decline, an accepted or rejected post);
    a timeout, connection error or 5xx is not ok. Only pings count towards slowness: a post
    carries the whole lead and buyers take their time with it.
    """
    if kind not in {"ping", "post"}:
        raise ValueError(f"Unknown kind {kind!r}.")
    slow = kind == "ping" and latency_ms is not None and latency_ms > config.latency_limit_ms

    if state.status == BreakerStatus.OPEN:
        # A late answer to a request sent before it opened: only a probe may close it.
        return Transition(state)

    if state.status == BreakerStatus.HALF_OPEN:
        # Any answer in half-open is taken as the probe's: the breaker let only the probe out.
        if ok and not slow:
            return _close(state, now=now, reason=f"{kind} probe succeeded")
        why = (
            f"probe ping took {latency_ms} ms, over {config.latency_limit_ms} ms"
            if ok
            else f"{kind} probe failed"
        )
        cool_down = min(max(state.cool_down_s, config.cool_down_s) * 2, config.max_cool_down_s)
        return _open(
            state,
            now=now,
            cool_down_s=cool_down,
            reason=f"{why}; next probe in {_cool_down_words(cool_down)}",
        )

    failures = 0 if ok else state.failures + 1
    slow_pings = state.slow_pings
    if kind == "ping" and latency_ms is not None:
        # A ping with no measured latency (refused before any timing) says nothing about speed.
        slow_pings = slow_pings + 1 if slow else 0
    if failures >= config.failure_threshold:
        reason = f"{failures} consecutive failures"
        return _open(state, now=now, cool_down_s=config.cool_down_s, reason=reason)
    if slow_pings >= config.slow_threshold:
        reason = f"{slow_pings} consecutive pings over {config.latency_limit_ms} ms"
        return _open(state, now=now, cool_down_s=config.cool_down_s, reason=reason)
    return Transition(replace(state, failures=failures, slow_pings=slow_pings))


def allow(state: BreakerState, now: float, config: BreakerConfig = DEFAULT_CONFIG) -> bool:
    """Return whether a request may go to the contract now.

    Closed: yes. Open: no until the cool-down has passed, then yes for one probe, which the
    caller claims with begin_probe. Half-open: no, the probe is out, unless it has gone
    unanswered past the probe timeout. Opened by hand: never.
    """
    if state.status == BreakerStatus.CLOSED:
        return True
    if state.status == BreakerStatus.OPEN:
        if state.forced or state.opened_at is None:
            return False
        return now >= state.opened_at + state.cool_down_s
    if state.probe_started_at is None:
        return True
    return now >= state.probe_started_at + config.probe_timeout_s


def begin_probe(
    state: BreakerState, now: float, config: BreakerConfig = DEFAULT_CONFIG
) -> BreakerState:
    """Return the half-open state that claims the one probe; allow() must have said yes.

    Store it with a conditional update on the state read, so that two workers never both probe.
    """
    if state.status == BreakerStatus.CLOSED or not allow(state, now, config):
        raise ValueError("No probe is due: the breaker is closed, cooling down or held open.")
    return replace(state, status=BreakerStatus.HALF_OPEN, probe_started_at=now, changed_at=now)


def force_open(state: BreakerState, reason: str, now: float) -> Transition:
    """Open the breaker by hand; it stays open until force_close."""
    was_open = state.status == BreakerStatus.OPEN
    transition = _open(state, now=now, cool_down_s=state.cool_down_s, reason=reason)
    return replace(transition, state=replace(transition.state, forced=True), opened=not was_open)


def force_close(state: BreakerState, now: float) -> Transition:
    """Close the breaker by hand, forgetting its counts and its doubled cool-down."""
    if state.status == BreakerStatus.CLOSED:
        return Transition(replace(state, failures=0, slow_pings=0, forced=False))
    return _close(state, now=now, reason="closed by hand")
