"""The teams' move out of buyers keeps every row: a database taken back to the state before the
move, given a team, a member, an assignment and history by the old app's models, and migrated
forward again, has them all under the teams app, with their permissions still granted."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.utils import timezone

from buyers.models import Contract
from teams.models import Assignment, AssignmentStatus, Team, TeamMember
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory
from tests.migrating import migrate

BEFORE_THE_MOVE = [("buyers", "0009_internal_teams"), ("teams", None)]
MOVED = ("team", "teammember", "assignment", "teamnotification", "historicalteam")


@pytest.mark.django_db(transaction=True)
def test_moving_teams_out_of_buyers_keeps_their_rows_and_permissions(latest):
    # What buyers' models neither lost nor changed (leads, contracts, users) is made as today.
    lead = LeadFactory(email="mary@example.com")
    contract = ContractFactory()
    rep = User.objects.create_user("ana", email="ana@example.com")
    now = timezone.now()

    old = migrate(BEFORE_THE_MOVE).apps
    assert "teams_team" not in connection.introspection.table_names()
    OldTeam = old.get_model("buyers", "Team")
    OldMember = old.get_model("buyers", "TeamMember")
    OldAssignment = old.get_model("buyers", "Assignment")
    OldNotification = old.get_model("buyers", "TeamNotification")
    OldHistoricalTeam = old.get_model("buyers", "HistoricalTeam")
    team = OldTeam.objects.create(
        name="Inside sales", claim_timeout_minutes=20, rotation={"1": -1}, weighted_by_capacity=True
    )
    member = OldMember.objects.create(
        team_id=team.pk, user_id=rep.pk, name="Ana Reyes", daily_quota=12, capacity=3
    )
    old.get_model("buyers", "Contract").objects.filter(pk=contract.pk).update(team_id=team.pk)
    assignment = OldAssignment.objects.create(
        lead_id=lead.pk,
        team_id=team.pk,
        contract_id=contract.pk,
        member_id=member.pk,
        status="assigned",
        reason="round_robin",
        note="Ana Reyes: round robin among 1 available",
        assigned_at=now,
    )
    OldNotification.objects.create(
        assignment_id=assignment.pk, purpose="assigned", channel="email", recipient=rep.email
    )
    OldHistoricalTeam.objects.create(
        id=team.pk,
        name=team.name,
        history_date=now,
        history_type="+",
        created_at=now,
        updated_at=now,
    )
    # Permissions and groups are rows that point at the content type: they must follow it.
    OldContentType = old.get_model("contenttypes", "ContentType")
    team_type = OldContentType.objects.get_or_create(app_label="buyers", model="team")[0]
    view_team = old.get_model("auth", "Permission").objects.get_or_create(
        content_type=team_type, codename="view_team", defaults={"name": "Can view team"}
    )[0]
    group = old.get_model("auth", "Group").objects.create(name="Team leads")
    group.permissions.add(view_team)
    rep.groups.add(group.pk)
    moved_type_ids = set(
        OldContentType.objects.filter(app_label="buyers", model__in=MOVED).values_list(
            "pk", flat=True
        )
    )

    migrate(latest)

    tables = set(connection.introspection.table_names())
    assert {"teams_team", "teams_teammember", "teams_assignment"} <= tables
    assert not {"buyers_team", "buyers_teammember", "buyers_assignment"} & tables
    moved = Team.objects.get()
    assert (moved.pk, moved.name, moved.claim_timeout_minutes, moved.weighted_by_capacity) == (
        team.pk,
        "Inside sales",
        20,
        True,
    )
    assert moved.rotation == {"1": -1}
    assert moved.history.count() == 1
    [ana] = TeamMember.objects.all()
    assert (ana.pk, ana.team, ana.user, ana.daily_quota, ana.capacity) == (
        member.pk,
        moved,
        rep,
        12,
        3,
    )
    [given] = Assignment.objects.all()
    assert (given.pk, given.lead_id, given.contract_id, given.member, given.team) == (
        assignment.pk,
        lead.pk,
        contract.pk,
        ana,
        moved,
    )
    assert (given.status, given.note) == (AssignmentStatus.ASSIGNED, assignment.note)
    assert given.notifications.get().recipient == "ana@example.com"
    assert Contract.objects.get(pk=contract.pk).team == moved
    assert list(moved.contracts.all()) == [Contract.objects.get(pk=contract.pk)]
    # The same content type rows, relabelled; none left behind under buyers.
    relabelled = ContentType.objects.filter(app_label="teams", model__in=MOVED)
    assert set(relabelled.values_list("pk", flat=True)) == moved_type_ids
    assert not ContentType.objects.filter(app_label="buyers", model__in=MOVED).exists()
    assert ContentType.objects.get_for_model(Team).pk == team_type.pk
    assert Permission.objects.get(pk=view_team.pk).content_type.app_label == "teams"
    assert User.objects.get(pk=rep.pk).has_perm("teams.view_team")
    # New rows still draw their ids past the old ones (the sequences came along).
    assert Team.objects.create(name="Closers").pk > moved.pk
