"""The two ways staff are told something: a Slack incoming webhook and a plain-text e-mail.

`slack_message_send` and `email_message_send` are plain functions returning what happened
(an `Outcome`), never raising; the ops notifications (notifications.services) and the internal
sales teams send through them. Both go through the platform's outbound seam: Slack through its
HTTP client (the address guard checks the address it connects to; redirects are not followed),
e-mail through its door to Django's mail backend.

Both kinds of message are recorded before they are sent (NotificationDelivery, TeamNotification:
`RecordedMessage` holds the columns they share) and sent by a task: `message_queue` queues that
task, `message_attempt` makes and records one attempt at a recorded message (`message_send`
sends it by its channel, `message_verdict` says what the attempt came to and whether to try
again); the tasks wait between tries as `retry_countdown` says.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.utils import timezone

from outbound import http
from outbound.email import email_send
from outbound.guard import webhook_url_refusal
from outbound.rules import Outcome, backoff, retryable

__all__ = [
    "EMAIL",
    "RETRY_BACKOFF_BASE_S",
    "RETRY_BACKOFF_CAP_S",
    "SLACK",
    "SLACK_TIMEOUT",
    "MessageChannel",
    "MessageStatus",
    "Outcome",
    "RecordedMessage",
    "Verdict",
    "email_message_send",
    "message_attempt",
    "message_queue",
    "message_send",
    "message_verdict",
    "retry_countdown",
    "slack_escape",
    "slack_message_send",
    "webhook_url_refusal",
]

SLACK_TIMEOUT = (2.0, 5.0)  # connect, read (seconds)


class MessageChannel(models.TextChoices):
    """The channels' names as the recorded messages store them."""

    EMAIL = "email", "E-mail"
    SLACK = "slack", "Slack (incoming webhook)"


EMAIL = MessageChannel.EMAIL
SLACK = MessageChannel.SLACK
# Retries wait up to 10, 20, 40, 80 and 160 s (a random point in the upper half of each), never
# longer than the cap: well below the broker's visibility timeout (600 s), past which Redis would
# hand a retry still waiting in one worker to a second one.
RETRY_BACKOFF_BASE_S = 10
RETRY_BACKOFF_CAP_S = 300


def retry_countdown(retries: int) -> float:
    """Return how long a message's task waits before its next try, after `retries` retries:
    exponential, half of it fixed and half random."""
    return backoff(retries + 1, base_s=RETRY_BACKOFF_BASE_S, cap_s=RETRY_BACKOFF_CAP_S)


def slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions): a consumer named "<!channel>" must
    # not page the whole channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message_send(*, webhook_url: str, payload: Mapping[str, Any]) -> Outcome:
    """POST a message to a Slack incoming webhook; return what happened, never raise."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Leadswitch/1"}
    return http.send("POST", webhook_url, body=body, headers=headers, timeout=SLACK_TIMEOUT)


def email_message_send(*, to: Sequence[str], subject: str, body: str) -> Outcome:
    """Send a plain-text e-mail through Django's mail backend; never raise (status 250 = taken)."""
    return email_send(to=to, subject=subject, body=body)


def message_send(
    *, channel: str, webhook_url: str, payload: Mapping[str, Any], recipient: str, subject: str
) -> Outcome:
    """Send a recorded message by its channel: the Slack message to `webhook_url`, or the e-mail
    to the recipients it names (else `recipient`) under its subject (else `subject`)."""
    if channel == SLACK:
        return slack_message_send(webhook_url=webhook_url, payload=payload)
    return email_message_send(
        to=payload.get("to") or [recipient],
        subject=payload.get("subject", subject),
        body=payload.get("body", ""),
    )


class MessageStatus(models.TextChoices):
    """Where a recorded message stands: to be tried (again), or what its last attempt came to."""

    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


@dataclass(frozen=True)
class Verdict:
    """What one attempt at a message came to: "sent", "pending" (to be tried again) or "failed",
    why it was not sent, and the attempt's entry for the message's log."""

    status: str
    error: str
    log_entry: dict[str, Any]

    @property
    def sent(self) -> bool:
        return self.status == "sent"

    @property
    def task_result(self) -> str:
        """The sending task's answer: "sent", "retry" or "failed"."""
        return {"sent": "sent", "pending": "retry"}.get(self.status, "failed")


def message_verdict(
    channel: str,
    result: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    started_at: datetime,
    retry: bool = True,
) -> Verdict:
    """Judge the `attempt`-th try at a message: Slack takes it with any 2xx, the mail backend with
    250. A failure another try may fix (network errors, timeouts, 5xx, 408, 429) is tried again
    while attempts are left, unless `retry` is off; a refusal or other 4xx never is. Unlike a
    buyer's post, a message whose answer was lost is sent again: a repeated notification is
    better than a missing one."""
    if channel == EMAIL:
        sent = result.status == 250
    else:
        sent = result.status is not None and 200 <= result.status < 300
    error = result.error or ("" if sent else f"HTTP {result.status}")
    if sent:
        status = "sent"
    elif retry and retryable(result, idempotent=True) and attempt < max_attempts:
        status = "pending"
    else:
        status = "failed"
    log_entry = {
        "attempt": attempt,
        "at": started_at.isoformat(),
        "status": result.status,
        "error": error,
        "latency_ms": result.latency_ms,
    }
    return Verdict(status=status, error=error, log_entry=log_entry)


class RecordedMessage(models.Model):
    """A message recorded before it is sent (ops' NotificationDelivery, a team's
    TeamNotification): where it goes, what it says, and how its attempts went
    (`message_attempt` makes and records each one)."""

    channel = models.CharField(max_length=5, choices=MessageChannel.choices)
    recipient = models.CharField(max_length=255, help_text="Address, or the webhook (masked).")
    payload = models.JSONField(
        default=dict, help_text="Slack: the JSON posted; e-mail: subject, recipients and body."
    )
    status = models.CharField(
        max_length=7, choices=MessageStatus.choices, default=MessageStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempt_log = models.JSONField(default=list, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


def stale_pending(model: type[RecordedMessage], *, before: datetime, limit: int) -> list[int]:
    """Ids of `model`'s pending messages nobody has touched since `before` (their task was lost:
    broker restarted, worker killed), oldest first: what a sweep queues again."""
    return list(
        model._default_manager.filter(status=MessageStatus.PENDING)
        .filter(
            models.Q(last_attempt_at__lt=before)
            | models.Q(last_attempt_at__isnull=True, created_at__lt=before)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )


def message_queue(
    task: Any, message_id: int, *, logger: logging.Logger, log: str, extra: Mapping[str, Any]
) -> None:
    """Queue the task that sends a recorded message; never raise (`logger` tells `log` when the
    broker did not take it). Such a message stays pending: its sweep queues it again once it has
    waited long enough."""
    try:
        task.delay(message_id)
    except Exception:
        logger.exception(log, extra=extra)


def message_attempt(
    message: RecordedMessage,
    *,
    refusal: str,
    webhook_url: str,
    subject: str,
    max_attempts: int,
    retry: bool = True,
    answer_column: bool = True,
    logger: logging.Logger,
    log: str,
    extra: Mapping[str, Any],
) -> str:
    """Make the next attempt at a recorded message (a NotificationDelivery, a TeamNotification)
    and record it: claim the attempt, send the message by its channel (unless `refusal` says why
    it may not be sent), judge the answer and write what came of it; `logger` tells `log` when
    the message has failed for good. Return the sending task's answer ("sent", "retry" or
    "failed"), or "skipped" when another worker claimed this attempt.

    The answer is kept in the message's `response_body` (its first 4 KiB), or, for a message
    without that column (`answer_column=False`), in the attempt's log entry (its first 500
    characters).
    """
    model = type(message)._default_manager
    attempt = message.attempts + 1
    started_at = timezone.now()
    # Claim this attempt: a task delivered twice (or queued again by a sweep while its retry was
    # still on its way) sends once.
    if not model.filter(
        pk=message.pk, status=MessageStatus.PENDING, attempts=message.attempts
    ).update(attempts=attempt, last_attempt_at=started_at):
        return "skipped"
    if refusal:
        result = Outcome(error=refusal, refused=True)
    else:
        result = message_send(
            channel=message.channel,
            webhook_url=webhook_url,
            payload=message.payload,
            recipient=message.recipient,
            subject=subject,
        )
    verdict = message_verdict(
        message.channel,
        result,
        attempt=attempt,
        max_attempts=max_attempts,
        started_at=started_at,
        retry=retry,
    )
    log_entry, answer = verdict.log_entry, {}
    if answer_column:
        answer = {"response_body": result.body[:4096]}
    else:
        log_entry = {**log_entry, "answer": result.body[:500]}
    model.filter(pk=message.pk).update(
        status=verdict.status,
        response_status=result.status,
        error=verdict.error[:500],
        latency_ms=result.latency_ms,
        attempt_log=[*message.attempt_log, log_entry],
        sent_at=timezone.now() if verdict.sent else None,
        **answer,
    )
    if verdict.status == MessageStatus.FAILED:
        logger.warning(log, extra={**extra, "attempts": attempt, "error": verdict.error})
    return verdict.task_result
