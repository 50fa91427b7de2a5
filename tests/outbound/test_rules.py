"""The one rule for which failures are worth another try, and the backoff every loop waits by."""

from __future__ import annotations

import pytest

from outbound import rules
from outbound.rules import Outcome, backoff, retryable


@pytest.mark.parametrize(
    ("outcome", "transient"),
    [
        (Outcome(error="cannot connect: refused"), True),
        (Outcome(error="connect timeout", timed_out=True), True),
        (Outcome(status=408), True),
        (Outcome(status=429), True),
        (Outcome(status=500), True),
        (Outcome(status=503), True),
        (Outcome(status=400), False),
        (Outcome(status=404), False),
        (Outcome(status=302), False),
        (Outcome(error="refused: 10.0.0.1 is a private address", refused=True), False),
        (Outcome(error="no answer in time", ambiguous=True, timed_out=True), False),
    ],
)
def test_only_failures_that_may_pass_and_left_nothing_done_are_transient(outcome, transient):
    assert outcome.transient is transient


def test_a_failure_is_exactly_one_of_transient_ambiguous_or_permanent():
    for outcome in (
        Outcome(error="cannot connect"),
        Outcome(status=503),
        Outcome(status=404),
        Outcome(refused=True),
        Outcome(ambiguous=True),
    ):
        assert [outcome.transient, outcome.ambiguous, outcome.permanent].count(True) == 1


def test_an_ambiguous_failure_is_retried_only_by_a_call_that_may_arrive_twice():
    lost_answer = Outcome(ambiguous=True)

    assert retryable(lost_answer, idempotent=True)
    assert not retryable(lost_answer, idempotent=False)
    assert retryable(Outcome(status=502), idempotent=False)
    assert not retryable(Outcome(refused=True), idempotent=True)


@pytest.fixture
def highest(monkeypatch):
    """Make every random draw its upper bound: the waits are their ceilings."""
    monkeypatch.setattr(rules.random, "uniform", lambda low, high: high)


@pytest.fixture
def lowest(monkeypatch):
    monkeypatch.setattr(rules.random, "uniform", lambda low, high: low)


def test_the_ceiling_doubles_after_each_failed_try_up_to_the_cap(highest):
    # Postbacks: 2, 4, 8 … s; notifications: 10, 20, 40 … s; both capped at 5 minutes.
    assert [backoff(n, base_s=2, cap_s=300) for n in range(1, 10)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 300,
    ]  # fmt: skip
    assert [backoff(n, base_s=10, cap_s=300, jitter="full") for n in range(1, 7)] == [
        10, 20, 40, 80, 160, 300,
    ]  # fmt: skip


def test_equal_jitter_waits_at_least_half_the_ceiling_and_full_jitter_may_not_wait(lowest):
    assert backoff(3, base_s=0.2, cap_s=1.0) == pytest.approx(0.4)
    assert backoff(3, base_s=0.2, cap_s=1.0, jitter="full") == 0


def test_waits_spread_within_their_bounds():
    for attempt in range(1, 8):
        ceiling = min(300, 10 * 2 ** (attempt - 1))
        waits = [backoff(attempt, base_s=10, cap_s=300) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1
        full = [backoff(attempt, base_s=10, cap_s=300, jitter="full") for _ in range(50)]
        assert all(0 <= wait <= ceiling for wait in full)
