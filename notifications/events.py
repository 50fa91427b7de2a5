"""What the rest of the platform tells ops: one call per kind of event it raises.

    from notifications import events as notify
    notify.cap_reached(counter_id=counter.pk, contract_id=contract.pk, spec=spec)

Each call queues `routing.tasks.dispatch_notification` once the caller's transaction commits
(a rolled-back transaction tells nothing) and never raises: a notifier that fails costs routing,
intake and postbacks nothing. The dispatch, off the hot path, builds the event and tells the
subscriptions that want it (notifications.services). Source rates are not raised by anyone:
the beat task `routing.tasks.notify_source_rates` measures them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from notifications.models import NotificationKind as Kind

if TYPE_CHECKING:
    from buyers.caps import CapLimitSpec

logger = logging.getLogger(__name__)


def breaker_opened(*, contract_id: int, reason: str, cool_down_s: float, actor: str = "") -> None:
    """A contract's breaker opened.

    Automatically (failures, slowness, a failed probe): buyer_paused. By hand (`actor`):
    nothing, ops did it and the contract's history says so.
    """
    if actor:
        return
    _notify(Kind.BUYER_PAUSED, contract_id=contract_id, reason=reason, cool_down_s=cool_down_s)


def breaker_closed(*, contract_id: int, reason: str, actor: str = "") -> None:
    """A contract's breaker closed, by a probe or by hand (`actor`): buyer_restored."""
    _notify(Kind.BUYER_RESTORED, contract_id=contract_id, reason=reason, actor=actor)


def cap_reached(*, counter_id: int, contract_id: int, spec: CapLimitSpec) -> None:
    """A reservation took the last room under a cap in its period."""
    _notify(
        Kind.CAP_REACHED,
        counter_id=counter_id,
        contract_id=contract_id,
        max_leads=spec.max_leads,
        max_budget=None if spec.max_budget is None else str(spec.max_budget),
    )


def leads_stuck(*, lead_ids: Sequence[Any]) -> None:
    """The sweeper found leads whose routing run lost its worker and handed them on."""
    _notify(Kind.LEADS_STUCK, count=len(lead_ids), lead_ids=[str(i) for i in lead_ids[:10]])


def postback_failed(*, postback_id: int) -> None:
    """A source's postback was given up (retries exhausted, or refused for good)."""
    _notify(Kind.POSTBACK_FAILED, postback_id=postback_id)


def _notify(kind: str, **params: Any) -> None:
    """Queue the notification of an event once the caller's transaction commits; never raise."""
    try:
        params.setdefault("at", timezone.now().isoformat())
        transaction.on_commit(partial(_enqueue_dispatch, str(kind), params), robust=True)
    except Exception:
        logger.exception("notification not queued", extra={"kind": str(kind)})


def _enqueue_dispatch(kind: str, params: dict[str, Any]) -> None:
    from notifications.tasks import dispatch_notification

    try:
        dispatch_notification.delay(kind, params)
    except Exception:
        # The broker is down, or (running in-process) the dispatch itself failed: the event is
        # lost, never the caller's work.
        logger.exception("notification not dispatched", extra={"kind": kind})
