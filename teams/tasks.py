"""Celery adapters for internal sales teams: the sweeps of queued and unclaimed leads, and the
messages to members and consumers.

The tasks keep the names they were registered under when they lived in `routing/tasks.py`: the
beat schedule names them, and messages already queued carry them.
"""

from __future__ import annotations

from celery import shared_task

from config.locks import one_at_a_time
from notifications.channels import retry_countdown
from teams import services


@shared_task(name="routing.tasks.assign_queued_team_leads")
@one_at_a_time(skipped=0)
def assign_queued_team_leads() -> int:
    """Assign queued team leads to members whose working hours have opened (oldest first)."""
    return services.assignments_assign_queued()


@shared_task(name="routing.tasks.reassign_unclaimed_team_leads")
@one_at_a_time(skipped={})
def reassign_unclaimed_team_leads() -> dict[str, int]:
    """Give team leads nobody claimed within the claim timeout to the next available member."""
    counts = services.assignments_reassign_overdue()
    return {"reassigned": counts.reassigned, "queued": counts.queued, "expired": counts.expired}


@shared_task(name="routing.tasks.requeue_team_notifications")
@one_at_a_time(skipped=0)
def requeue_team_notifications() -> int:
    """Queue again team notifications whose task was lost (a broker restarted empty)."""
    return services.team_notifications_sweep()


@shared_task(
    name="routing.tasks.send_team_notification",
    bind=True,
    max_retries=services.NOTIFY_MAX_ATTEMPTS,
)
def send_team_notification(self, notification_id: int) -> str:
    """Send one message about a team assignment (e-mail or Slack); retry transient failures."""
    outcome = services.team_notification_send(notification_id=notification_id)
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries))
    return outcome
