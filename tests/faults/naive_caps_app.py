"""A Celery app for the cap race's negative control: the engine reserves cap room the naive way
(count the sales, then post) and keeps no counters, so eligibility sees no usage either, and
concurrent routings must oversell a cap. It proves the race scenario can fail; only the worker of
that control (`celery -A tests.faults.naive_caps_app`) loads it."""

from __future__ import annotations

import time

import django

from config.celery import app

django.setup()  # the engine's models must be loaded before it can be patched

from buyers.models import CapReservation, ContractCap  # noqa: E402
from buyers.services import CapRefusal  # noqa: E402
from routing import selectors  # noqa: E402
from routing.engine import posts  # noqa: E402
from routing.models import Sale, SaleStatus  # noqa: E402

__all__ = ["app"]


def naive_cap_reserve(*, lead, contract, price, now=None):
    cap = ContractCap.objects.filter(contract=contract, max_leads__isnull=False).first()
    sold = Sale.objects.filter(contract=contract, status=SaleStatus.SOLD).count()
    if cap is not None and sold >= cap.max_leads:
        return CapRefusal(reason=f"naive: {sold} sold of {cap.max_leads}")
    time.sleep(0.2)  # check, then act: the window every concurrent routing slips through
    return CapReservation.objects.create(lead=lead, contract=contract, price=price)


posts.cap_reserve = naive_cap_reserve
selectors.cap_usage_for_plans = lambda *, plans, now: {}  # no counters, no usage to see
