"""The Celery application: `celery -A config worker` starts a worker."""

from __future__ import annotations

import math
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from config.warm import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
RABBITMQ_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


class LeadswitchCelery(Celery):
    def send_task(
        self,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: Any = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        """Send a task; on RabbitMQ, a countdown is rounded up to whole seconds.

        Celery's native delayed delivery (how a countdown waits on quorum queues) counts whole
        seconds and refuses a countdown under one (`ValueError: countdown must be a positive
        number`), which a retry's jittered backoff often is. Up, not down: a retry never comes
        before its backoff.
        """
        if (
            countdown
            and countdown > 0
            and (self.conf.broker_url or "").startswith(RABBITMQ_SCHEMES)
        ):
            countdown = math.ceil(countdown)
        return super().send_task(name, args, kwargs, countdown, *rest, **options)


app = LeadswitchCelery("leadswitch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _warm_up(**kwargs: object) -> None:
    warm_up()


# worker_process_init: each prefork child; worker_ready: the threads pool's one process.
worker_process_init.connect(_warm_up, weak=False)
worker_ready.connect(_warm_up, weak=False)
