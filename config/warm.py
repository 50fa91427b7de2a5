"""What a worker process loads before its first request or task: `warm_up()`.

Both kinds of worker call it once they have forked: each Celery worker process (config.celery)
and each gunicorn worker, as it imports config.wsgi.
"""

from __future__ import annotations

import gc


def warm_up(*, web: bool = False) -> None:
    """Load what every request and routing run reads, then take it out of the garbage
    collector's sight.

    Each app that has long-lived tables to load says so with a `warm_up()` method on its
    AppConfig (the offline ZIP table, in leads); a web process also imports its URLs and views.
    Those and Django's own objects are a few hundred thousand long-lived objects; left to the
    collector, each full collection paused a worker for a quarter of a second, which buyers'
    latency figures (and their circuit breakers) then counted. Unwarmed, a web worker's first
    inbound ping built the ZIP table in the request (0.8 s alone, seconds with its other
    threads waiting on it), the stall bench/ping.py saw at its p99.
    """
    from django.apps import apps

    for app_config in apps.get_app_configs():
        warm_up = getattr(app_config, "warm_up", None)
        if callable(warm_up):
            warm_up()
    if web:
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports every app's URLs and views
    gc.collect()
    gc.freeze()
