"""A worker (Celery or web) loads what every routing run reads before its first lead or
request, then freezes it."""

from __future__ import annotations

import gc
import importlib

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


def test_a_web_worker_warms_up_as_it_loads_the_wsgi_application():
    import config.wsgi

    geo._build_table.cache_clear()
    try:
        importlib.reload(config.wsgi)  # what gunicorn does once in each worker it forks

        assert geo._build_table.cache_info().currsize == 1
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
