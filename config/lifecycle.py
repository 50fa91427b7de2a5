"""Whether this process has begun to shut down.

A web worker marks itself when gunicorn tells it to stop (`config/gunicorn.py`); from then on its
readiness check answers 503, so that a load balancer stops sending it requests while it finishes
the ones it has. Each process has its own mark: gunicorn forks its workers before any is set.
"""

from __future__ import annotations

import threading

_shutting_down = threading.Event()


def shutdown_begin() -> None:
    _shutting_down.set()


def shutting_down() -> bool:
    return _shutting_down.is_set()
