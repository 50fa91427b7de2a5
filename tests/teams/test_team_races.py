"""Concurrent leads for one team, on PostgreSQL: real threads, one connection each.

The invariants an established CRM documents for capacity routing (Salesforce Omni-Channel:
work only to available agents, never beyond their capacity, shares in proportion to capacity;
HubSpot: rotate evenly among the chosen users) must hold when leads arrive all at once: every
member receives exactly their quota and no more, the rotation neither skips nor doubles, and
opted-out members receive nothing.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from leads.models import Lead
from teams.models import Assignment, AssignmentStatus, Team
from teams.services import AssignOutcome, assignment_create
from tests.leads.factories import LeadFactory
from tests.teams.factories import TeamFactory, TeamMemberFactory
from tests.threads import Go, all_at_once

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEADS = 24
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def race(team: Team, count: int = LEADS) -> list[AssignOutcome]:
    """Assign `count` fresh leads to the team at once, one thread and connection each."""
    lead_ids = [LeadFactory().pk for _ in range(count)]

    def assign(n: int, go: Go) -> AssignOutcome:
        lead = Lead.objects.get(pk=lead_ids[n])
        go()  # connected and loaded: now all at once
        return assignment_create(lead=lead, team_id=team.pk, now=NOW)

    return all_at_once(count, assign, who="an assignment")


def received(team: Team) -> Counter[int | None]:
    return Counter(team.assignments.values_list("member_id", flat=True))


def test_concurrent_leads_fill_every_quota_exactly_and_queue_the_rest():
    team = TeamFactory()
    reps = [TeamMemberFactory(team=team, daily_quota=quota) for quota in (5, 4, 3)]
    TeamMemberFactory(team=team, away=True)  # opted out: receives nothing

    race(team)

    assert received(team) == {reps[0].pk: 5, reps[1].pk: 4, reps[2].pk: 3, None: LEADS - 12}
    assert team.assignments.filter(status=AssignmentStatus.QUEUED).count() == LEADS - 12


def test_concurrent_leads_take_turns_without_a_skip_or_a_double():
    team = TeamFactory()
    reps = [TeamMemberFactory(team=team) for _ in range(3)]

    race(team)

    # In the order they were made (the team's row lock orders them), a perfect rotation.
    order = list(
        Assignment.objects.filter(team=team).order_by("pk").values_list("member_id", flat=True)
    )
    assert order == [r.pk for r in reps] * (LEADS // 3)


def test_concurrent_leads_share_by_capacity_exactly():
    team = TeamFactory(weighted_by_capacity=True)
    reps = [TeamMemberFactory(team=team, capacity=capacity) for capacity in (3, 2, 1)]

    race(team)

    assert received(team) == {reps[0].pk: 12, reps[1].pk: 8, reps[2].pk: 4}


def test_the_same_lead_assigned_concurrently_is_assigned_once():
    team = TeamFactory()
    TeamMemberFactory(team=team)
    TeamMemberFactory(team=team)
    lead = LeadFactory()

    def assign(n: int, go: Go) -> AssignOutcome:
        go()
        return assignment_create(lead=lead, team_id=team.pk, now=NOW)

    outcomes = all_at_once(8, assign, who="an assignment")

    # Every redelivery gets the one assignment back; none fails on the database's constraint.
    assert len(outcomes) == 8
    assert len({o.assignment.pk for o in outcomes}) == 1
    assert Assignment.objects.filter(lead=lead).count() == 1
