"""Periodic tasks run one at a time (config/locks.py)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

from config.locks import run_alone
from leads.tasks import sweep_waiting_leads


def test_a_second_run_while_the_first_holds_the_lock_does_nothing():
    with run_alone("a_sweep") as first, run_alone("a_sweep") as second:
        assert (first, second) == (True, False)
    with run_alone("a_sweep") as after:
        assert after


def test_the_lock_outlives_the_longest_a_task_may_run(monkeypatch):
    timeouts = []
    real_add = cache.add

    def add(key, value, timeout=None, **kwargs):
        timeouts.append(timeout)
        return real_add(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", add)
    with run_alone("a_sweep"):
        pass
    # A sweep slowed down to its hard time limit is still never joined by the next one.
    assert timeouts == [settings.CELERY_TASK_TIME_LIMIT + 30]


def test_a_sweep_finds_its_lock_held_and_leaves_the_work_to_the_holder(db):
    with run_alone("sweep_waiting_leads"):
        assert sweep_waiting_leads() == 0
