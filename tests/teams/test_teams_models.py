"""Teams, their members and team contracts: what the models accept, and what history keeps."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from buyers.models import DeliveryMethod, PriceModel
from buyers.schedule import parse_hours
from teams.forms import TeamForm
from teams.models import Team
from tests.buyers.factories import ContractFactory
from tests.teams.factories import TeamFactory, TeamMemberFactory

pytestmark = pytest.mark.django_db


def errors_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


# --- Working hours as typed ---------------------------------------------------------------------


def test_working_hours_read_as_people_write_them():
    assert parse_hours("Mon-Fri 09:00-17:00, Sat 10-14") == [
        *((day, time(9), time(17)) for day in range(5)),
        (5, time(10), time(14)),
    ]
    assert sorted(parse_hours("weekdays 8-12 & 13:30-17")) == [
        window
        for day in range(5)
        for window in ((day, time(8), time(12)), (day, time(13, 30), time(17)))
    ]
    # Overnight runs into the next day; 24:00 is midnight; blank is any time.
    assert parse_hours("Sun 22:00-06:00") == [(6, time(22), time(23, 59)), (0, time(0), time(6))]
    assert parse_hours("daily 00:00–24:00")[0] == (0, time(0), time(23, 59))
    assert parse_hours("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mo 9-17", "'mo' is not a day"),
        ("Mon 9", "'9': write hours as 09:00-17:00"),
        ("Mon 17:00-17:00", "a window must open before it closes"),
        ("Mon 09:75-17:00", "not a time of day"),
        ("9-17", "write days then hours"),
    ],
)
def test_unreadable_working_hours_are_refused_naming_the_part(text, message):
    with pytest.raises(ValueError, match=message):
        parse_hours(text)


# --- Models -------------------------------------------------------------------------------------


def test_a_team_contract_needs_its_team_and_a_fixed_price_which_may_be_zero():
    team = TeamFactory()
    contract = ContractFactory(delivery_method=DeliveryMethod.TEAM)

    assert errors_of(contract)["team"] == ["Choose the team that is assigned the leads."]

    contract.team = team
    assert errors_of(contract)["price_model"] == [
        "A team is not pinged: use a fixed price (0.00 for your own team)."
    ]

    contract.price_model, contract.fixed_price = PriceModel.FIXED, Decimal("0.00")
    contract.full_clean()


def test_only_a_team_contract_names_a_team():
    contract = ContractFactory(team=TeamFactory())

    assert errors_of(contract)["team"] == [
        "Only team delivery goes to a team: choose that delivery, or no team."
    ]


def test_a_member_needs_a_name_readable_hours_and_an_address_to_be_emailed():
    member = TeamMemberFactory.build(
        team=TeamFactory(notify_by_email=True),
        name="",
        email="",
        working_hours="Mon-Fri 9 to 5",
        slack_user_id="ana",
    )

    errors = errors_of(member)

    assert errors["name"] == ["Give a name, or choose their staff account."]
    assert errors["working_hours"] == ["'9 to 5': write hours as 09:00-17:00"]
    assert errors["email"] == ["The team e-mails its members their leads: give an address."]
    assert errors["slack_user_id"][0].startswith("A Slack member id looks like U012AB3CD")


def test_a_team_refuses_a_private_webhook_and_unknown_placeholders():
    team = TeamFactory.build(
        slack_webhook_url="http://10.1.2.3/services/T/B/x",
        acknowledgement_text="Hi {first_name}, {agent} calls you {when}.",
    )

    errors = errors_of(team)

    assert errors["slack_webhook_url"][0].startswith("The platform may not call this address")
    assert errors["acknowledgement_text"] == [
        "Unknown placeholders: {agent}; use {first_name}, {team} and {when}."
    ]


def test_history_records_team_and_member_changes_but_neither_webhook_nor_rotation():
    team = TeamFactory(slack_webhook_url="https://hooks.slack.com/services/T0/B0/secret")
    member = TeamMemberFactory(team=team, daily_quota=10)
    member.daily_quota = 12
    member.save()
    Team.objects.filter(pk=team.pk).update(rotation={str(member.pk): 1})

    assert team.history.count() == 1
    assert not hasattr(team.history.first(), "slack_webhook_url")
    assert not hasattr(team.history.first(), "rotation")
    assert [h.daily_quota for h in member.history.order_by("history_id")] == [10, 12]


def test_the_team_form_keeps_the_stored_webhook_unless_replaced_or_removed():
    stored = "https://hooks.slack.com/services/T0/B0/secret"
    team = TeamFactory(slack_webhook_url=stored)
    data = {
        "name": team.name,
        "existing_owner_days": 90,
        "claim_timeout_minutes": 15,
        "when_nobody_available": "queue",
        "notify_by_email": "on",
        "acknowledgement_text": "Hi {first_name}",
    }

    form = TeamForm(data={**data, "slack_webhook_url": ""}, instance=team)
    assert "secret" not in str(form["slack_webhook_url"])
    assert form.is_valid(), form.errors
    assert form.save().slack_webhook_url == stored

    form = TeamForm(data={**data, "remove_slack_webhook": "on"}, instance=team)
    assert form.is_valid(), form.errors
    assert form.save().slack_webhook_url == ""
