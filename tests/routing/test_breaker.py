"""The per-contract circuit breaker as a state machine (no database, no clock)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.breaker import (
    BreakerConfig,
    BreakerState,
    BreakerStatus,
    Transition,
    allow,
    begin_probe,
    force_close,
    force_open,
    record,
)

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None)
CONFIG = BreakerConfig()
T0 = 1_700_000_000.0


def fail(state: BreakerState, now: float = T0, kind: str = "post") -> Transition:
    return record(state, ok=False, latency_ms=None, kind=kind, now=now, config=CONFIG)


def succeed(
    state: BreakerState, now: float = T0, kind: str = "post", latency_ms: int | None = 50
) -> Transition:
    return record(state, ok=True, latency_ms=latency_ms, kind=kind, now=now, config=CONFIG)


def failures(count: int, state: BreakerState | None = None, now: float = T0) -> Transition:
    transition = Transition(state or BreakerState())
    for _ in range(count):
        transition = fail(transition.state, now)
    return transition


def slow_pings(count: int, state: BreakerState | None = None, latency_ms: int = 350):
    transition = Transition(state or BreakerState())
    for _ in range(count):
        transition = succeed(transition.state, kind="ping", latency_ms=latency_ms)
    return transition


def probe(state: BreakerState, now: float, *, ok: bool, latency_ms: int | None = 50):
    assert allow(state, now, CONFIG)
    claimed = begin_probe(state, now, CONFIG)
    assert claimed.status == BreakerStatus.HALF_OPEN
    return record(claimed, ok=ok, latency_ms=latency_ms, kind="ping", now=now, config=CONFIG)


# --- Opening ---


def test_it_opens_on_the_fifth_consecutive_failure_and_says_why():
    four = failures(4)
    assert four.state.status == BreakerStatus.CLOSED
    assert not four.opened
    fifth = fail(four.state)
    assert fifth.opened
    assert fifth.state.status == BreakerStatus.OPEN
    assert fifth.reason == "5 consecutive failures"
    assert fifth.state.reason == "5 consecutive failures"


def test_a_success_resets_the_failure_count():
    state = failures(4).state
    state = succeed(state).state
    assert state.failures == 0
    assert failures(4, state).state.status == BreakerStatus.CLOSED


def test_pings_and_posts_both_count_as_failures():
    state = BreakerState()
    for kind in ["ping", "post", "ping", "post"]:
        state = fail(state, kind=kind).state
    assert fail(state, kind="ping").opened


def test_it_opens_on_ten_consecutive_slow_pings():
    nine = slow_pings(9)
    assert nine.state.status == BreakerStatus.CLOSED
    tenth = slow_pings(1, nine.state)
    assert tenth.opened
    assert tenth.reason == "10 consecutive pings over 200 ms"


def test_a_fast_ping_resets_the_slow_count_and_posts_never_count_towards_it():
    state = slow_pings(9).state
    state = succeed(state, kind="ping", latency_ms=200).state  # at the limit is not over it
    assert state.slow_pings == 0
    state = slow_pings(9, state).state
    for _ in range(20):
        state = succeed(state, kind="post", latency_ms=5000).state
    assert state.slow_pings == 9
    assert state.status == BreakerStatus.CLOSED


def test_a_slow_failed_ping_counts_as_slow_and_a_ping_without_latency_changes_nothing():
    state = slow_pings(8).state
    state = record(state, ok=False, latency_ms=900, kind="ping", now=T0, config=CONFIG).state
    assert state.slow_pings == 9
    state = record(state, ok=True, latency_ms=None, kind="ping", now=T0, config=CONFIG).state
    assert state.slow_pings == 9


def test_the_thresholds_come_from_the_config():
    config = BreakerConfig(failure_threshold=2, latency_limit_ms=50, slow_threshold=3)
    state = BreakerState()
    state = record(state, ok=False, latency_ms=None, kind="post", now=T0, config=config).state
    opened = record(state, ok=False, latency_ms=None, kind="post", now=T0, config=config)
    assert opened.reason == "2 consecutive failures"
    state = BreakerState()
    for _ in range(3):
        last = record(state, ok=True, latency_ms=60, kind="ping", now=T0, config=config)
        state = last.state
    assert last.reason == "3 consecutive pings over 50 ms"


def test_a_bad_config_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        BreakerConfig(failure_threshold=0)
    with pytest.raises(ValueError, match="cool-down"):
        BreakerConfig(cool_down_s=0)
    with pytest.raises(ValueError, match="cool-down"):
        BreakerConfig(cool_down_s=1000, max_cool_down_s=900)


# --- Open, probe, close ---


def test_allow_is_true_while_closed_and_false_while_cooling_down():
    assert allow(BreakerState(), T0, CONFIG)
    state = failures(5).state
    assert not allow(state, T0, CONFIG)
    assert not allow(state, T0 + 59.9, CONFIG)
    assert allow(state, T0 + 60, CONFIG)


def test_only_one_probe_goes_out_at_a_time():
    state = failures(5).state
    claimed = begin_probe(state, T0 + 60, CONFIG)
    assert claimed.status == BreakerStatus.HALF_OPEN
    assert not allow(claimed, T0 + 61, CONFIG)
    with pytest.raises(ValueError, match="No probe is due"):
        begin_probe(claimed, T0 + 61, CONFIG)


def test_a_probe_that_never_answers_lets_another_go_after_the_probe_timeout():
    claimed = begin_probe(failures(5).state, T0 + 60, CONFIG)
    assert not allow(claimed, T0 + 89.9, CONFIG)
    assert allow(claimed, T0 + 90, CONFIG)
    assert begin_probe(claimed, T0 + 90, CONFIG).probe_started_at == T0 + 90


def test_no_probe_is_claimed_while_closed_or_cooling_down():
    with pytest.raises(ValueError, match="No probe is due"):
        begin_probe(BreakerState(), T0, CONFIG)
    with pytest.raises(ValueError, match="No probe is due"):
        begin_probe(failures(5).state, T0 + 1, CONFIG)


def test_a_successful_probe_closes_it_with_fresh_counts():
    closed = probe(failures(5).state, T0 + 60, ok=True)
    assert closed.closed
    assert closed.state == BreakerState(reason="ping probe succeeded", changed_at=T0 + 60)
    assert allow(closed.state, T0 + 60, CONFIG)


def test_a_failed_probe_reopens_it_with_the_cool_down_doubled_up_to_15_minutes():
    state = failures(5).state
    now = T0
    waits = []
    for _ in range(6):
        now += state.cool_down_s
        reopened = probe(state, now, ok=False)
        assert reopened.opened
        state = reopened.state
        waits.append(state.cool_down_s)
        assert not allow(state, now + state.cool_down_s - 0.1, CONFIG)
    assert waits == [120, 240, 480, 900, 900, 900]
    assert state.reason == "ping probe failed; next probe in 15 minutes"


def test_a_slow_probe_ping_is_a_failed_probe():
    reopened = probe(slow_pings(10).state, T0 + 60, ok=True, latency_ms=350)
    assert reopened.opened
    assert reopened.reason == "probe ping took 350 ms, over 200 ms; next probe in 2 minutes"


def test_a_closed_breaker_starts_again_from_the_first_cool_down():
    state = failures(5).state
    state = probe(state, T0 + 60, ok=False).state
    state = probe(state, T0 + 180, ok=True).state
    reopened = failures(5, state, now=T0 + 200)
    assert reopened.state.cool_down_s == 60


def test_late_answers_while_open_change_nothing():
    state = failures(5).state
    assert succeed(state).state == state
    assert fail(state).state == state


# --- By hand ---


def test_opened_by_hand_it_stays_open_until_closed_by_hand():
    opened = force_open(BreakerState(), "buyer asked for a pause", T0)
    assert opened.opened
    assert opened.reason == "buyer asked for a pause"
    assert opened.state.forced
    assert not allow(opened.state, T0 + 10 * 24 * 3600, CONFIG)
    assert succeed(opened.state).state == opened.state
    closed = force_close(opened.state, T0 + 100)
    assert closed.closed
    assert closed.state == BreakerState(reason="closed by hand", changed_at=T0 + 100)
    assert allow(closed.state, T0 + 100, CONFIG)


def test_forcing_open_an_open_breaker_holds_it_without_opening_it_again():
    held = force_open(failures(5).state, "investigating", T0 + 1)
    assert not held.opened
    assert held.state.forced
    assert not allow(held.state, T0 + 3600, CONFIG)


def test_closing_a_closed_breaker_by_hand_forgets_its_counts():
    closed = force_close(failures(4).state, T0)
    assert not closed.closed
    assert closed.state.failures == 0


# --- Storage ---


def test_the_state_round_trips_through_json():
    state = begin_probe(failures(5).state, T0 + 60, CONFIG)
    stored = json.dumps(state.as_dict())
    assert BreakerState.from_dict(json.loads(stored)) == state
    assert json.loads(stored)["status"] == "half_open"


def test_a_stored_state_missing_keys_takes_the_defaults():
    assert BreakerState.from_dict({"status": "open", "opened_at": T0}) == BreakerState(
        status=BreakerStatus.OPEN, opened_at=T0
    )


# --- Properties ---

events = st.lists(
    st.tuples(
        st.booleans(),  # ok
        st.sampled_from(["ping", "post"]),
        st.one_of(st.none(), st.integers(min_value=0, max_value=CONFIG.latency_limit_ms)),
    ),
    max_size=60,
)


@PROPERTY_SETTINGS
@given(events=events)
def test_it_never_opens_on_fewer_than_k_consecutive_failures(events):
    state = BreakerState()
    streak = 0
    for ok, kind, latency in events:
        streak = 0 if ok else streak + 1
        transition = record(state, ok=ok, latency_ms=latency, kind=kind, now=T0, config=CONFIG)
        if transition.opened:
            assert streak >= CONFIG.failure_threshold
            return
        state = transition.state
        assert state.status == BreakerStatus.CLOSED


@PROPERTY_SETTINGS
@given(
    before=st.lists(st.booleans(), min_size=5, max_size=20),
    successes=st.lists(
        st.tuples(
            st.sampled_from(["ping", "post"]),
            st.one_of(st.none(), st.integers(min_value=0, max_value=CONFIG.latency_limit_ms)),
        ),
        max_size=60,
    ),
)
def test_any_run_of_successes_after_closing_keeps_it_closed(before, successes):
    # Whatever happened before, drive it open, through a good probe, then only succeed.
    state = BreakerState()
    for ok in before:
        state = record(state, ok=ok, latency_ms=None, kind="post", now=T0, config=CONFIG).state
    state = failures(5, state).state if state.status == BreakerStatus.CLOSED else state
    state = probe(state, T0 + state.cool_down_s, ok=True).state
    assert state.status == BreakerStatus.CLOSED
    for kind, latency in successes:
        transition = record(state, ok=True, latency_ms=latency, kind=kind, now=T0, config=CONFIG)
        assert not transition.opened
        state = transition.state
        assert state.status == BreakerStatus.CLOSED
        assert allow(state, T0, CONFIG)


@PROPERTY_SETTINGS
@given(
    failed_probes=st.integers(min_value=0, max_value=8),
    cool_down_s=st.integers(min_value=1, max_value=300),
    data=st.data(),
)
def test_allow_is_false_while_open_before_the_cool_down_has_passed(
    failed_probes, cool_down_s, data
):
    config = BreakerConfig(cool_down_s=cool_down_s)
    state = BreakerState()
    for _ in range(config.failure_threshold):
        state = record(state, ok=False, latency_ms=None, kind="ping", now=T0, config=config).state
    now = T0
    for _ in range(failed_probes):
        now = state.opened_at + state.cool_down_s
        claimed = begin_probe(state, now, config)
        state = record(claimed, ok=False, latency_ms=None, kind="ping", now=now, config=config)
        state = state.state
    assert state.status == BreakerStatus.OPEN
    assert state.cool_down_s <= config.max_cool_down_s
    # Whole milliseconds: a float fraction of a second is lost in an epoch timestamp's rounding.
    cool_down_ms = int(state.cool_down_s * 1000)
    elapsed_ms = data.draw(st.integers(min_value=0, max_value=cool_down_ms - 1))
    assert not allow(state, state.opened_at + elapsed_ms / 1000, config)
    assert allow(state, state.opened_at + state.cool_down_s, config)
