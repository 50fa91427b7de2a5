"""The pages of the leads app outside the admin: a source's posting instructions by shared link."""

from __future__ import annotations

from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from leads.instructions import instructions_source_id, posting_instructions
from leads.models import Source

TEMPLATE = "leads/posting_instructions.html"


def instructions_page(
    request: HttpRequest, *, source: Source, staff: dict | None = None
) -> TemplateResponse:
    """The instructions page of a source; `staff` adds the toolbar staff see (never printed)."""
    context = {"instructions": posting_instructions(source=source, request=request)}
    return TemplateResponse(request, TEMPLATE, {**context, "staff": staff})


def _refusal(request: HttpRequest, *, status: int, error: str) -> TemplateResponse:
    return TemplateResponse(request, TEMPLATE, {"error": error}, status=status)


@never_cache
@require_safe
def shared_instructions_view(request: HttpRequest, token: str) -> HttpResponse:
    """A source's posting instructions, by the signed link staff sent its developer."""
    try:
        source_id = instructions_source_id(token)
    except signing.SignatureExpired:
        return _refusal(
            request,
            status=410,
            error="This link to posting instructions has expired. Ask your account manager "
            "for a new one.",
        )
    except signing.BadSignature:
        return _refusal(
            request,
            status=404,
            error="This link to posting instructions is not valid: check that it was copied "
            "whole, or ask your account manager for a new one.",
        )
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return _refusal(request, status=404, error="These posting instructions no longer exist.")
    return instructions_page(request, source=source)
