"""Infrastructure endpoints that belong to no app: liveness and readiness for load balancers.

- `/health/live` (and `/health/`): the process answers. It checks nothing else, so that a
  supervisor restarts a hung process, never every process at once because the database blinked.
- `/health/ready`: the process may be sent requests: the database answers and has every
  migration this code has, the broker and the shared cache answer when configured, and the
  process is not shutting down. 200 with each check's result and time, else 503 problem+json
  naming each failed check.

`HealthMiddleware` answers them first of all: a load balancer probes a node by its address, over
plain HTTP, which the host check (ALLOWED_HOSTS) and the HTTPS redirect would otherwise refuse.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers

from config.health import FAILED, readiness
from config.problems import problem_response

LIVE_PATHS = frozenset({"/health/", "/health/live", "/health/live/"})
READY_PATHS = frozenset({"/health/ready", "/health/ready/"})


def health_live(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def health_ready(request: HttpRequest) -> HttpResponse:
    results = readiness()
    checks = {result.name: result.as_dict() for result in results}
    failed = [result.name for result in results if result.status == FAILED]
    if failed:
        response = problem_response(
            "not-ready", f"Not ready: {', '.join(failed)}.", failed=failed, checks=checks
        )
        # Each failed check has logged its warning (config.health); Django's ERROR "Service
        # Unavailable" on top would page someone for every probe of a draining node.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
    return JsonResponse({"status": "ready", "checks": checks})


class HealthMiddleware:
    """Answer the health endpoints before any other middleware sees the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in LIVE_PATHS:
            view = health_live
        elif request.path in READY_PATHS:
            view = health_ready
        else:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = HttpResponse(status=405)
            response["Allow"] = "GET, HEAD"
            return response
        response = view(request)
        add_never_cache_headers(response)
        return response
