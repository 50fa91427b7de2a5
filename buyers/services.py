"""Writes for buyers and contracts."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from buyers.models import Buyer, Contract, ContractStatus


def contract_pause(*, contract: Contract, reason: str) -> bool:
    """Pause an active contract with a reason; return False when it was already paused."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a paused contract needs a reason")
    now = timezone.now()
    updated = Contract.objects.filter(pk=contract.pk, status=ContractStatus.ACTIVE).update(
        status=ContractStatus.PAUSED, paused_reason=reason[:255], paused_at=now, updated_at=now
    )
    if updated:
        contract.status, contract.paused_reason, contract.paused_at = (
            ContractStatus.PAUSED,
            reason[:255],
            now,
        )
    return bool(updated)


def contract_resume(*, contract: Contract) -> bool:
    """Resume a paused contract; return False when it was not paused."""
    updated = Contract.objects.filter(pk=contract.pk, status=ContractStatus.PAUSED).update(
        status=ContractStatus.ACTIVE, paused_reason="", paused_at=None, updated_at=timezone.now()
    )
    if updated:
        contract.status, contract.paused_reason, contract.paused_at = (
            ContractStatus.ACTIVE,
            "",
            None,
        )
    return bool(updated)


def buyers_set_active(*, buyers: QuerySet[Buyer], active: bool) -> int:
    """Activate or deactivate buyers; return how many actually changed."""
    return buyers.filter(active=not active).update(active=active, updated_at=timezone.now())
