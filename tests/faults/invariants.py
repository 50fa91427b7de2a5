"""What must hold after every fault scenario, checked in SQL and against the buyers' own ledgers.

- every lead that was accepted reached a final state;
- no exclusive lead was sold more than once, and no lead to more buyers than its vertical allows;
- no contract sold more leads in a cap period than its cap (counted from the sales, not from the
  counters the reservations keep);
- no buyer received the same lead twice (the simulator's ledger of the posts it received).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection

from leads.models import FINAL_STATUSES, Lead
from simulator.server import SimulatorThread


@dataclass(frozen=True)
class Invariants:
    not_final: int
    sold_too_often: int
    caps_exceeded: int
    duplicate_posts: int

    def line(self) -> str:
        return (
            f"leads not final {self.not_final}, leads sold too often {self.sold_too_often}, "
            f"cap periods oversold {self.caps_exceeded}, duplicate posts {self.duplicate_posts}"
        )

    @property
    def broken(self) -> bool:
        return any((self.not_final, self.sold_too_often, self.caps_exceeded, self.duplicate_posts))


# Sales beyond what the lead's vertical allows: one for an exclusive sale, max_buyers otherwise.
SOLD_TOO_OFTEN = """
SELECT count(*) FROM (
    SELECT s.lead_id
    FROM routing_sale s
    JOIN leads_lead l ON l.id = s.lead_id
    JOIN leads_vertical v ON v.id = l.vertical_id
    JOIN buyers_contract c ON c.id = s.contract_id
    WHERE s.status = 'sold' AND s.lead_id = ANY(%s)
    GROUP BY s.lead_id, v.max_buyers
    HAVING count(*) > CASE WHEN bool_or(c.exclusive) THEN 1 ELSE v.max_buyers END
) AS oversold
"""

# Daily lead caps of contracts, recounted from the sales made in each day of the buyer's zone.
CAPS_EXCEEDED = """
SELECT count(*) FROM (
    SELECT cap.id
    FROM buyers_contractcap cap
    JOIN buyers_contract c ON c.id = cap.contract_id
    JOIN buyers_buyer b ON b.id = c.buyer_id
    JOIN routing_sale s ON s.contract_id = cap.contract_id AND s.status = 'sold'
    WHERE cap.period = 'day' AND cap.max_leads IS NOT NULL
    GROUP BY cap.id, cap.max_leads, date_trunc('day', s.sold_at AT TIME ZONE b.time_zone)
    HAVING count(*) > cap.max_leads
) AS over
"""


def check(lead_ids: Iterable, simulators: Iterable[SimulatorThread], *, label: str) -> Invariants:
    """Count every broken invariant for these leads; print the line the scenario reports."""
    ids = [str(i) for i in lead_ids]
    with connection.cursor() as cursor:
        cursor.execute(SOLD_TOO_OFTEN, [ids])
        sold_too_often = cursor.fetchone()[0]
        cursor.execute(CAPS_EXCEEDED)
        caps_exceeded = cursor.fetchone()[0]
    result = Invariants(
        not_final=Lead.objects.filter(pk__in=ids).exclude(status__in=FINAL_STATUSES).count(),
        sold_too_often=sold_too_often,
        caps_exceeded=caps_exceeded,
        duplicate_posts=sum(sim.ledger.duplicate_posts for sim in simulators),
    )
    print(f"\n[{label}] invariants: {result.line()}")
    return result
