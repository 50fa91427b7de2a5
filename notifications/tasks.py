"""Celery adapters for ops notifications: the dispatch of an event, the sending of a delivery,
and the beat tasks that measure source rates and sweep windows and lost deliveries.

The tasks keep the names they were registered under when they lived in routing.tasks: the beat
schedule and messages already on the broker name them so.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import Retry

from config.locks import run_alone
from notifications import services
from outbound.rules import backoff

# Retries wait up to 10, 20, 40, 80 and 160 s (a random point in the upper half of each), never
# longer than this: well below the broker's visibility timeout (600 s), past which Redis would
# hand a retry still waiting in one worker to a second one.
NOTIFY_BACKOFF_CAP_S = 300


@shared_task(name="routing.tasks.dispatch_notification")
def dispatch_notification(kind: str, params: dict) -> int:
    """Tell every subscription that wants it of an event a part of the platform reported."""
    return len(services.notification_dispatch(kind=kind, params=params))


@shared_task(
    name="routing.tasks.send_notification",
    bind=True,
    max_retries=services.MAX_ATTEMPTS,
)
def send_notification(self, delivery_id: int) -> str | Retry:
    """Send one recorded notification (Slack or e-mail); retry transient failures."""
    outcome = services.delivery_send(delivery_id=delivery_id)
    return outcome if outcome != "retry" else _notify_again_later(self)


def _notify_again_later(task) -> Retry:
    """Retry a message send with exponential backoff and jitter (half fixed, half random)."""
    countdown = backoff(task.request.retries + 1, base_s=10, cap_s=NOTIFY_BACKOFF_CAP_S)
    raise task.retry(countdown=countdown)


@shared_task(name="routing.tasks.notify_source_rates")
def notify_source_rates() -> int:
    """Tell subscribers of sources whose error or duplicate rate reached their threshold."""
    with run_alone("notify_source_rates") as alone:
        if not alone:
            return 0
        return services.source_rates_check()


@shared_task(name="routing.tasks.sweep_notifications")
def sweep_notifications() -> dict[str, int]:
    """Tell repeats held back by closed windows; queue deliveries whose task was lost."""
    with run_alone("sweep_notifications") as alone:
        if not alone:
            return {}
        return services.notifications_sweep()
