"""What a source is shown of a lead's money (margin privacy).

Every partner surface (intake answers, the lead status API, postbacks) shows `payout`, what the
source itself is paid, and `buyer_price`, what the buyer paid, only to a source set to see it
(`Source.sees_buyer_price`). Without it the key is absent, not null: a null `buyer_price` would
read as "not sold". This module is the one place that decides it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from leads.models import Source

PAYOUT = "payout"
BUYER_PRICE = "buyer_price"
# Answers stored before margin privacy named the buyer's price `price`; an Idempotency-Key
# replays such an answer for 24 hours.
LEGACY_PRICE = "price"
PRICE_NAMES = frozenset({PAYOUT, BUYER_PRICE, LEGACY_PRICE})


def money(value: Decimal | str | None) -> str | None:
    """Return an amount as partners read it: "12.50", or None."""
    return None if value is None else f"{Decimal(value):.2f}"


def prices_shown(
    *, source: Source, payout: Decimal | str | None, buyer_price: Decimal | str | None
) -> dict[str, str | None]:
    """Return the amounts a source may see of one of its leads, by the names it sees them."""
    shown = {PAYOUT: money(payout)}
    if source.sees_buyer_price:
        shown[BUYER_PRICE] = money(buyer_price)
    return shown


def prices_placed(document: dict[str, Any], shown: dict[str, str | None]) -> dict[str, Any]:
    """Return `document` with its amounts replaced by `shown`, in place of its payout."""
    placed: dict[str, Any] = {}
    for name, value in document.items():
        if name == PAYOUT:
            placed.update(shown)
        elif name not in PRICE_NAMES:
            placed[name] = value
    return placed


def stored_answer_shown(document: Any, *, source: Source) -> Any:
    """Return a stored answer's document as the source may see it now.

    A replay is the first answer, unless the first showed an amount the source may no longer
    see (its setting changed, or the answer predates margin privacy). A document that is not an
    object names no amount and is replayed as it is.
    """
    if not isinstance(document, dict) or not {BUYER_PRICE, LEGACY_PRICE} & document.keys():
        return document  # nothing a source could be barred from; a replay never shows more
    shown = prices_shown(
        source=source,
        payout=document.get(PAYOUT),
        buyer_price=document.get(BUYER_PRICE, document.get(LEGACY_PRICE)),
    )
    return prices_placed(document, shown)
