"""A Celery app for the poison-lead scenario: routing a lead whose sub_id is "poison" kills the
process running it, every time, as a native crash in a buyer's parser would. Only the worker this
scenario starts (`celery -A tests.faults.poison_app`) loads it."""

from __future__ import annotations

import os

import django

from config.celery import app

django.setup()  # the engine's models must be loaded before it can be patched

from routing.engine import route  # noqa: E402

__all__ = ["app"]

ping_all = route.ping_all


def _dies_on_poison(run, offers, ping_fields):
    if run.lead.sub_id == "poison":
        os._exit(70)
    return ping_all(run, offers, ping_fields)


route.ping_all = _dies_on_poison
