"""Concurrent leads for one team, on PostgreSQL: real threads, one connection each.

The invariants an established CRM documents for capacity routing (Salesforce Omni-Channel:
work only to available agents, never beyond their capacity, shares in proportion to capacity;
HubSpot: rotate evenly among the chosen users) must hold when leads arrive all at once: every
member receives exactly their quota and no more, the rotation neither skips nor doubles, and
opted-out members receive nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection

from leads.models import Lead
from teams.models import Assignment, AssignmentStatus, Team
from teams.services import AssignOutcome, assignment_create
from tests.leads.factories import LeadFactory
from tests.teams.factories import TeamFactory, TeamMemberFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEADS = 24
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def race(team: Team, count: int = LEADS) -> list[AssignOutcome]:
    """Assign `count` fresh leads to the team at once, one thread and connection each."""
    lead_ids = [LeadFactory().pk for _ in range(count)]
    barrier = threading.Barrier(count)
    outcomes: list[AssignOutcome] = []
    errors: list[BaseException] = []

    def assign(lead_id: object) -> None:
        try:
            lead = Lead.objects.get(pk=lead_id)
            barrier.wait(timeout=30)  # connected and loaded: now all at once
            outcomes.append(assignment_create(lead=lead, team_id=team.pk, now=NOW))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=assign, args=(lead_id,), name=f"lead-{n}")
        for n, lead_id in enumerate(lead_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads), "an assignment hung (deadlock?)"
    assert errors == []
    assert len(outcomes) == count
    return outcomes


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
    barrier = threading.Barrier(8)
    outcomes: list[AssignOutcome] = []
    errors: list[BaseException] = []

    def assign() -> None:
        try:
            barrier.wait(timeout=30)
            outcomes.append(assignment_create(lead=lead, team_id=team.pk, now=NOW))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=assign) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Every redelivery gets the one assignment back; none fails on the database's constraint.
    assert errors == []
    assert len(outcomes) == 8
    assert len({o.assignment.pk for o in outcomes}) == 1
    assert Assignment.objects.filter(lead=lead).count() == 1
