"""The reliability settings the platform depends on, checked as relationships, not constants.

Celery: every task acknowledges late and is re-queued when its worker dies, a worker prefetches
one task, each task's soft time limit < hard time limit < the broker's visibility timeout, every
retry's longest backoff is due before that timeout, JSON only, no results (state lives in
PostgreSQL), and a lead whose run keeps killing its worker is given up after a few deliveries.
Redis is the cache that counts throttles; PostgreSQL connections carry statement and lock
timeouts. Settings are read once, at import, so variants are read in fresh interpreters.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from routing import engine
from tests.config.probe import probed, python_run

# Tasks the platform relies on; any task added later is checked as well.
OUR_TASKS = {
    "routing.tasks.route_lead",
    "routing.tasks.sweep_stuck_leads",
    "leads.tasks.send_postback",
    "leads.tasks.sweep_waiting_leads",
    "leads.tasks.sweep_missing_postbacks",
    "leads.tasks.purge_idempotency_records",
    "reporting.tasks.refresh_rollups",
}
GUNICORN_TIMEOUT_S = 30  # ./dev run and the fault harness leave gunicorn's default


def our_tasks() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def visibility_timeout() -> float:
    # Redis's (RabbitMQ has none: it redelivers when a worker's connection closes); that Redis
    # gets it is checked in tests/config/test_broker_settings.py.
    return settings.REDIS_VISIBILITY_TIMEOUT_S


def test_every_task_the_platform_relies_on_is_registered():
    assert set(our_tasks()) >= OUR_TASKS


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_a_task_is_acknowledged_late_and_requeued_when_its_worker_dies(name):
    task = app.tasks[name]

    assert task.acks_late is True
    assert task.reject_on_worker_lost is True


def test_a_worker_prefetches_one_task_at_a_time():
    # With late acknowledgement a prefetched task waits unacknowledged behind a slow one; one at
    # a time keeps leads from queueing behind a stuck buyer on a busy worker.
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_a_tasks_soft_limit_comes_before_its_hard_limit_before_the_visibility_timeout(name):
    task = app.tasks[name]
    soft = task.soft_time_limit or app.conf.task_soft_time_limit
    hard = task.time_limit or app.conf.task_time_limit

    assert soft is not None, "no task may run unbounded"
    assert hard is not None
    # The soft limit lets the task clean up; the hard limit kills it; only a task that outlived
    # both could still be running when Redis hands its message to a second worker.
    assert soft < hard < visibility_timeout()


def backoff_caps(task) -> list[float]:
    """The longest waits before a task's retries: Celery's own, and the caps of its own backoff.

    A task that computes its backoff (`self.retry(countdown=…)`) must bound it with a module
    constant named `…_BACKOFF_CAP_S` that the task uses; one that does not fails here.
    """
    caps = [task.default_retry_delay or 0]
    if getattr(task, "autoretry_for", ()) and getattr(task, "retry_backoff", False):
        caps.append(task.retry_backoff_max)
    source = inspect.getsource(task.run)
    module = sys.modules[task.run.__module__]
    bounds = _caps_named(source, module)
    # A task may wait by a helper of another module that holds the cap (one rule for several
    # tasks, e.g. notifications.channels.retry_countdown).
    for name, helper in vars(module).items():
        if (
            inspect.isfunction(helper)
            and f"{name}(" in source
            and helper.__module__ != module.__name__
        ):
            bounds += _caps_named(inspect.getsource(helper), sys.modules[helper.__module__])
    if "self.retry(" in source and "countdown" in source:
        assert bounds, f"{task.name} computes a backoff that no …_BACKOFF_CAP_S bounds"
    return caps + bounds


def _caps_named(source: str, module) -> list[float]:
    """The `…_BACKOFF_CAP_S` constants of `module` that `source` uses."""
    return [
        value
        for name, value in vars(module).items()
        if name.endswith("BACKOFF_CAP_S") and name in source
    ]


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_a_retrys_longest_backoff_is_due_before_the_visibility_timeout(name):
    # A retry is a message with a countdown, held unacknowledged by the worker that took it: if it
    # is not due within the visibility timeout, Redis delivers it a second time.
    for cap in backoff_caps(app.tasks[name]):
        assert cap < visibility_timeout(), (name, cap)


def test_the_tasks_that_retry_by_hand_are_seen_to_have_a_cap():
    # The check above must see the postback's backoff, or it proves nothing.
    assert 0 < max(backoff_caps(app.tasks["leads.tasks.send_postback"])) < visibility_timeout()


def test_a_routing_run_ends_within_its_tasks_soft_limit():
    soft = app.tasks["routing.tasks.route_lead"].soft_time_limit or app.conf.task_soft_time_limit

    # Fallbacks and retries of posts are spent inside the run's budget, which the task's soft
    # limit must never cut short.
    assert engine.POST_DEADLINE_S < engine.RUN_BUDGET_S < soft


def test_a_live_routing_run_is_never_taken_for_a_lost_one():
    hard = app.tasks["routing.tasks.route_lead"].time_limit or app.conf.task_time_limit

    # The sweeper resumes runs older than ROUTING_STALE_SECONDS: a live run ends (or is killed)
    # before that.
    assert hard < settings.ROUTING_STALE_SECONDS


def test_a_lead_that_keeps_killing_its_worker_is_given_up_after_a_few_deliveries():
    # Redis keeps no delivery count: each interrupted run is an auction row in PostgreSQL
    # ("interrupted: the worker was lost"), and routing fails the lead after this many
    # (tests/faults/test_workers.py, the poison lead). One lost worker is not a poison lead.
    assert 2 <= engine.MAX_INTERRUPTED_RUNS <= 5
    assert engine.INTERRUPTED_NOTE == "interrupted: the worker was lost"


@pytest.mark.parametrize("name", sorted(our_tasks()))
def test_a_task_speaks_json_and_keeps_no_result(name):
    task = app.tasks[name]

    assert task.serializer == "json"
    # Outcomes are rows in PostgreSQL (leads, auctions, attempts, postbacks), not task results.
    assert task.ignore_result is True


def test_the_app_accepts_json_only_and_has_no_result_backend():
    conf = app.conf

    assert conf.accept_content == ["json"]
    assert conf.result_accept_content in (None, ["json"])  # None: the same as accept_content
    assert (conf.task_serializer, conf.result_serializer, conf.event_serializer) == (
        "json",
        "json",
        "json",
    )
    assert conf.task_ignore_result is True
    assert conf.result_backend in (None, "disabled")


# --- Settings read in fresh interpreters ------------------------------------------------------

PROBE = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({
    "cache": settings.CACHES["default"],
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "statement_ms": getattr(settings, "DATABASE_STATEMENT_TIMEOUT_MS", None),
    "lock_ms": getattr(settings, "DATABASE_LOCK_TIMEOUT_MS", None),
}, default=str))
"""
CONFIG_VARS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CACHE_URL",
    "DATABASE_STATEMENT_TIMEOUT_MS",
    "DATABASE_LOCK_TIMEOUT_MS",
)


def read_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    return python_run("-c", PROBE, unset=CONFIG_VARS, **{"SECRET_KEY": "x" * 50, **overrides})


def settings_with(**overrides: str) -> dict:
    return probed(read_settings(**overrides))


def test_throttles_count_in_the_brokers_redis_with_fast_failing_sockets():
    cache = settings_with(CELERY_BROKER_URL="redis://127.0.0.1:6379/3")["cache"]

    assert cache["BACKEND"] == "config.cache.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/3"
    # A Redis that is down must fail a throttle check in about a second, not hang intake.
    assert cache["OPTIONS"]["socket_connect_timeout"] <= 1
    assert cache["OPTIONS"]["socket_timeout"] <= 2


def test_a_cache_url_of_its_own_wins_over_the_brokers():
    cache = settings_with(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3", CACHE_URL="redis://cache.internal:6379/1"
    )["cache"]

    assert (cache["BACKEND"], cache["LOCATION"]) == (
        "config.cache.RedisCache",
        "redis://cache.internal:6379/1",
    )


def test_without_redis_throttles_count_per_process_only():
    assert settings_with()["cache"]["BACKEND"] == ("django.core.cache.backends.locmem.LocMemCache")


def test_postgresql_connections_carry_statement_and_lock_timeouts():
    options = settings_with(DATABASE_URL="postgres://leads@db.internal:5432/leadswitch")[
        "db_options"
    ]

    assert options["options"] == "-c statement_timeout=20000 -c lock_timeout=10000"


def test_the_timeouts_are_set_by_environment_and_keep_the_urls_own_options():
    options = settings_with(
        DATABASE_URL="postgres://leads@db/leadswitch?sslmode=require&options=-c%20work_mem%3D64MB",
        DATABASE_STATEMENT_TIMEOUT_MS="0",
        DATABASE_LOCK_TIMEOUT_MS="2500",
    )["db_options"]

    assert options["sslmode"] == "require"
    assert options["options"] == "-c work_mem=64MB -c statement_timeout=0 -c lock_timeout=2500"


@pytest.mark.parametrize("value", ["-1", "20s", "soon"])
def test_a_bad_timeout_stops_start_up(value):
    result = read_settings(
        DATABASE_URL="postgres://leads@db/leadswitch", DATABASE_STATEMENT_TIMEOUT_MS=value
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DATABASE_STATEMENT_TIMEOUT_MS" in result.stderr


def test_a_lock_wait_gives_up_before_a_statement_would_before_the_callers_own_limits():
    read = settings_with(DATABASE_URL="postgres://leads@db.internal:5432/leadswitch")
    statement_ms, lock_ms = read["statement_ms"], read["lock_ms"]
    soft = app.conf.task_soft_time_limit

    # A lock wait is one way a statement runs long: its bound is the tighter. Both end within a
    # web request's gunicorn timeout and a task's soft time limit, as errors the caller handles
    # (the API answers 503 with Retry-After; the sweepers pick up a failed routing run).
    assert lock_ms < statement_ms < GUNICORN_TIMEOUT_S * 1000 < soft * 1000


# --- The live connections of this test run ----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_live_postgresql_connection_has_the_timeouts():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM current_setting(name)::interval) * 1000"
            " FROM unnest(ARRAY['statement_timeout', 'lock_timeout']) AS name"
        )
        statement_ms, lock_ms = (int(row[0]) for row in cursor.fetchall())

    assert statement_ms == settings.DATABASE_STATEMENT_TIMEOUT_MS > 0
    assert lock_ms == settings.DATABASE_LOCK_TIMEOUT_MS > 0


@pytest.mark.skipif(
    settings.CACHES["default"]["BACKEND"] != "config.cache.RedisCache",
    reason="needs Redis: set CELERY_BROKER_URL=redis://…",
)
def test_the_live_throttle_counter_is_one_atomic_count_in_redis():
    from django.core.cache import cache

    from leads.api.auth import _count

    key = "throttle:reliability-probe:1"
    cache.delete(key)

    assert [_count(key) for _ in range(3)] == [1, 2, 3]
    client = cache._cache.get_client(key)
    assert int(client.get(cache.make_and_validate_key(key))) == 3
    assert 0 < client.ttl(cache.make_and_validate_key(key)) <= 5
    cache.delete(key)
