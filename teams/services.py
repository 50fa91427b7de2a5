"""Internal sales teams: assign a lead to a member, queue it, notify, claim and reassign.

Who gets a lead is decided by `teams.rules.choose_member` (pure), from what `teams.selectors`
loads; this module records the outcome. Every change to a team's assignments that depends on
counting them (quotas) or on the rotation's state happens under the team's row lock
(SELECT … FOR UPDATE), so concurrent leads queue on that one row: no member goes over quota and
the rotation never skips or doubles. Claiming is a conditional update on the assignment alone
(`assigned → claimed`), and so is closing it for a reassignment: of a claim and a reassignment
racing for one assignment exactly one wins.

Nothing here touches the network inside a transaction: notifications are rows
(TeamNotification) sent by `teams.tasks.send_team_notification` once the assignment commits,
as the ops notifications send theirs (`notifications.channels.message_attempt`), with bounded,
jittered retries.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

# The senders and the webhook's masked form are the ops notifications' channels: teams reuses
# them rather than keep a second copy.
from config.masking import webhook_display
from leads.models import Lead
from leads.selectors import same_consumer
from notifications.channels import message_attempt, message_queue, stale_pending
from teams.models import (
    OPEN_ASSIGNMENT_STATUSES,
    Assignment,
    AssignmentReason,
    AssignmentStatus,
    Team,
    TeamMember,
    TeamNotification,
    TeamNotificationChannel,
    TeamNotificationPurpose,
    TeamNotificationStatus,
    WhenNobodyAvailable,
)
from teams.rules import (
    Choice,
    Member,
    MemberMessage,
    choose_member,
    first_available,
    lead_facts,
    next_available,
    render_acknowledgement,
    render_member_email,
    render_member_slack,
    unavailable_reason,
    when_words,
)
from teams.selectors import members_assigned_today, members_selection, team_members

logger = logging.getLogger(__name__)

CLAIM_SALT = "leadswitch.team-claim"
CLAIM_LINK_MAX_AGE = timedelta(days=14)
NOTIFY_MAX_ATTEMPTS = 6
# A notification still pending this long after its last attempt lost its task: sent again.
NOTIFY_STALE_PENDING = timedelta(minutes=10)
SWEEP_LIMIT = 200
DEFAULT_TIME_ZONE = "America/New_York"


# --- The choice's other inputs: the existing owner, who let it lapse, the rotation's credits ---


def _existing_owner(team: Team, lead: Lead, now: datetime) -> int | None:
    """The member who last had this consumer (same e-mail or phone) in this team, if recent."""
    if team.existing_owner_days is None:
        return None
    same = same_consumer(lead, via="lead")
    if same is None:
        return None
    return (
        Assignment.objects.filter(
            same,
            team=team,
            status__in=(AssignmentStatus.ASSIGNED, AssignmentStatus.CLAIMED),
            assigned_at__gte=now - timedelta(days=team.existing_owner_days),
        )
        .exclude(lead_id=lead.pk)
        .order_by("-assigned_at", "-id")
        .values_list("member_id", flat=True)
        .first()
    )


def _lapsed(lead_id: Any, team: Team) -> set[int]:
    """Members who had this lead in this team and let it lapse: it never goes back to them."""
    return set(
        Assignment.objects.filter(
            lead_id=lead_id,
            team=team,
            status__in=(AssignmentStatus.REASSIGNED, AssignmentStatus.EXPIRED),
        ).values_list("member_id", flat=True)
    )


def _credits(team: Team) -> dict[int, int]:
    return {int(k): int(v) for k, v in (team.rotation or {}).items()}


def _save_credits(team: Team, credits: dict[int, int]) -> None:
    # An UPDATE, not save(): the rotation is no configuration change (no history row).
    Team.objects.filter(pk=team.pk).update(rotation={str(k): v for k, v in credits.items()})


def _choose(
    team: Team,
    selection: Sequence[Member],
    *,
    lead: Lead,
    now: datetime,
    credits: dict[int, int],
    exclude: Collection[int],
) -> Choice:
    """Choose who of the team gets the lead: its consumer's recent owner, else the rotation."""
    return choose_member(
        selection,
        now=now,
        credits=credits,
        weighted=team.weighted_by_capacity,
        owner_id=_existing_owner(team, lead, now),
        exclude=exclude,
    )


def _one_more_today(selection: Sequence[Member], member_id: int) -> list[Member]:
    """The selection once the member was given one more lead today."""
    return [
        replace(m, assigned_today=m.assigned_today + 1) if m.id == member_id else m
        for m in selection
    ]


# --- Assigning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssignOutcome:
    """The lead's open assignment (assigned or queued), or why the team declined it."""

    assignment: Assignment | None
    refusal: str = ""


def assignment_create(
    *, lead: Lead, team_id: int, contract_id: int | None = None, now: datetime | None = None
) -> AssignOutcome:
    """Assign the lead to a member of the team now, or queue it until one is available.

    Idempotent: a lead with an open assignment in the team gets that one back (a redelivered
    routing task never assigns twice). Declined (no assignment) when the team has no active
    member, or nobody is available and the team passes such leads on.
    """
    now = now or timezone.now()
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=team_id).first()
        if team is None:
            return AssignOutcome(None, "the team no longer exists")
        current = Assignment.objects.filter(
            lead=lead, team=team, status__in=OPEN_ASSIGNMENT_STATUSES
        ).first()
        if current is not None:
            return AssignOutcome(current)
        members = team_members(team)
        if not any(m.active for m in members):
            return AssignOutcome(None, f"{team} has no active member")
        selection = members_selection(members, members_assigned_today(members, now))
        choice = _choose(
            team,
            selection,
            lead=lead,
            now=now,
            credits=_credits(team),
            exclude=_lapsed(lead.pk, team),
        )
        if choice.member_id is None:
            if team.when_nobody_available == WhenNobodyAvailable.PASS:
                return AssignOutcome(None, f"declined: {choice.note}")
            assignment = Assignment.objects.create(
                lead=lead,
                team=team,
                contract_id=contract_id,
                status=AssignmentStatus.QUEUED,
                note=choice.note,
                created_at=now,
            )
        else:
            by_id = {m.pk: m for m in members}
            assignment = _assign(
                team=team,
                lead=lead,
                member=by_id[choice.member_id],
                reason=choice.reason,
                note=choice.note,
                now=now,
                contract_id=contract_id,
            )
            _save_credits(team, choice.credits)
        if team.acknowledge_consumer:
            opening = now if choice.member_id is not None else first_available(selection, now)
            _acknowledgement_queue(team=team, assignment=assignment, lead=lead, opening=opening)
    return AssignOutcome(assignment)


def _assign(
    *,
    team: Team,
    lead: Lead,
    member: TeamMember,
    reason: str,
    note: str,
    now: datetime,
    contract_id: int | None = None,
    previous: Assignment | None = None,
) -> Assignment:
    assignment = Assignment.objects.create(
        lead=lead,
        team=team,
        contract_id=contract_id,
        member=member,
        previous=previous,
        status=AssignmentStatus.ASSIGNED,
        reason=reason,
        note=note[:500],
        created_at=now,
        assigned_at=now,
        due_by=now + timedelta(minutes=team.claim_timeout_minutes),
    )
    _member_notifications_queue(team=team, assignment=assignment, member=member, lead=lead)
    return assignment


def _assign_queued(
    *, team: Team, queued: Assignment, member: TeamMember, choice: Choice, now: datetime
) -> bool:
    """Give a queued assignment to the member; False if it is no longer queued."""
    due_by = now + timedelta(minutes=team.claim_timeout_minutes)
    note = f"queued since {queued.created_at:%Y-%m-%d %H:%M} UTC; {choice.note}"[:500]
    taken = Assignment.objects.filter(pk=queued.pk, status=AssignmentStatus.QUEUED).update(
        status=AssignmentStatus.ASSIGNED,
        member=member,
        reason=AssignmentReason.QUEUED,
        note=note,
        assigned_at=now,
        due_by=due_by,
    )
    if not taken:
        return False
    queued.status, queued.member, queued.reason = (
        AssignmentStatus.ASSIGNED,
        member,
        AssignmentReason.QUEUED,
    )
    queued.note, queued.assigned_at, queued.due_by = note, now, due_by
    _member_notifications_queue(team=team, assignment=queued, member=member, lead=queued.lead)
    return True


def assignments_assign_queued(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Assign queued leads to members whose hours have opened (oldest first); return how many.

    Run by beat every minute; a queued lead waits at most that long after the first member's
    hours open.
    """
    now = now or timezone.now()
    team_ids = list(
        Assignment.objects.filter(status=AssignmentStatus.QUEUED)
        .order_by()
        .values_list("team_id", flat=True)
        .distinct()
    )
    assigned = 0
    for team_id in team_ids:
        if assigned >= limit:
            break
        assigned += _team_queue_drain(team_id=team_id, now=now, limit=limit - assigned)
    return assigned


def _team_queue_drain(*, team_id: int, now: datetime, limit: int) -> int:
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=team_id).first()
        if team is None:
            return 0
        members = team_members(team)
        counts = members_assigned_today(members, now)
        selection = members_selection(members, counts)
        if all(unavailable_reason(m, now) for m in selection):
            return 0  # nobody may have a lead now: the queue waits
        by_id = {m.pk: m for m in members}
        credits = _credits(team)
        queued = (
            Assignment.objects.filter(team=team, status=AssignmentStatus.QUEUED)
            .select_related("lead__vertical")
            .order_by("created_at", "id")[:limit]
        )
        assigned = 0
        for assignment in queued:
            choice = _choose(
                team,
                selection,
                lead=assignment.lead,
                now=now,
                credits=credits,
                exclude=_lapsed(assignment.lead_id, team),
            )
            if choice.member_id is None:
                continue  # this lead's untried members are out; another's may not be
            member = by_id[choice.member_id]
            if not _assign_queued(
                team=team, queued=assignment, member=member, choice=choice, now=now
            ):
                continue
            assigned += 1
            credits = choice.credits
            selection = _one_more_today(selection, member.pk)
        _save_credits(team, credits)
    return assigned


@dataclass(frozen=True)
class ReassignCounts:
    reassigned: int = 0
    queued: int = 0
    expired: int = 0


def assignments_reassign_overdue(
    *, now: datetime | None = None, limit: int = SWEEP_LIMIT
) -> ReassignCounts:
    """Take leads nobody claimed within their team's claim timeout from their member and give
    them to the next available member who has not had them; queue them when nobody is
    available now, and let them expire when nobody is left to take them.
    """
    now = now or timezone.now()
    overdue = list(
        Assignment.objects.filter(status=AssignmentStatus.ASSIGNED, due_by__lte=now)
        .order_by("due_by")
        .values_list("pk", "team_id")[:limit]
    )
    return _reassign(overdue, now=now)


def assignments_reassign_now(
    *, assignment_ids: Iterable[int], actor: str, now: datetime | None = None
) -> ReassignCounts:
    """Reassign these assignments (those still awaiting a claim) at once, as ops asked."""
    now = now or timezone.now()
    rows = Assignment.objects.filter(
        pk__in=list(assignment_ids), status=AssignmentStatus.ASSIGNED
    ).values_list("pk", "team_id")
    return _reassign(list(rows), now=now, why=f"reassigned by {actor}" if actor else "")


def _reassign(rows: Sequence[tuple[int, int]], *, now: datetime, why: str = "") -> ReassignCounts:
    by_team: dict[int, list[int]] = {}
    for pk, team_id in rows:
        by_team.setdefault(team_id, []).append(pk)
    totals = ReassignCounts()
    for team_id, ids in by_team.items():
        counts = _team_reassign(team_id=team_id, ids=ids, now=now, why=why)
        totals = ReassignCounts(
            totals.reassigned + counts.reassigned,
            totals.queued + counts.queued,
            totals.expired + counts.expired,
        )
    return totals


def _team_reassign(*, team_id: int, ids: list[int], now: datetime, why: str) -> ReassignCounts:
    reassigned = queued = expired = 0
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team_id)
        members = team_members(team)
        by_id = {m.pk: m for m in members}
        selection = members_selection(members, members_assigned_today(members, now))
        credits = _credits(team)
        lapsed_rows = (
            Assignment.objects.filter(pk__in=ids, status=AssignmentStatus.ASSIGNED)
            .select_related("lead__vertical", "member")
            .order_by("due_by", "id")
        )
        for lapsed in lapsed_rows:
            exclude = _lapsed(lapsed.lead_id, team) | {lapsed.member_id}
            choice = _choose(
                team, selection, lead=lapsed.lead, now=now, credits=credits, exclude=exclude
            )
            later = [m for m in selection if m.id not in exclude and next_available(m, now)]
            gone = choice.member_id is None and not later
            closed = Assignment.objects.filter(
                pk=lapsed.pk, status=AssignmentStatus.ASSIGNED
            ).update(
                status=AssignmentStatus.EXPIRED if gone else AssignmentStatus.REASSIGNED,
                closed_at=now,
            )
            if not closed:
                continue  # claimed meanwhile
            because = why or (
                f"{lapsed.member.display_name} did not claim it within "
                f"{team.claim_timeout_minutes} min"
            )
            if gone:
                expired += 1
                logger.warning(
                    "a team lead expired: nobody left to take it",
                    extra={"assignment_id": lapsed.pk, "team_id": team.pk},
                )
                continue
            if choice.member_id is None:
                Assignment.objects.create(
                    lead=lapsed.lead,
                    team=team,
                    contract_id=lapsed.contract_id,
                    previous=lapsed,
                    status=AssignmentStatus.QUEUED,
                    note=f"{because}; {choice.note}"[:500],
                    created_at=now,
                )
                queued += 1
                continue
            member = by_id[choice.member_id]
            _assign(
                team=team,
                lead=lapsed.lead,
                member=member,
                reason=AssignmentReason.REASSIGNED,
                note=f"{because}; {choice.note}",
                now=now,
                contract_id=lapsed.contract_id,
                previous=lapsed,
            )
            reassigned += 1
            credits = choice.credits
            selection = _one_more_today(selection, member.pk)
        _save_credits(team, credits)
    return ReassignCounts(reassigned, queued, expired)


# --- Claiming -----------------------------------------------------------------------------------


def claim_token(assignment: Assignment) -> str:
    """Return the signed token that lets the assigned member claim without signing in."""
    return signing.dumps([assignment.pk, assignment.member_id], salt=CLAIM_SALT)


def claim_token_member(token: str, *, assignment_id: int) -> int | None:
    """Return the member id a claim token was made for, if it is genuine, recent and for this
    assignment; otherwise None."""
    try:
        signed_id, member_id = signing.loads(
            token, salt=CLAIM_SALT, max_age=CLAIM_LINK_MAX_AGE.total_seconds()
        )
    except (signing.BadSignature, TypeError, ValueError):
        return None
    return member_id if signed_id == assignment_id else None


def claim_url(assignment: Assignment) -> str:
    path = reverse("team-assignment-claim", args=[assignment.pk])
    return f"{settings.SITE_URL}{path}?t={claim_token(assignment)}"


@dataclass(frozen=True)
class ClaimOutcome:
    claimed: bool
    message: str


def assignment_claim(
    *, assignment: Assignment, member_id: int | None, now: datetime | None = None
) -> ClaimOutcome:
    """Claim the assignment for the member it was given to; say why not otherwise."""
    now = now or timezone.now()
    taken = Assignment.objects.filter(
        pk=assignment.pk, member_id=member_id, status=AssignmentStatus.ASSIGNED
    ).update(status=AssignmentStatus.CLAIMED, claimed_at=now)
    assignment.refresh_from_db()
    if taken:
        return ClaimOutcome(True, f"The lead is yours: claimed at {_hhmm(now)} UTC.")
    return ClaimOutcome(False, claim_refusal(assignment, member_id=member_id))


def claim_refusal(assignment: Assignment, *, member_id: int | None) -> str:
    """Say why this member may not claim the assignment now ('' if they may)."""
    status = assignment.status
    if status == AssignmentStatus.QUEUED:
        return "This lead is waiting for a member's hours to open: it is nobody's yet."
    if member_id is None or assignment.member_id != member_id:
        who = (
            assignment.member.display_name
            if status == AssignmentStatus.ASSIGNED
            else "someone else"
        )
        return f"This lead is assigned to {who}, not to you."
    if status == AssignmentStatus.CLAIMED:
        return f"You already claimed this lead at {_hhmm(assignment.claimed_at)} UTC."
    if status in (AssignmentStatus.REASSIGNED, AssignmentStatus.EXPIRED):
        then = "given to the next member" if status == AssignmentStatus.REASSIGNED else "closed"
        return (
            f"This lead was not claimed within {assignment.team.claim_timeout_minutes} minutes "
            f"and was {then} at {_hhmm(assignment.closed_at)} UTC: it is no longer yours."
        )
    return ""


def _hhmm(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


# --- Notifications ------------------------------------------------------------------------------


def _member_notifications_queue(
    *, team: Team, assignment: Assignment, member: TeamMember, lead: Lead
) -> list[TeamNotification]:
    """Record the member's messages (e-mail, Slack) and send them once the assignment commits."""
    message = MemberMessage(
        team=team.name,
        member=member.display_name,
        facts=lead_facts(lead),
        claim_url=claim_url(assignment),
        due_by=assignment.due_by,
        time_zone=member.time_zone,
        reason=AssignmentReason(assignment.reason).label.lower(),
    )
    rows = []
    if team.notify_by_email and member.contact_email:
        rows.append(
            TeamNotification(
                assignment=assignment,
                purpose=TeamNotificationPurpose.ASSIGNED,
                channel=TeamNotificationChannel.EMAIL,
                recipient=member.contact_email,
                payload=render_member_email(message, to=member.contact_email),
            )
        )
    if team.slack_webhook_url:
        rows.append(
            TeamNotification(
                assignment=assignment,
                purpose=TeamNotificationPurpose.ASSIGNED,
                channel=TeamNotificationChannel.SLACK,
                recipient=webhook_display(team.slack_webhook_url),
                payload=render_member_slack(message, slack_user_id=member.slack_user_id),
            )
        )
    return _notifications_record(rows)


def _acknowledgement_queue(
    *, team: Team, assignment: Assignment, lead: Lead, opening: datetime | None
) -> list[TeamNotification]:
    """Tell the consumer at once that the team has their request, and when it will call."""
    if not lead.email:
        return []
    data = lead.data if isinstance(lead.data, dict) else {}
    when = when_words(opening, now=assignment.created_at, time_zone=_consumer_zone(data, opening))
    body = render_acknowledgement(
        text=team.acknowledgement_text,
        first_name=str(data.get("first_name") or ""),
        team=team.name,
        when=when,
    )
    payload = {"subject": f"{team.name} has your request", "to": [lead.email], "body": body}
    return _notifications_record(
        [
            TeamNotification(
                assignment=assignment,
                purpose=TeamNotificationPurpose.ACKNOWLEDGEMENT,
                channel=TeamNotificationChannel.EMAIL,
                recipient=lead.email,
                payload=payload,
            )
        ]
    )


def _consumer_zone(data: dict[str, Any], opening: datetime | None) -> str:
    """The consumer's time zone (enriched from their ZIP), else the opening member's."""
    for candidate in (data.get("time_zone"), getattr(getattr(opening, "tzinfo", None), "key", "")):
        if not candidate:
            continue
        try:
            ZoneInfo(str(candidate))
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return str(candidate)
    return DEFAULT_TIME_ZONE


def _notifications_record(rows: Iterable[TeamNotification]) -> list[TeamNotification]:
    saved = []
    for row in rows:
        row.save()
        transaction.on_commit(partial(_enqueue_notification, row.pk), robust=True)
        saved.append(row)
    return saved


def _enqueue_notification(notification_id: int) -> None:
    from teams.tasks import send_team_notification

    # Not queued, it stays pending: team_notifications_sweep queues it again after
    # NOTIFY_STALE_PENDING.
    message_queue(
        send_team_notification,
        notification_id,
        logger=logger,
        log="team notification not queued",
        extra={"notification_id": notification_id},
    )


def team_notification_send(*, notification_id: int) -> str:
    """Make the next attempt at a pending notification and record it.

    Return "sent", "retry" (a transient failure with attempts left), "failed" or "skipped".
    A member's message whose assignment was claimed or reassigned meanwhile is not sent.
    """
    notification = (
        TeamNotification.objects.select_related("assignment__team")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None or notification.status != TeamNotificationStatus.PENDING:
        return "skipped"
    assignment = notification.assignment
    team = assignment.team
    refusal = ""
    if (
        notification.purpose == TeamNotificationPurpose.ASSIGNED
        and assignment.status != AssignmentStatus.ASSIGNED
    ):
        refusal = f"not sent: the lead is {assignment.get_status_display().lower()} meanwhile"
    elif notification.channel == TeamNotificationChannel.SLACK and not team.slack_webhook_url:
        refusal = "the team's Slack webhook was removed"
    return message_attempt(
        notification,
        refusal=refusal,
        webhook_url=team.slack_webhook_url,
        subject="",
        max_attempts=NOTIFY_MAX_ATTEMPTS,
        answer_column=False,
        logger=logger,
        log="team notification not delivered",
        extra={"notification_id": notification.pk},
    )


def team_notifications_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Queue again the pending notifications whose task was lost (broker restarted, worker
    killed); return how many."""
    now = now or timezone.now()
    stale = stale_pending(TeamNotification, before=now - NOTIFY_STALE_PENDING, limit=limit)
    for notification_id in stale:
        _enqueue_notification(notification_id)
    return len(stale)
