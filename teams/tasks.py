"""Celery adapters for internal sales teams: the sweeps of queued and unclaimed leads, and the
messages to members and consumers.

The tasks keep the names they were registered under when they lived in `routing/tasks.py`: the
beat schedule names them, and messages already queued carry them.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import Retry

from config.locks import run_alone
from outbound.rules import backoff
from teams import services

# Retries wait up to 10, 20, 40, 80 and 160 s (a random point in the upper half of each), never
# longer than this: well below the broker's visibility timeout (600 s), past which Redis would
# hand a retry still waiting in one worker to a second one.
NOTIFY_BACKOFF_CAP_S = 300


@shared_task(name="routing.tasks.assign_queued_team_leads")
def assign_queued_team_leads() -> int:
    """Assign queued team leads to members whose working hours have opened (oldest first)."""
    with run_alone("assign_queued_team_leads") as alone:
        if not alone:
            return 0
        return services.assignments_assign_queued()


@shared_task(name="routing.tasks.reassign_unclaimed_team_leads")
def reassign_unclaimed_team_leads() -> dict[str, int]:
    """Give team leads nobody claimed within the claim timeout to the next available member."""
    with run_alone("reassign_unclaimed_team_leads") as alone:
        if not alone:
            return {}
        counts = services.assignments_reassign_overdue()
    return {"reassigned": counts.reassigned, "queued": counts.queued, "expired": counts.expired}


@shared_task(name="routing.tasks.requeue_team_notifications")
def requeue_team_notifications() -> int:
    """Queue again team notifications whose task was lost (a broker restarted empty)."""
    with run_alone("requeue_team_notifications") as alone:
        return services.team_notifications_sweep() if alone else 0


@shared_task(
    name="routing.tasks.send_team_notification",
    bind=True,
    max_retries=services.NOTIFY_MAX_ATTEMPTS,
)
def send_team_notification(self, notification_id: int) -> str | Retry:
    """Send one message about a team assignment (e-mail or Slack); retry transient failures."""
    outcome = services.team_notification_send(notification_id=notification_id)
    return outcome if outcome != "retry" else _send_again_later(self)


def _send_again_later(task) -> Retry:
    """Retry a message send with exponential backoff and jitter (half fixed, half random)."""
    countdown = backoff(task.request.retries + 1, base_s=10, cap_s=NOTIFY_BACKOFF_CAP_S)
    raise task.retry(countdown=countdown)
