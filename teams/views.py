"""The page a team member claims a lead on, from the link in their e-mail or Slack message."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from teams.models import Assignment, AssignmentStatus
from teams.rules import lead_facts
from teams.selectors import member_for_user
from teams.services import (
    CLAIM_LINK_MAX_AGE,
    assignment_claim,
    claim_refusal,
    claim_token_member,
)


def _page(request: HttpRequest, *, status: int = 200, **context) -> TemplateResponse:
    return TemplateResponse(request, "teams/claim.html", context, status=status)


def _claimant(request: HttpRequest, assignment: Assignment) -> int | HttpResponse:
    """The member claiming: the one the link's signed token names, or else the signed-in staff
    user's membership of the team; a page saying why not otherwise."""
    token = request.POST.get("t") or request.GET.get("t") or ""
    if token:
        member_id = claim_token_member(token, assignment_id=assignment.pk)
        if member_id is None:
            days = CLAIM_LINK_MAX_AGE.days
            return _page(
                request,
                status=403,
                error=f"This claim link is not valid: mistyped, or older than {days} days.",
            )
        return member_id
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), login_url="admin:login")
    member_id = member_for_user(assignment, request.user)
    if member_id is None:
        return _page(request, status=403, error=f"You are not a member of {assignment.team}.")
    return member_id


@never_cache
@require_http_methods(["GET", "POST"])
def assignment_claim_view(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """GET: what is to be claimed and a button; POST: claim it.

    Claiming works only for the member the lead is assigned to, while it is assigned.
    """
    assignment = (
        Assignment.objects.select_related("team", "member__user", "lead__vertical")
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None:
        return _page(request, status=404, error="There is no such lead assignment.")
    member_id = _claimant(request, assignment)
    if isinstance(member_id, HttpResponse):
        return member_id
    if request.method == "POST":
        outcome = assignment_claim(assignment=assignment, member_id=member_id)
        refusal = "" if outcome.claimed else outcome.message
        message = outcome.message if outcome.claimed else ""
    else:
        refusal = claim_refusal(assignment, member_id=member_id)
        message = ""
        if assignment.status == AssignmentStatus.CLAIMED and assignment.member_id == member_id:
            refusal, message = "", refusal  # a second visit: "you already claimed it"
    if refusal:
        return _page(request, status=409, error=refusal)
    return _page(
        request,
        assignment=assignment,
        facts=lead_facts(assignment.lead),
        message=message,
        claimable=assignment.status == AssignmentStatus.ASSIGNED,
        token=request.POST.get("t") or request.GET.get("t") or "",
    )
