"""The Celery application: `celery -A config worker` starts a worker."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leadswitch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _warm_up(**kwargs: object) -> None:
    """Load what every routing run reads, then take it out of the garbage collector's sight.

    Each app that has long-lived tables to load says so with a `warm_up()` method on its
    AppConfig (the offline ZIP table, in leads). Those and Django's own objects are a few
    hundred thousand long-lived objects; left to the collector, each full collection paused a
    worker for a quarter of a second, which buyers' latency figures (and their circuit breakers)
    then counted.
    """
    import gc

    from django.apps import apps

    for app_config in apps.get_app_configs():
        warm_up = getattr(app_config, "warm_up", None)
        if callable(warm_up):
            warm_up()
    gc.collect()
    gc.freeze()


# worker_process_init: each prefork child; worker_ready: the threads pool's one process.
worker_process_init.connect(_warm_up, weak=False)
worker_ready.connect(_warm_up, weak=False)
