"""Delivery to an internal sales team: the engine's post is the assignment (`teams.services`).

No network: the assignment is described as a post to `team:<id>` and its outcome as an answer
(200 assigned, 202 queued, 409 declined), so a team contract is logged and settled like any
other buyer's.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from buyers.models import Contract
from leads.models import Lead
from outbound.rules import Outcome
from routing.mapping import OutgoingRequest
from routing.responses import ParseRule
from teams.models import AssignmentReason, AssignmentStatus
from teams.services import assignment_create

logger = logging.getLogger(__name__)

TEAM_METHOD = "TEAM"
TEAM_RULE = ParseRule(
    success_path="",
    success_values=(),
    success_status_codes=(200, 202),  # assigned, queued
    price_path="",
    reason_path="reason",
    reference_path="assignment_id",
)


def team_request(*, contract: Contract, lead: Lead, fields: dict[str, Any]) -> OutgoingRequest:
    """Describe the delivery to the contract's team as a post, so that it is logged alike."""
    address = f"team:{contract.team_id}"
    headers = {"Lead": str(lead.pk), "Team": str(contract.team_id), "Contract": str(contract.pk)}
    body = "".join(f"{name}: {value}\n" for name, value in fields.items())
    return OutgoingRequest.unmasked(TEAM_METHOD, address, headers, body)


def team_deliver(request: OutgoingRequest) -> Outcome:
    """Assign the lead to the team (no network): 200 assigned, 202 queued, 409 declined."""
    started = time.monotonic()
    try:
        lead = Lead.objects.select_related("vertical").get(pk=request.headers["Lead"])
        outcome = assignment_create(
            lead=lead,
            team_id=int(request.headers["Team"]),
            contract_id=int(request.headers["Contract"]),
        )
    except Exception as exc:  # a failed assignment is a failed delivery, not a failed run
        logger.exception("team assignment failed", extra={"lead_id": request.headers.get("Lead")})
        return Outcome(
            latency_ms=_ms_since(started),
            error=f"assignment failed: {type(exc).__name__}: {exc}"[:500],
        )
    assignment = outcome.assignment
    if assignment is None:
        answer, status = {"status": "declined", "reason": outcome.refusal}, 409
    elif assignment.status == AssignmentStatus.QUEUED:
        answer = {
            "status": "queued",
            "assignment_id": assignment.pk,
            "reason": f"queued until a member is available ({assignment.note})",
        }
        status = 202
    else:
        member = assignment.member.display_name
        label = AssignmentReason(assignment.reason).label.lower() if assignment.reason else ""
        answer = {
            "status": assignment.status,
            "assignment_id": assignment.pk,
            "member": member,
            "reason": f"assigned to {member} ({label})",
        }
        status = 200
    return Outcome(status=status, body=json.dumps(answer), latency_ms=_ms_since(started))


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
