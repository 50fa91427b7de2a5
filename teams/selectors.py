"""Internal sales teams, read: the members as the rotation sees them, and what the admin shows."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Q
from django.utils import timezone

from buyers.caps import period_bounds
from buyers.models import CapPeriod
from buyers.schedule import Schedule
from teams.models import Assignment, AssignmentStatus, Team, TeamMember
from teams.rules import Member, next_available, unavailable_reason

logger = logging.getLogger(__name__)

NEVER_OPEN = Schedule(
    tz=ZoneInfo("UTC"),
    windows=((),) * 7,
    closed_dates=frozenset(),
    closed_notes=(),
    always_open=False,
)


def team_members(team: Team) -> list[TeamMember]:
    """Return the team's members in rotation order, with their staff accounts."""
    return list(team.members.select_related("user").order_by("position", "id"))


def members_assigned_today(members: Sequence[TeamMember], now: datetime) -> dict[int, int]:
    """Count each member's assignments of their own day (from their local midnight), in one
    query. Every assignment counts, claimed or not: a quota is what a member was given."""
    if not members:
        return {}
    days = Q()
    for member in members:
        start, end = period_bounds(CapPeriod.DAY, now, ZoneInfo(member.time_zone))
        days |= Q(member_id=member.pk, assigned_at__gte=start, assigned_at__lt=end)
    rows = (
        Assignment.objects.filter(days)
        .values("member_id")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("member_id", "count")
    )
    return dict(rows)


def members_selection(members: Sequence[TeamMember], counts: dict[int, int]) -> list[Member]:
    """Return the members as the choice sees them, with `counts` of what they had today."""
    selection = []
    for member in members:
        values = {
            "id": member.pk,
            "name": member.display_name,
            "active": member.active,
            "away": member.away,
            "daily_quota": member.daily_quota,
            "assigned_today": counts.get(member.pk, 0),
            "capacity": member.capacity,
        }
        try:
            selected = Member.build(
                time_zone=member.time_zone, working_hours=member.working_hours, **values
            )
        except (ValueError, ZoneInfoNotFoundError):
            # Saved past the form (a shell, an import): this member is never in hours until
            # fixed, and the rest of the team keeps working.
            logger.warning("a team member's hours cannot be read", extra={"member_id": member.pk})
            selected = Member(schedule=NEVER_OPEN, **values)
        selection.append(selected)
    return selection


def member_for_user(assignment: Assignment, user: Any) -> int | None:
    """The member of the assignment's team that a signed-in user is, if any."""
    if user is None or not user.is_authenticated:
        return None
    return (
        TeamMember.objects.filter(team_id=assignment.team_id, user=user)
        .values_list("pk", flat=True)
        .first()
    )


# --- What the admin reports -------------------------------------------------------------------


@dataclass(frozen=True)
class TeamDay:
    """A team's day so far (UTC): assigned, claimed, how fast, and what waits."""

    assigned: int = 0
    claimed: int = 0
    median_to_claim: timedelta | None = None
    queued: int = 0
    awaiting_claim: int = 0


def team_days(team_ids: Iterable[int], *, now: datetime | None = None) -> dict[int, TeamDay]:
    """Return each team's figures for today (UTC), in two queries whatever the number of teams."""
    now = now or timezone.now()
    ids = list(team_ids)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rows = Assignment.objects.filter(
        team_id__in=ids, assigned_at__gte=start, assigned_at__lte=now
    ).values_list("team_id", "assigned_at", "claimed_at")
    assigned: dict[int, int] = {}
    waits: dict[int, list[float]] = {}
    for team_id, assigned_at, claimed_at in rows:
        assigned[team_id] = assigned.get(team_id, 0) + 1
        if claimed_at is not None:
            waits.setdefault(team_id, []).append((claimed_at - assigned_at).total_seconds())
    open_now = {
        (team_id, status): count
        for team_id, status, count in Assignment.objects.filter(
            team_id__in=ids, status__in=(AssignmentStatus.QUEUED, AssignmentStatus.ASSIGNED)
        )
        .values("team_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
        .values_list("team_id", "status", "count")
    }
    return {
        team_id: TeamDay(
            assigned=assigned.get(team_id, 0),
            claimed=len(waits.get(team_id, [])),
            median_to_claim=timedelta(seconds=statistics.median(waits[team_id]))
            if waits.get(team_id)
            else None,
            queued=open_now.get((team_id, AssignmentStatus.QUEUED), 0),
            awaiting_claim=open_now.get((team_id, AssignmentStatus.ASSIGNED), 0),
        )
        for team_id in ids
    }


@dataclass(frozen=True)
class MemberNow:
    """A member as the rotation sees them now."""

    member: TeamMember
    assigned_today: int
    unavailable: str
    next_available: datetime | None


def team_members_now(team: Team, *, now: datetime | None = None) -> list[MemberNow]:
    """Return each member's availability now and what they were assigned today."""
    now = now or timezone.now()
    members = team_members(team)
    counts = members_assigned_today(members, now)
    return [
        MemberNow(
            member=member,
            assigned_today=counts.get(member.pk, 0),
            unavailable=unavailable_reason(selected, now),
            next_available=next_available(selected, now),
        )
        for member, selected in zip(members, members_selection(members, counts), strict=True)
    ]
