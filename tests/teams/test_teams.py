"""Internal sales teams: who of a team gets a lead (pure), and the services that record it.

The pure selection is checked against the invariants an established CRM documents for its
round-robin and capacity routing (Salesforce Omni-Channel, HubSpot rotation): every member
receives at most their daily quota, shares stay proportional to capacity, and members who are
inactive, away (opted out) or outside their hours receive nothing. The concurrent version of
the same invariants, on PostgreSQL with real threads, is in test_team_races.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.selection import Bid, TierFloor, filter_bids
from teams.models import (
    Assignment,
    AssignmentReason,
    AssignmentStatus,
    TeamNotification,
    TeamNotificationPurpose,
    TeamNotificationStatus,
    WhenNobodyAvailable,
)
from teams.rules import (
    Member,
    choose_member,
    first_available,
    next_available,
    rotate,
    unavailable_reason,
)
from teams.selectors import team_days
from teams.services import (
    assignment_claim,
    assignment_create,
    assignments_assign_queued,
    assignments_reassign_now,
    assignments_reassign_overdue,
    team_notification_send,
)
from tests.leads.factories import LeadFactory
from tests.teams.factories import TeamFactory, TeamMemberFactory

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None, max_examples=150)
MONDAY_NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def member(member_id: int, *, hours: str = "", tz: str = "UTC", **fields) -> Member:
    return Member.build(
        id=member_id, name=f"Rep {member_id}", time_zone=tz, working_hours=hours, **fields
    )


def assign_many(members: list[Member], count: int, *, weighted: bool = False) -> list[int | None]:
    """Choose `count` times in a row, as the service does: credits and day counts carried on."""
    credits: dict[int, int] = {}
    chosen: list[int | None] = []
    for _ in range(count):
        choice = choose_member(members, now=MONDAY_NOON, credits=credits, weighted=weighted)
        chosen.append(choice.member_id)
        credits = choice.credits
        members = [
            replace(m, assigned_today=m.assigned_today + 1) if m.id == choice.member_id else m
            for m in members
        ]
    return chosen


# --- Pure selection ---------------------------------------------------------------------------


def test_equal_members_take_turns_in_order():
    assert assign_many([member(1), member(2), member(3)], 7) == [1, 2, 3, 1, 2, 3, 1]


def test_capacity_weights_give_proportional_shares_smoothly():
    chosen = assign_many(
        [member(1, capacity=3), member(2, capacity=2), member(3, capacity=1)], 12, weighted=True
    )

    assert [chosen.count(i) for i in (1, 2, 3)] == [6, 4, 2]
    # Smooth, not in blocks: the big member never takes three in a row.
    assert all(chosen[i : i + 3] != [1, 1, 1] for i in range(10))


@PROPERTY_SETTINGS
@given(weights=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8))
def test_every_members_share_stays_within_one_lead_of_their_capacity_share(weights):
    pairs = list(enumerate(weights, start=1))
    total = sum(weights)
    counts = dict.fromkeys(range(1, len(weights) + 1), 0)
    credits: dict[int, int] = {}
    for n in range(1, 3 * total + 1):
        chosen, credits = rotate(pairs, credits)
        counts[chosen] += 1
        for member_id, weight in pairs:
            assert abs(counts[member_id] - n * weight / total) < 1, (n, member_id, counts)


@PROPERTY_SETTINGS
@given(
    quotas=st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=1, max_size=6),
    capacities=st.lists(st.integers(1, 5), min_size=6, max_size=6),
    leads=st.integers(0, 40),
    weighted=st.booleans(),
)
def test_no_member_ever_receives_more_than_their_daily_quota(quotas, capacities, leads, weighted):
    members = [
        member(i, daily_quota=quota, capacity=capacities[i]) for i, quota in enumerate(quotas)
    ]

    chosen = assign_many(members, leads, weighted=weighted)

    for m in members:
        assert m.daily_quota is None or chosen.count(m.id) <= m.daily_quota
    room = sum(10**6 if q is None else q for q in quotas)
    # Nobody is left without a lead while anyone still had room.
    assert sum(1 for c in chosen if c is not None) == min(leads, room)


@PROPERTY_SETTINGS
@given(
    flags=st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=8),
    owner=st.integers(0, 8),
    weighted=st.booleans(),
)
def test_inactive_away_and_out_of_hours_members_are_never_chosen(flags, owner, weighted):
    members = [
        # Monday noon UTC: "Sat 09:00-17:00" is closed, "daily 00:00-24:00" open.
        member(i, active=active, away=away, hours="daily 0-24" if in_hours else "Sat 9-17")
        for i, (active, away, in_hours) in enumerate(flags)
    ]
    available = {
        i for i, (active, away, in_hours) in enumerate(flags) if active and not away and in_hours
    }

    choice = choose_member(members, now=MONDAY_NOON, credits={}, weighted=weighted, owner_id=owner)

    if available:
        assert choice.member_id in available
    else:
        assert choice.member_id is None
        assert choice.note.startswith("nobody available: ")


@PROPERTY_SETTINGS
@given(
    instant=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - made aware below
        max_value=datetime(2026, 12, 31),  # noqa: DTZ001
    ),
    zone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Sydney", "UTC"]),
)
def test_working_hours_are_read_on_the_members_own_clock_across_dst(instant, zone):
    now = instant.replace(tzinfo=UTC)
    rep = member(1, hours="Mon-Fri 09:00-17:00", tz=zone)
    local = now.astimezone(ZoneInfo(zone))

    in_hours = local.weekday() < 5 and 9 <= local.hour < 17

    assert (unavailable_reason(rep, now) == "") is in_hours


def test_hours_follow_the_spring_forward_in_new_york():
    rep = member(1, hours="Mon-Fri 09:00-17:00", tz="America/New_York")

    # Friday before the change: 13:30 UTC is 08:30 EST; the Monday after, it is 09:30 EDT.
    assert unavailable_reason(rep, datetime(2026, 3, 6, 13, 30, tzinfo=UTC)).startswith(
        "outside hours: opens"
    )
    assert unavailable_reason(rep, datetime(2026, 3, 9, 13, 30, tzinfo=UTC)) == ""
    assert next_available(rep, datetime(2026, 3, 6, 13, 30, tzinfo=UTC)) == datetime(
        2026, 3, 6, 14, 0, tzinfo=UTC
    )


def test_a_member_at_quota_is_back_at_their_own_midnight():
    # 23:00 in Tokyo: their day ends in an hour, whatever the UTC date says.
    late = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    rep = member(1, hours="daily 00:00-24:00", tz="Asia/Tokyo", daily_quota=5, assigned_today=5)

    assert unavailable_reason(rep, late) == "daily quota 5/5 reached"
    assert next_available(rep, late) == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def test_the_existing_owner_comes_first_while_available_and_is_passed_over_saying_why():
    owner, other = member(1), member(2)
    assert (
        choose_member(
            [owner, other], now=MONDAY_NOON, credits={1: 0, 2: 99}, weighted=False, owner_id=1
        ).reason
        == AssignmentReason.EXISTING_OWNER
    )

    away = member(1, away=True)
    choice = choose_member([away, other], now=MONDAY_NOON, credits={}, weighted=False, owner_id=1)

    assert choice.member_id == 2
    assert choice.reason == AssignmentReason.ROUND_ROBIN
    assert choice.note.startswith("existing owner Rep 1 away; Rep 2: round robin")


def test_nobody_available_names_why_and_the_first_opening_across_time_zones():
    tokyo = member(1, hours="Mon-Fri 09:00-17:00", tz="Asia/Tokyo")
    los_angeles = member(2, hours="Mon-Fri 09:00-17:00", tz="America/Los_Angeles")
    away = member(3, away=True)
    # Monday 10:00 UTC: 19:00 in Tokyo, 02:00 in Los Angeles.
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    choice = choose_member([tokyo, los_angeles, away], now=now, credits={}, weighted=False)

    assert choice.member_id is None
    assert "Rep 1 outside hours: opens Tue 09:00 Asia/Tokyo" in choice.note
    assert "Rep 2 outside hours: opens Mon 09:00 America/Los_Angeles" in choice.note
    assert "Rep 3 away" in choice.note
    assert first_available([tokyo, los_angeles, away], now) == datetime(
        2026, 3, 2, 17, 0, tzinfo=UTC
    )


# --- Services: assignment, quotas, owners, queue, reassignment ---------------------------------


def a_lead(**fields):
    return LeadFactory(**fields)


@pytest.mark.django_db
def test_a_team_assigns_in_turn_and_records_why_and_until_when():
    team = TeamFactory()
    reps = [TeamMemberFactory(team=team) for _ in range(3)]

    assignments = [
        assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment
        for _ in range(6)
    ]

    assert [a.member_id for a in assignments] == [r.pk for r in reps] * 2
    first = assignments[0]
    assert (first.status, first.reason) == (AssignmentStatus.ASSIGNED, AssignmentReason.ROUND_ROBIN)
    assert first.assigned_at == MONDAY_NOON
    assert first.due_by == MONDAY_NOON + timedelta(minutes=15)
    assert first.note == f"{reps[0].name}: round robin among 3 available"


@pytest.mark.django_db
def test_assigning_a_lead_twice_returns_its_open_assignment():
    team = TeamFactory()
    TeamMemberFactory(team=team)
    TeamMemberFactory(team=team)
    lead = a_lead()

    first = assignment_create(lead=lead, team_id=team.pk, now=MONDAY_NOON).assignment
    again = assignment_create(lead=lead, team_id=team.pk, now=MONDAY_NOON).assignment

    assert again.pk == first.pk
    assert Assignment.objects.count() == 1


@pytest.mark.django_db
def test_a_member_at_quota_is_skipped_until_their_own_next_day():
    team = TeamFactory()
    tokyo = TeamMemberFactory(team=team, time_zone="Asia/Tokyo", daily_quota=1)
    chicago = TeamMemberFactory(team=team, time_zone="America/Chicago")
    evening_in_tokyo = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 22:00 JST, 07:00 CST

    who = [
        assignment_create(lead=a_lead(), team_id=team.pk, now=at).assignment.member_id
        for at in (
            evening_in_tokyo,
            evening_in_tokyo + timedelta(minutes=1),
            evening_in_tokyo + timedelta(minutes=2),
            evening_in_tokyo + timedelta(hours=2),  # 00:00 JST: Tokyo's new day
        )
    ]

    # Chicago's leads while Tokyo was full were Chicago's turns: Tokyo is next when back.
    assert who == [tokyo.pk, chicago.pk, chicago.pk, tokyo.pk]


@pytest.mark.django_db
def test_a_returning_consumer_goes_to_the_member_who_had_them():
    team = TeamFactory()
    ana, bo = TeamMemberFactory(team=team, name="Ana"), TeamMemberFactory(team=team, name="Bo")
    first = assignment_create(
        lead=a_lead(email="pat@example.com"), team_id=team.pk, now=MONDAY_NOON
    ).assignment
    assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON)  # Bo's turn

    by_email = assignment_create(
        lead=a_lead(email="pat@example.com"), team_id=team.pk, now=MONDAY_NOON
    ).assignment
    by_phone = assignment_create(
        lead=a_lead(phone=first.lead.phone), team_id=team.pk, now=MONDAY_NOON
    ).assignment
    rotation = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment

    assert first.member == ana
    assert (by_email.member, by_email.reason) == (ana, AssignmentReason.EXISTING_OWNER)
    assert (by_phone.member, by_phone.reason) == (ana, AssignmentReason.EXISTING_OWNER)
    # The owner's leads are not the rotation's: it carries on where it was.
    assert (rotation.member, rotation.reason) == (ana, AssignmentReason.ROUND_ROBIN)
    assert bo.assignments.count() == 1


@pytest.mark.django_db
def test_an_away_owner_is_passed_over_and_the_note_says_so():
    team = TeamFactory()
    ana = TeamMemberFactory(team=team, name="Ana")
    bo = TeamMemberFactory(team=team, name="Bo")
    assignment_create(lead=a_lead(email="pat@example.com"), team_id=team.pk, now=MONDAY_NOON)
    ana.away = True
    ana.save()

    again = assignment_create(
        lead=a_lead(email="pat@example.com"), team_id=team.pk, now=MONDAY_NOON
    ).assignment

    assert again.member == bo
    assert again.note.startswith("existing owner Ana away; Bo: round robin")


@pytest.mark.django_db
def test_outside_every_members_hours_a_lead_waits_and_goes_to_the_first_whose_hours_open(
    django_capture_on_commit_callbacks,
):
    team = TeamFactory(acknowledge_consumer=True)
    TeamMemberFactory(team=team, time_zone="Asia/Tokyo", working_hours="Mon-Fri 09:00-17:00")
    los_angeles = TeamMemberFactory(
        team=team, time_zone="America/Los_Angeles", working_hours="Mon-Fri 09:00-17:00"
    )
    lead = a_lead(data={"first_name": "Pat", "time_zone": "America/New_York"})
    night = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 19:00 Tokyo, 02:00 Los Angeles

    with django_capture_on_commit_callbacks(execute=True):
        queued = assignment_create(lead=lead, team_id=team.pk, now=night).assignment

    assert (queued.status, queued.member) == (AssignmentStatus.QUEUED, None)
    # The consumer hears at once, and when on their own clock (12:00 in New York).
    [acknowledgement] = mail.outbox
    assert acknowledgement.to == [lead.email]
    assert "will be in touch today from 12:00 (America/New_York)" in acknowledgement.body
    assert acknowledgement.body.startswith("Hi Pat,")

    assert assignments_assign_queued(now=night + timedelta(hours=6)) == 0  # 23:00 in Tokyo
    with django_capture_on_commit_callbacks(execute=True):
        opening = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 09:00 in Los Angeles
        assert assignments_assign_queued(now=opening) == 1

    queued.refresh_from_db()
    assert (queued.status, queued.member, queued.reason) == (
        AssignmentStatus.ASSIGNED,
        los_angeles,
        AssignmentReason.QUEUED,
    )
    assert queued.assigned_at == opening
    assert mail.outbox[-1].to == [los_angeles.email]


@pytest.mark.django_db
def test_a_team_that_passes_leads_on_declines_when_nobody_is_available():
    team = TeamFactory(when_nobody_available=WhenNobodyAvailable.PASS)
    TeamMemberFactory(team=team, away=True, name="Ana")

    outcome = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON)

    assert outcome.assignment is None
    assert outcome.refusal == "declined: nobody available: Ana away"


@pytest.mark.django_db
def test_a_team_without_active_members_declines_even_when_it_queues():
    team = TeamFactory()
    TeamMemberFactory(team=team, active=False)

    outcome = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON)

    assert (outcome.assignment, outcome.refusal) == (None, f"{team} has no active member")


@pytest.mark.django_db
def test_an_unclaimed_lead_moves_on_after_the_timeout_and_never_back():
    team = TeamFactory(claim_timeout_minutes=10)
    ana, bo, cy = (TeamMemberFactory(team=team, name=n) for n in ("Ana", "Bo", "Cy"))
    lead = a_lead()
    first = assignment_create(lead=lead, team_id=team.pk, now=MONDAY_NOON).assignment

    assert assignments_reassign_overdue(now=MONDAY_NOON + timedelta(minutes=9)).reassigned == 0
    later = MONDAY_NOON + timedelta(minutes=10)
    assert assignments_reassign_overdue(now=later).reassigned == 1
    assert assignments_reassign_overdue(now=later + timedelta(minutes=10)).reassigned == 1
    counts = assignments_reassign_overdue(now=later + timedelta(minutes=20))

    chain = list(Assignment.objects.filter(lead=lead).order_by("pk"))
    assert [(a.member, a.status) for a in chain] == [
        (ana, AssignmentStatus.REASSIGNED),
        (bo, AssignmentStatus.REASSIGNED),
        (cy, AssignmentStatus.EXPIRED),
    ]
    assert (counts.reassigned, counts.expired) == (0, 1)
    assert chain[1].previous == first
    assert chain[1].reason == AssignmentReason.REASSIGNED
    assert chain[1].note.startswith("Ana did not claim it within 10 min; Bo: round robin")
    assert chain[0].closed_at == later


@pytest.mark.django_db
def test_an_unclaimed_lead_waits_when_nobody_else_is_in_hours_and_skips_who_let_it_lapse():
    team = TeamFactory()
    ana = TeamMemberFactory(team=team, name="Ana", time_zone="UTC", working_hours="daily 0-24")
    bo = TeamMemberFactory(team=team, name="Bo", time_zone="UTC", working_hours="Mon-Fri 13-17")
    lead = a_lead()
    assignment_create(lead=lead, team_id=team.pk, now=MONDAY_NOON)  # only Ana is in hours

    counts = assignments_reassign_overdue(now=MONDAY_NOON + timedelta(minutes=15))
    # Ana is in hours and has room, but she let this one lapse: it waits for Bo.
    assert counts.queued == 1
    assert assignments_assign_queued(now=MONDAY_NOON + timedelta(minutes=30)) == 0
    assert assignments_assign_queued(now=MONDAY_NOON + timedelta(hours=1)) == 1

    current = Assignment.objects.get(lead=lead, status=AssignmentStatus.ASSIGNED)
    assert current.member == bo
    assert current.previous.member == ana


@pytest.mark.django_db
def test_a_claim_wins_over_a_later_reassignment():
    team = TeamFactory()
    TeamMemberFactory(team=team)
    TeamMemberFactory(team=team)
    assignment = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment

    outcome = assignment_claim(
        assignment=assignment,
        member_id=assignment.member_id,
        now=MONDAY_NOON + timedelta(minutes=3),
    )
    counts = assignments_reassign_overdue(now=MONDAY_NOON + timedelta(hours=1))

    assert outcome.claimed
    assert counts.reassigned == 0
    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.CLAIMED
    assert assignment.time_to_claim == timedelta(minutes=3)


@pytest.mark.django_db
def test_ops_can_reassign_at_once_and_it_is_recorded_who_did():
    team = TeamFactory()
    TeamMemberFactory(team=team, name="Ana")
    TeamMemberFactory(team=team, name="Bo")
    assignment = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment

    counts = assignments_reassign_now(assignment_ids=[assignment.pk], actor="olga")

    assert counts.reassigned == 1
    new = Assignment.objects.get(previous=assignment)
    assert new.note.startswith("reassigned by olga; Bo: round robin")


@pytest.mark.django_db
def test_time_to_claim_is_reported_per_team_for_today():
    team = TeamFactory()
    TeamMemberFactory(team=team)
    now = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    for minutes in (1, 3, 10):
        assignment = assignment_create(lead=a_lead(), team_id=team.pk, now=now).assignment
        assignment_claim(
            assignment=assignment,
            member_id=assignment.member_id,
            now=now + timedelta(minutes=minutes),
        )
    assignment_create(lead=a_lead(), team_id=team.pk, now=now)  # not claimed yet

    day = team_days([team.pk], now=now + timedelta(hours=1))[team.pk]

    assert (day.assigned, day.claimed, day.awaiting_claim) == (4, 3, 1)
    assert day.median_to_claim == timedelta(minutes=3)


@pytest.mark.django_db
def test_a_members_notification_is_not_sent_once_the_lead_is_claimed():
    team = TeamFactory()
    TeamMemberFactory(team=team)
    assignment = assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment
    assignment_claim(assignment=assignment, member_id=assignment.member_id)
    [notification] = TeamNotification.objects.filter(purpose=TeamNotificationPurpose.ASSIGNED)

    assert team_notification_send(notification_id=notification.pk) == "failed"
    notification.refresh_from_db()
    assert notification.status == TeamNotificationStatus.FAILED
    assert notification.error == "not sent: the lead is claimed meanwhile"
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_member_whose_hours_cannot_be_read_gets_nothing_and_the_team_keeps_working():
    team = TeamFactory()
    broken = TeamMemberFactory(team=team)
    working = TeamMemberFactory(team=team)
    type(broken).objects.filter(pk=broken.pk).update(working_hours="whenever")  # past the form

    chosen = {
        assignment_create(lead=a_lead(), team_id=team.pk, now=MONDAY_NOON).assignment.member_id
        for _ in range(3)
    }

    assert chosen == {working.pk}


def test_an_internal_team_is_exempt_from_the_margin_and_tier_floor_but_not_its_own_floor():
    def bid(contract_id: int, price: str) -> Bid:
        return Bid(contract_id, contract_id, Decimal(price), 1, 1, exclusive=True)

    kept, dropped = filter_bids(
        [bid(1, "0.00"), bid(2, "0.00"), bid(3, "5.00")],
        floor_by_contract={3: Decimal("10.00")},
        payout=lambda price: Decimal("4.00"),
        min_margin=Decimal("2.00"),
        tier_floor=TierFloor("hot", Decimal("30.00")),
        internal={1, 3},
    )

    assert [b.contract_id for b in kept] == [1]
    assert dropped == {
        2: "bid $0.00 below the Hot-lead floor $30.00",
        3: "bid $5.00 below floor $10.00",
    }
