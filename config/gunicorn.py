"""Gunicorn's settings: `gunicorn -c python:config.gunicorn config.wsgi` (`./dev run` does).

Its access log goes through the same masking as Django's logs (`config/log_filters.py`): API keys
and admin search terms (a consumer's e-mail or phone in `?q=`) never reach it, in the request
line, the query string, the referrer or any header. Gunicorn trusts forwarded headers
(`X-Forwarded-Proto`) only from the proxies Django trusts (`TRUSTED_PROXIES`).

Stopping (SIGTERM, as systemd sends): each worker marks itself as shutting down, so that its
readiness check (`/health/ready`) answers 503, and keeps serving for `WEB_DRAIN_SECONDS` (0 by
default) while a load balancer sees that and takes the node out; then it closes its listening
socket, so that new connections are refused at once instead of waiting in the backlog, and
finishes the requests it holds within `REQUEST_GRACE_S`. `graceful_timeout` is the sum: after it
gunicorn kills what is left. A supervisor's stop timeout must exceed it (deploy/systemd/).
"""

from __future__ import annotations

import os
import signal
import threading
from functools import partial
from typing import Any

from gunicorn.glogging import Logger

from config.lifecycle import shutdown_begin, shutting_down
from config.log_filters import mask_keys
from config.proxies import proxy_networks

# The same variable, read by the same function, as config/settings.py's TRUSTED_PROXIES; as
# networks in their normal form (gunicorn refuses `10.0.0.1/8`, which Django takes).
forwarded_allow_ips = ",".join(
    str(network) for network in proxy_networks(os.environ.get("TRUSTED_PROXIES", "").split(","))
)


class AccessLogger(Logger):
    """Gunicorn's logger, whose access log atoms are masked before they are formatted."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: mask_keys(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }


logger_class = AccessLogger


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{name} must not be negative, not {raw!r}")
    return value


DRAIN_S = _env_seconds("WEB_DRAIN_SECONDS", 0)
# What a request in flight when draining ends is given to finish (gunicorn's own default).
REQUEST_GRACE_S = 30
graceful_timeout = int(DRAIN_S + REQUEST_GRACE_S)


def post_worker_init(worker: Any) -> None:
    """Replace the worker's SIGTERM handler (gunicorn's stops accepting at once) with draining."""
    signal.signal(signal.SIGTERM, partial(_drain, worker))


def _drain(worker: Any, signum: int, frame: Any) -> None:
    if shutting_down():
        return  # a second SIGTERM (systemd's and the arbiter's both) changes nothing
    shutdown_begin()
    worker.log.info("Worker %s draining for %s s before it stops", worker.pid, DRAIN_S)
    timer = threading.Timer(DRAIN_S, _stop_accepting, args=(worker,))
    timer.daemon = True
    timer.start()


def _stop_accepting(worker: Any) -> None:
    method_queue = getattr(worker, "method_queue", None)
    if method_queue is None:  # a worker class without the threaded worker's event loop
        worker.handle_exit(signal.SIGTERM, None)
        return
    # Run in the worker's event loop (a gthread worker's sockets are its loop's alone).
    method_queue.defer(partial(_close_listeners, worker))


def _close_listeners(worker: Any) -> None:
    # Not alive first: the loop would otherwise start accepting again on its next turn. The
    # arbiter has closed its copy of each listening socket already, so closing this worker's
    # (and every other worker's, as each stops) makes the kernel refuse new connections.
    worker.alive = False
    worker.set_accept_enabled(False)
    for listener in worker.sockets:
        listener.close()
