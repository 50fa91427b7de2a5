"""RFC 9457 problem details: one format for every API error.

Every problem has a machine-readable `type` (a relative URI under /api/problems/ that documents
it), a `title` that depends only on the type, a human `detail` about this occurrence and, for
input errors, `errors`: field path -> list of messages.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/api/problems/"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}  # its schema in an OpenAPI document


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return f"{PROBLEM_BASE}{self.slug}"


_TYPES = [
    ProblemType(
        "malformed-request",
        400,
        "Malformed request",
        "The body is not a JSON object of the documented shape. `errors` says where.",
    ),
    ProblemType(
        "invalid-lead",
        400,
        "Invalid lead",
        "The lead does not satisfy its vertical's schema. `errors` names every field at fault; "
        "the lead is stored as invalid under `id` so that ops can see it.",
    ),
    ProblemType(
        "invalid-parameters",
        400,
        "Invalid parameters",
        "A query parameter is not valid. `errors` names it.",
    ),
    ProblemType(
        "bad-request",
        400,
        "Bad request",
        "The request itself could not be read, before any of it reached the API: for instance "
        "a Host header this server does not answer to.",
    ),
    ProblemType(
        "unauthenticated",
        401,
        "Authentication required",
        "Send a live key of your source as `Authorization: Bearer <API key>`, or where its "
        "posting profile puts it (a header or parameter of its own); `detail` says what was "
        "wrong.",
    ),
    ProblemType(
        "forbidden",
        403,
        "Not allowed",
        "The source is inactive, or may not submit to this vertical.",
    ),
    ProblemType("not-found", 404, "Not found", "Nothing here is visible to your source."),
    ProblemType(
        "method-not-allowed",
        405,
        "Method not allowed",
        "This address does not take that method; or lead data came in a GET (or a POST) from a "
        "source whose posting profile sends leads the other way, which `detail` names.",
    ),
    ProblemType(
        "not-acceptable",
        406,
        "Not acceptable",
        "The API answers JSON (application/json or application/problem+json).",
    ),
    ProblemType(
        "duplicate-lead",
        409,
        "Duplicate lead",
        "A lead with the same contact details was accepted within the vertical's look-back "
        "window. `duplicate_of` is the earlier lead's id when it was your own.",
    ),
    ProblemType(
        "length-required",
        411,
        "Length required",
        "Send the body with a Content-Length header: a body sent in chunks without one is not "
        "read. The request is stored as refused under `id`.",
    ),
    ProblemType(
        "payload-too-large",
        413,
        "Request body too large",
        "The body is over the intake size limit given in `detail`.",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "Send the body as JSON with `Content-Type: application/json`, or in the format of your "
        "source's posting profile (flat JSON, a form, XML), which `detail` names.",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "Idempotency key reused",
        "This Idempotency-Key was first used within 24 hours with a different body. Use a new "
        "key for a new request; retry with the same body to get the first answer again.",
    ),
    ProblemType(
        "config-refused",
        422,
        "Configuration refused",
        "The configuration API did not apply the document or object: nothing was changed. "
        "`errors` maps each place in it (`contracts[3].caps[0].period`; for one object, the "
        "place in that object) to what is wrong there.",
    ),
    ProblemType(
        "rate-limited",
        429,
        "Too many requests",
        "Your source sent more requests per second than its limit. Wait `Retry-After` seconds.",
    ),
    ProblemType(
        "invalid-ping",
        400,
        "Invalid ping",
        "An inbound ping carries only its vertical's ping fields: never personal data, which "
        "goes with the post. `errors` names every field at fault.",
    ),
    ProblemType(
        "ping-not-found",
        404,
        "Unknown ping",
        "No ping of your source has this `ping_id`. The post is stored as invalid under `id`.",
    ),
    ProblemType(
        "ping-fields-changed",
        409,
        "Pinged fields changed",
        "The post's values of the fields sent in the ping differ from the ping's: the bids were "
        "made on the ping's. `errors` names each changed field. Ping again with the new values.",
    ),
    ProblemType(
        "ping-already-posted",
        409,
        "Ping already posted",
        "This ping was taken up by an earlier post that is still being answered. Retry: the "
        "first post's answer is then replayed.",
    ),
    ProblemType(
        "ping-expired",
        410,
        "Ping expired",
        "The ping's bids are no longer held (its `expires_at` has passed). Ping again.",
    ),
    ProblemType(
        "ping-without-bid",
        422,
        "Ping got no bid",
        "The ping was answered `no_bid`: there is no price to take up. Post the lead without "
        "`ping_id` to have it routed as any lead, or ping again later.",
    ),
    ProblemType("server-error", 500, "Server error", "Something went wrong on our side."),
    ProblemType(
        "unavailable",
        503,
        "Service unavailable",
        "The service cannot reach its database for a moment. Retry after `Retry-After` "
        "seconds, with the same Idempotency-Key if you sent one: a request answered 503 may "
        "or may not have been stored, and the retry tells which.",
    ),
    ProblemType(
        "not-ready",
        503,
        "Not ready",
        "This process should not be sent requests now (its readiness check, for load "
        "balancers). `failed` names each check that failed (database, migrations, broker, "
        "cache, shutdown) and `checks` gives every check's result and time in milliseconds.",
    ),
]
# What a partner is told to wait before retrying while the database is unreachable.
UNAVAILABLE_RETRY_AFTER_S = 5
PROBLEM_TYPES: dict[str, ProblemType] = {t.slug: t for t in _TYPES}
_BY_STATUS = {t.status: t for t in reversed(_TYPES)}  # the first type of a status is its default


def problems_document(
    result: dict[str, Any],
    *,
    common: dict[str, str],
    headers: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Document every operation's problem answers in an OpenAPI document (drf-spectacular's
    `result`): each operation gains the `common` problems (status -> description) its API's
    base may answer, every 4xx and 5xx is application/problem+json, and a status in `headers`
    is described with those headers."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status, description in common.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    # The exception handler answers every error with a problem document.
                    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
                if status in headers:
                    response["headers"] = {**headers[status], **response.get("headers", {})}
    return result


def problem_body(slug: str, detail: str, **extensions: Any) -> dict[str, Any]:
    problem = PROBLEM_TYPES[slug]
    body: dict[str, Any] = {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
    }
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body


def problem_bytes(slug: str, detail: str, **extensions: Any) -> bytes:
    return json.dumps(problem_body(slug, detail, **extensions), separators=(",", ":")).encode()


def problem_response(
    slug: str, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any
) -> HttpResponse:
    response = HttpResponse(
        problem_bytes(slug, detail, **extensions),
        status=PROBLEM_TYPES[slug].status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"field.path": ["message", ...]}."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            flat.update(_flatten(value, f"{prefix}.{name}" if prefix and name else prefix or name))
        return flat
    if isinstance(detail, list) and detail and all(not isinstance(d, dict | list) for d in detail):
        return {prefix or "_": [str(d) for d in detail]}
    if isinstance(detail, list):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "_": [str(detail)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:  # noqa: PLR0911
    """DRF's exception handler, answering problem+json."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or unreachable (a lost connection, a server restarting): the
        # caller should come back, not read it as our bug. Django has already marked the
        # connection unusable, so the next request connects afresh.
        logger.warning("database unavailable: %s", type(exc).__name__)
        return problem_response(
            "unavailable",
            f"The service cannot reach its database; retry in {UNAVAILABLE_RETRY_AFTER_S} s.",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handling (handler500 below) takes over
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait) if exc.wait is not None else 1
        headers["Retry-After"] = str(max(1, wait))
        return problem_response(
            "rate-limited",
            f"Over your source's rate limit: retry in {max(1, wait)} s.",
            headers=headers,
        )
    if isinstance(exc, exceptions.ValidationError):
        slug = "invalid-parameters" if context["request"].method == "GET" else "malformed-request"
        return problem_response(
            slug, "The request has errors; see `errors`.", errors=_flatten(exc.detail)
        )
    if isinstance(exc, exceptions.ParseError):
        return problem_response("malformed-request", str(exc.detail))
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return problem_response(
            "unauthenticated",
            str(exc.detail),
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    problem = _BY_STATUS.get(response.status_code)
    if problem is None:
        return response
    for name in ("Allow",):
        if name in response:
            headers[name] = response[name]
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    return problem_response(problem.slug, str(detail), headers=headers)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_response("not-found", f"No resource at {request.path}.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


@csrf_exempt
def api_path_without_slash(request: HttpRequest, path: str) -> HttpResponse:
    """Send /api/… without its trailing slash on to the address with it, method and body kept.

    Django's APPEND_SLASH would answer 301, which clients follow with a GET: a partner's POST
    to /api/v1/leads would list its leads (200) instead of submitting one.
    """
    target = f"{request.path}/"
    try:
        resolve(target)
    except Resolver404:
        return problem_response("not-found", f"No resource at {request.path}.")
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(
        f"{target}?{query}" if query else target, preserve_request=True
    )


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return problem_response("bad-request", "The request could not be read.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return problem_response("server-error", "An internal error occurred; it was logged.")
    from django.views.defaults import server_error

    return server_error(request)


@csrf_exempt  # read-only: any other method is answered 405
def problem_type_view(request: HttpRequest, slug: str = "") -> HttpResponse:
    """Document the problem types: JSON for clients, a page for people."""
    if request.method not in ("GET", "HEAD"):
        return problem_response(
            "method-not-allowed",
            f"Method {request.method} not allowed: the problem types are read-only.",
            headers={"Allow": "GET, HEAD"},
        )
    if slug and slug not in PROBLEM_TYPES:
        raise Http404
    shown = [PROBLEM_TYPES[slug]] if slug else _TYPES
    if "html" in request.headers.get("Accept", ""):
        return render(request, "api/problems.html", {"problems": shown})
    rows = [
        {"type": p.uri, "status": p.status, "title": p.title, "description": p.description}
        for p in shown
    ]
    return JsonResponse(rows[0] if slug else rows, safe=False)
