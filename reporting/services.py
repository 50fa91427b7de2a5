"""Returns of sold leads, the buyer API keys that returns are made with, and staff API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from buyers.models import Buyer, BuyerApiKey, Contract
from config.api_keys import api_key_create, api_key_find, api_key_revoke
from leads.models import Lead, LeadStatus
from reporting.models import ReturnReason, SaleReturn, StaffToken, TokenScope
from reporting.rollup import rollup_mark_dirty
from routing.models import Sale, SaleStatus

# The period over which a contract's return rate is measured: its returns made in the last
# RETURN_RATE_DAYS against its sales made in the same days.
RETURN_RATE_DAYS = 30


class ReturnRefused(Exception):
    """A return the rules do not allow; `errors` says why, per request field."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


def _check_request(reason: str, note: str) -> None:
    if reason not in ReturnReason.values:
        choices = ", ".join(ReturnReason.values)
        raise ReturnRefused({"reason": [f"Give one of: {choices}."]})
    if reason == ReturnReason.OTHER and not note.strip():
        raise ReturnRefused({"note": ["Say why in a note when the reason is other."]})


def _check_rules(*, sale: Sale, contract: Contract, now: datetime) -> None:
    if sale.status == SaleStatus.RETURNED:
        when = f" on {sale.returned_at:%Y-%m-%d}" if sale.returned_at else ""
        raise ReturnRefused({"lead_id": [f"This lead was already returned{when}."]})
    if contract.return_window_days == 0:
        raise ReturnRefused({"lead_id": ["This contract accepts no returns."]})
    closes = sale.sold_at + timedelta(days=contract.return_window_days)
    if now > closes:
        raise ReturnRefused(
            {
                "lead_id": [
                    f"The return window of {contract.return_window_days} days closed on "
                    f"{closes:%Y-%m-%d %H:%M} UTC."
                ]
            }
        )
    if contract.max_return_rate is not None:
        since = now - timedelta(days=RETURN_RATE_DAYS)
        sales = Sale.objects.filter(contract=contract, sold_at__gte=since).count()
        returns = Sale.objects.filter(
            contract=contract, status=SaleStatus.RETURNED, returned_at__gte=since
        ).count()
        rate = 100 * (returns + 1) / max(sales, 1)
        if rate > contract.max_return_rate:
            raise ReturnRefused(
                {
                    "lead_id": [
                        f"Returning it would make {returns + 1} returns for {sales} sales in "
                        f"the last {RETURN_RATE_DAYS} days ({rate:.1f}%), over the contract's "
                        f"maximum of {contract.max_return_rate}%."
                    ]
                }
            )


def sale_return(
    *,
    sale: Sale,
    reason: str,
    note: str = "",
    returned_by: str,
    now: datetime | None = None,
) -> SaleReturn:
    """Return a sold lead to us: reverse its revenue (and the source's payout if its terms say).

    Refused (ReturnRefused) past the contract's window, a second time, or over the contract's
    maximum return rate. Returns of one contract are serialised by a lock on the contract row,
    so two at once cannot both pass the rate check or both return one sale.
    """
    now = now or timezone.now()
    _check_request(reason, note)
    with transaction.atomic():
        contract = Contract.objects.select_for_update().get(pk=sale.contract_id)
        sale = Sale.objects.select_for_update().get(pk=sale.pk)
        _check_rules(sale=sale, contract=contract, now=now)
        lead = Lead.objects.select_related("source").get(pk=sale.lead_id)
        claimed = Sale.objects.filter(pk=sale.pk, status=SaleStatus.SOLD).update(
            status=SaleStatus.RETURNED, returned_at=now, return_reason=reason
        )
        if claimed != 1:
            raise ReturnRefused({"lead_id": ["This lead was already returned."]})
        record = SaleReturn.objects.create(
            sale=sale,
            reason=reason,
            note=note.strip(),
            payout_reversed=lead.source.payout_reversed_on_return,
            returned_by=returned_by[:150],
            created_at=now,
        )
        # The lead is returned once none of its sales stands (a shared lead may have others).
        leads = Lead.objects.filter(pk=lead.pk)
        if not Sale.objects.filter(lead_id=lead.pk, status=SaleStatus.SOLD).exists():
            leads.filter(status=LeadStatus.SOLD).update(status=LeadStatus.RETURNED, updated_at=now)
        leads.update(updated_at=now)
        rollup_mark_dirty(hours=[lead.received_at])
    sale.status, sale.returned_at, sale.return_reason = SaleStatus.RETURNED, now, reason
    return record


# --- Buyer API keys ----------------------------------------------------------------------------


def buyer_api_key_create(*, buyer: Buyer, name: str = "") -> tuple[BuyerApiKey, str]:
    """Mint an API key for a buyer; return the row and the key, which is never stored."""
    return api_key_create(model=BuyerApiKey, owner=buyer, name=name)


def buyer_api_key_revoke(*, api_key: BuyerApiKey) -> bool:
    """Revoke a key; return False when it was already revoked."""
    return api_key_revoke(api_key=api_key)


def buyer_api_key_authenticate(*, raw_key: str) -> BuyerApiKey | None:
    """Return the live key matching raw_key (with its buyer), or None."""
    return api_key_find(model=BuyerApiKey, raw_key=raw_key)


# --- Staff API tokens ----------------------------------------------------------------------------


def staff_token_create(
    *, user: AbstractBaseUser, name: str, scope: str = TokenScope.READ
) -> tuple[StaffToken, str]:
    """Mint an API token for a staff user; return the row and the token, which is never stored."""
    if scope not in TokenScope.values:
        raise ValueError(f"scope must be one of {', '.join(TokenScope.values)}, not {scope!r}")
    return api_key_create(model=StaffToken, owner=user, name=name, scope=scope)


def staff_token_revoke(*, token: StaffToken) -> bool:
    """Revoke a token; return False when it was already revoked."""
    return api_key_revoke(api_key=token)


def staff_token_authenticate(*, raw_token: str) -> StaffToken | None:
    """Return the live token matching raw_token (with its user), or None."""
    return api_key_find(model=StaffToken, raw_key=raw_token)
