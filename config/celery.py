"""The Celery application: `celery -A config worker` starts a worker."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from config.warm import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("leadswitch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _warm_up(**kwargs: object) -> None:
    warm_up()


# worker_process_init: each prefork child; worker_ready: the threads pool's one process.
worker_process_init.connect(_warm_up, weak=False)
worker_ready.connect(_warm_up, weak=False)
