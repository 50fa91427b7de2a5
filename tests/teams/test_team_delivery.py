"""Team contracts in the routing engine, the member's notifications (Slack to a real local
receiver, e-mail through the mail backend), the claim page, the admin, and one whole flow: a
lead submitted through the API, routed to a team contract, assigned, notified and claimed."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from buyers.models import Contract, ContractStatus, DeliveryMethod, EndpointKind, PriceModel
from leads.models import Lead, LeadStatus, Vertical
from routing.engine import lead_route
from routing.models import Attempt, AttemptOutcome, Sale
from routing.tools import contract_request_preview
from teams.models import (
    Assignment,
    AssignmentReason,
    AssignmentStatus,
    Team,
    TeamNotification,
    TeamNotificationChannel,
    TeamNotificationStatus,
    WhenNobodyAvailable,
)
from teams.services import (
    assignment_create,
    assignments_reassign_now,
    claim_token,
    team_notification_send,
)
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.conftest import auto_lead, submit
from tests.leads.factories import LeadFactory
from tests.outbound.receiver import Receiver
from tests.staff import staff_user
from tests.teams.factories import TeamFactory, TeamMemberFactory

SLACK_PATH = "/services/T0001/B0001/s3cr3tT0ken"


def team_contract(vertical: Vertical, team: Team, *, price: str = "0.00", **fields) -> Contract:
    """Our own sales floor buys the vertical's leads at an internal price, delivered to a team."""
    return ContractFactory(
        buyer=BuyerFactory(company=f"Own sales floor {team.pk}"),
        vertical=vertical,
        price_model=PriceModel.FIXED,
        fixed_price=Decimal(price),
        floor_price=Decimal("0.00"),
        delivery_method=DeliveryMethod.TEAM,
        team=team,
        **fields,
    )


def route(lead: Lead) -> str:
    outcome = lead_route(lead_id=str(lead.pk))
    lead.refresh_from_db()
    return outcome


def post_attempt(lead: Lead, contract: Contract) -> Attempt:
    return Attempt.objects.get(lead=lead, contract=contract, kind=EndpointKind.POST)


# --- The engine ---------------------------------------------------------------------------------


def test_a_team_contract_takes_the_lead_at_its_internal_price_and_assigns_it(
    market, django_capture_on_commit_callbacks
):
    team = TeamFactory()
    rep = TeamMemberFactory(team=team, name="Ana Reyes")
    contract = team_contract(market.vertical, team)  # $0: below the source's $4 payout
    lead = market.lead()

    with django_capture_on_commit_callbacks(execute=True):
        outcome = route(lead)

    assert outcome.startswith("sold: sold to 1 buyer for $0.00")
    assert (lead.status, lead.sale_price, lead.payout) == (
        LeadStatus.SOLD,
        Decimal("0.00"),
        Decimal("4.00"),
    )
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.member, assignment.contract, assignment.status) == (
        rep,
        contract,
        AssignmentStatus.ASSIGNED,
    )
    attempt = post_attempt(lead, contract)
    assert (attempt.method, attempt.url, attempt.outcome, attempt.response_status) == (
        "TEAM",
        f"team:{team.pk}",
        AttemptOutcome.ACCEPTED,
        200,
    )
    assert attempt.reason == "assigned to Ana Reyes (round robin)"
    assert attempt.buyer_reference == str(assignment.pk)
    assert Sale.objects.get(lead=lead).contract == contract
    [message] = mail.outbox
    assert message.to == [rep.email]


def test_a_lead_nobody_can_take_now_is_still_the_teams_and_waits_in_its_queue(market):
    team = TeamFactory()
    TeamMemberFactory(team=team, name="Ana", away=True)
    contract = team_contract(market.vertical, team, price="15.00")
    lead = market.lead()

    route(lead)

    assert lead.status == LeadStatus.SOLD
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.status, assignment.member) == (AssignmentStatus.QUEUED, None)
    attempt = post_attempt(lead, contract)
    assert (attempt.outcome, attempt.response_status) == (AttemptOutcome.ACCEPTED, 202)
    assert attempt.reason == "queued until a member is available (nobody available: Ana away)"


def test_a_team_that_passes_leads_on_lets_the_next_buyer_have_it(market):
    team = TeamFactory(when_nobody_available=WhenNobodyAvailable.PASS)
    TeamMemberFactory(team=team, name="Ana", away=True)
    ours = team_contract(market.vertical, team, price="50.00")  # ranks first
    buyer = market.contract(ping="bid=10")
    lead = market.lead()

    route(lead)

    assert dict(Sale.objects.filter(lead=lead).values_list("contract_id", "price")) == {
        buyer.pk: Decimal("10.00")
    }
    declined = post_attempt(lead, ours)
    assert (declined.outcome, declined.reason) == (
        AttemptOutcome.REJECTED,
        "declined: nobody available: Ana away",
    )
    assert not Assignment.objects.filter(lead=lead).exists()


def test_a_test_post_of_a_team_contract_assigns_nobody(market):
    team = TeamFactory()
    TeamMemberFactory(team=team)
    contract = team_contract(market.vertical, team)

    preview = contract_request_preview(contract=contract, kind=EndpointKind.POST)

    assert preview.error.startswith("Team delivery: routing assigns the lead to a member of")
    assert not Assignment.objects.exists()


# --- Notifications ------------------------------------------------------------------------------


def test_the_member_is_told_on_slack_with_the_leads_key_facts_and_a_claim_button(
    db, start_receiver, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://leads.example.com"
    slack = start_receiver(200)
    team = TeamFactory(
        name="Inside sales", slack_webhook_url=slack.url(SLACK_PATH), notify_by_email=False
    )
    TeamMemberFactory(team=team, name="Ana Reyes", slack_user_id="U012AB3CD")
    lead = LeadFactory(
        status=LeadStatus.ACCEPTED,
        email="pat@example.com",
        phone="+13125550142",
        zip_code="60601",
        state="IL",
        data={"first_name": "Pat", "last_name": "<!channel> Doe", "city": "Chicago"},
        vertical__name="Auto insurance",
    )

    with django_capture_on_commit_callbacks(execute=True):
        assignment = assignment_create(lead=lead, team_id=team.pk).assignment

    [payload] = slack.messages
    assert payload["text"].startswith(
        "New Auto insurance lead for Ana Reyes: Pat &lt;!channel&gt; Doe. Claim by "
    )
    section = payload["blocks"][1]["text"]["text"]
    assert section.startswith("<@U012AB3CD>: Pat &lt;!channel&gt; Doe is yours (round robin).")
    fields = [f["text"] for f in payload["blocks"][2]["fields"]]
    assert "*Phone*\n+13125550142" in fields
    assert "*E-mail*\npat@example.com" in fields
    assert "*Location*\nChicago, IL 60601" in fields
    button = payload["blocks"][3]["elements"][0]
    assert button["text"]["text"] == "Claim lead"
    assert button["url"] == (
        f"https://leads.example.com/teams/assignments/{assignment.pk}/claim/"
        f"?t={claim_token(assignment)}"
    )
    notification = TeamNotification.objects.get(channel=TeamNotificationChannel.SLACK)
    assert (notification.status, notification.attempts, notification.response_status) == (
        TeamNotificationStatus.SENT,
        1,
        200,
    )
    assert notification.recipient.endswith("/services/T0001/••••")  # the secret part masked


def test_a_slack_failure_is_retried_and_a_refusal_is_not(db, start_receiver):
    flaky, gone = start_receiver(503, 200), start_receiver(404)
    sent = notify_one_via(flaky)
    failed = notify_one_via(gone)

    assert team_notification_send(notification_id=sent.pk) == "retry"
    assert team_notification_send(notification_id=sent.pk) == "sent"
    assert team_notification_send(notification_id=failed.pk) == "failed"

    sent.refresh_from_db()
    failed.refresh_from_db()
    assert (sent.status, sent.attempts) == (TeamNotificationStatus.SENT, 2)
    assert [entry["status"] for entry in sent.attempt_log] == [503, 200]
    assert (failed.status, failed.attempts, failed.error) == (
        TeamNotificationStatus.FAILED,
        1,
        "HTTP 404",
    )
    assert len(flaky.bodies) == 2
    assert len(gone.bodies) == 1


def notify_one_via(receiver: Receiver) -> TeamNotification:
    team = TeamFactory(slack_webhook_url=receiver.url(SLACK_PATH), notify_by_email=False)
    TeamMemberFactory(team=team)
    assignment_create(lead=LeadFactory(), team_id=team.pk)
    return TeamNotification.objects.get(assignment__team=team)


def test_the_member_is_emailed_the_facts_and_the_claim_link(db, django_capture_on_commit_callbacks):
    team = TeamFactory(name="Inside sales", claim_timeout_minutes=10)
    rep = TeamMemberFactory(team=team, name="Ana", time_zone="America/Chicago")
    lead = LeadFactory(
        status=LeadStatus.ACCEPTED,
        email="pat@example.com",
        phone="+13125550142",
        data={"first_name": "Pat", "last_name": "Doe"},
    )

    with django_capture_on_commit_callbacks(execute=True):
        assignment = assignment_create(lead=lead, team_id=team.pk).assignment

    [message] = mail.outbox
    assert message.to == [rep.email]
    assert message.subject == "[Inside sales] New lead for you: Pat Doe"
    assert "Phone: +13125550142\n" in message.body
    assert "A new lead is yours (round robin). Claim it by " in message.body
    assert f"/teams/assignments/{assignment.pk}/claim/?t={claim_token(assignment)}" in message.body
    assert TeamNotification.objects.get().status == TeamNotificationStatus.SENT


# --- Claiming -----------------------------------------------------------------------------------


@pytest.fixture
def assigned(db) -> Assignment:
    team = TeamFactory(claim_timeout_minutes=10)
    TeamMemberFactory(team=team, name="Ana")
    TeamMemberFactory(team=team, name="Bo")
    lead = LeadFactory(status=LeadStatus.SOLD, data={"first_name": "Pat"})
    return assignment_create(lead=lead, team_id=team.pk).assignment


def claim_path(assignment: Assignment, token: str | None = None) -> str:
    path = f"/teams/assignments/{assignment.pk}/claim/"
    return path if token is None else f"{path}?t={token}"


def test_the_member_claims_from_the_link_after_a_confirmation(client, assigned):
    link = claim_path(assigned, claim_token(assigned))

    page = client.get(link)
    assert page.status_code == 200
    assert b"Claim this lead?" in page.content
    assert b"Pat" in page.content
    assert Assignment.objects.get(pk=assigned.pk).status == AssignmentStatus.ASSIGNED

    done = client.post(link)
    assert done.status_code == 200
    assert b"The lead is yours" in done.content
    assigned.refresh_from_db()
    assert assigned.status == AssignmentStatus.CLAIMED
    assert assigned.claimed_at is not None

    again = client.get(link)
    assert again.status_code == 200
    assert b"You already claimed this lead" in again.content


def test_a_mangled_link_claims_nothing(client, assigned):
    page = client.post(claim_path(assigned, claim_token(assigned)[:-2] + "xx"))

    assert page.status_code == 403
    assert b"This claim link is not valid" in page.content
    assert Assignment.objects.get(pk=assigned.pk).status == AssignmentStatus.ASSIGNED


def test_a_link_for_another_assignment_claims_nothing(client, assigned):
    other = assignment_create(lead=LeadFactory(), team_id=assigned.team_id).assignment

    page = client.post(claim_path(assigned, claim_token(other)))

    assert page.status_code == 403


def test_after_a_reassignment_the_old_link_says_it_is_no_longer_yours(client, assigned):
    old_link = claim_path(assigned, claim_token(assigned))
    assignments_reassign_now(assignment_ids=[assigned.pk], actor="ops")
    new = Assignment.objects.get(previous=assigned)

    page = client.post(old_link)

    assert page.status_code == 409
    assert b"was given to the next member" in page.content
    # ...and Ana's token does not open Bo's assignment.
    assert client.post(claim_path(new, claim_token(assigned))).status_code == 403
    assert client.post(claim_path(new, claim_token(new))).status_code == 200


def test_an_expired_lead_cannot_be_claimed(client, assigned):
    Assignment.objects.filter(pk=assigned.pk).update(
        status=AssignmentStatus.EXPIRED, closed_at=timezone.now()
    )

    page = client.post(claim_path(assigned, claim_token(assigned)))

    assert page.status_code == 409
    assert b"and was closed at" in page.content


def test_a_signed_in_member_claims_without_a_link_and_a_colleague_cannot(client, assigned):
    ana = staff_user(None, username="ana")
    bo = staff_user(None, username="bo")
    assigned.member.user = ana
    assigned.member.save()
    assigned.team.members.exclude(pk=assigned.member_id).update(user=bo)

    client.force_login(bo)
    refused = client.post(claim_path(assigned))
    assert refused.status_code == 409
    assert b"This lead is assigned to Ana, not to you." in refused.content

    client.force_login(ana)
    assert client.post(claim_path(assigned)).status_code == 200
    assert Assignment.objects.get(pk=assigned.pk).status == AssignmentStatus.CLAIMED


def test_without_a_link_an_outsider_is_sent_to_sign_in_or_refused(client, assigned):
    anonymous = client.get(claim_path(assigned))
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")

    client.force_login(staff_user("Ops"))
    assert client.post(claim_path(assigned)).status_code == 403
    assert client.get("/teams/assignments/999999/claim/").status_code == 404


# --- Admin --------------------------------------------------------------------------------------


def test_ops_see_the_teams_day_and_members_now(client, assigned):
    client.force_login(staff_user("Ops"))

    changelist = client.get("/admin/teams/team/")
    page = client.get(f"/admin/teams/team/{assigned.team_id}/change/")
    assignments = client.get("/admin/teams/assignment/")

    assert changelist.status_code == 200
    assert b"Median time to claim" in changelist.content
    assert page.status_code == 200
    assert b"Members now" in page.content
    assert b"available" in page.content
    assert assignments.status_code == 200


def test_ops_reassign_from_the_assignment_list(client, assigned):
    client.force_login(staff_user("Ops"))

    response = client.post(
        "/admin/teams/assignment/",
        {"action": "reassign_now", "_selected_action": [assigned.pk]},
        follow=True,
    )

    assert b"Reassigned 1, queued 0" in response.content
    assert Assignment.objects.get(previous=assigned).member.name == "Bo"


def test_sales_see_assignments_but_not_the_messages_with_personal_data(client, assigned):
    client.force_login(staff_user("Sales"))

    assert client.get("/admin/teams/assignment/").status_code == 200
    assert client.get("/admin/teams/teamnotification/").status_code == 403


def test_the_contract_form_offers_team_delivery_and_the_team_form_hides_the_webhook(
    client, db, start_receiver
):
    slack = start_receiver()
    team = TeamFactory(slack_webhook_url=slack.url(SLACK_PATH))
    client.force_login(staff_user("Ops"))

    contract_form = client.get("/admin/buyers/contract/add/")
    team_form = client.get(f"/admin/teams/team/{team.pk}/change/")

    assert b"Internal sales team (assigned to a member)" in contract_form.content
    assert b'name="team"' in contract_form.content
    assert team_form.status_code == 200
    assert SLACK_PATH.encode() not in team_form.content
    assert b"/services/T0001/" in team_form.content  # the masked hint


def test_sales_may_view_a_team_but_never_read_its_webhook(client, db, start_receiver):
    slack = start_receiver()
    team = TeamFactory(slack_webhook_url=slack.url(SLACK_PATH))
    client.force_login(staff_user("Sales"))

    page = client.get(f"/admin/teams/team/{team.pk}/change/")

    assert page.status_code == 200
    assert SLACK_PATH.encode() not in page.content  # read-only, it used to be printed in clear
    assert "••••".encode() in page.content


# --- The whole flow -----------------------------------------------------------------------------


def test_a_lead_from_the_api_reaches_a_team_member_who_claims_it(
    client, partner, django_capture_on_commit_callbacks
):
    _source, api_key = partner
    Contract.objects.update(status=ContractStatus.PAUSED, paused_reason="not under test")
    team = TeamFactory(name="Inside sales")
    rep = TeamMemberFactory(team=team, name="Ana Reyes")
    contract = team_contract(Vertical.objects.get(slug="auto-insurance"), team)

    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client, api_key, auto_lead(7))

    assert response.status_code == 202, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.status == LeadStatus.SOLD
    assert Sale.objects.get(lead=lead).contract == contract
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.member, assignment.reason) == (rep, AssignmentReason.ROUND_ROBIN)
    [message] = mail.outbox
    assert "Name: Mary Major" in message.body
    link = re.search(r"Claim it: \S+(/teams/assignments/\d+/claim/\?t=\S+)", message.body)[1]

    assert client.get(link).status_code == 200
    assert client.post(link).status_code == 200

    assignment.refresh_from_db()
    assert assignment.status == AssignmentStatus.CLAIMED
    assert assignment.time_to_claim is not None
