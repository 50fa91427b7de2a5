"""Celery adapters for ops notifications: the dispatch of an event, the sending of a delivery,
and the beat tasks that measure source rates and sweep windows and lost deliveries.

The tasks keep the names they were registered under when they lived in routing.tasks: the beat
schedule and messages already on the broker name them so.
"""

from __future__ import annotations

from celery import shared_task

from config.locks import one_at_a_time
from notifications import services
from notifications.channels import retry_countdown


@shared_task(name="routing.tasks.dispatch_notification")
def dispatch_notification(kind: str, params: dict) -> int:
    """Tell every subscription that wants it of an event a part of the platform reported."""
    return len(services.notification_dispatch(kind=kind, params=params))


@shared_task(
    name="routing.tasks.send_notification",
    bind=True,
    max_retries=services.MAX_ATTEMPTS,
)
def send_notification(self, delivery_id: int) -> str:
    """Send one recorded notification (Slack or e-mail); retry transient failures."""
    outcome = services.delivery_send(delivery_id=delivery_id)
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries))
    return outcome


@shared_task(name="routing.tasks.notify_source_rates")
@one_at_a_time(skipped=0)
def notify_source_rates() -> int:
    """Tell subscribers of sources whose error or duplicate rate reached their threshold."""
    return services.source_rates_check()


@shared_task(name="routing.tasks.sweep_notifications")
@one_at_a_time(skipped={})
def sweep_notifications() -> dict[str, int]:
    """Tell repeats held back by closed windows; queue deliveries whose task was lost."""
    return services.notifications_sweep()
