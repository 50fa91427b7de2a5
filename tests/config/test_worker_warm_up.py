"""A worker loads what every routing run reads before its first lead, then freezes it."""

from __future__ import annotations

import gc

from config.celery import _warm_up
from leads import geo


def test_the_warm_up_loads_each_apps_tables_and_freezes_them():
    geo._build_table.cache_clear()
    try:
        _warm_up()

        assert geo._build_table.cache_info().currsize == 1  # leads' ZIP table, through its app
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
