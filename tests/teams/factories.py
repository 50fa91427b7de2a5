from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from teams.models import Team, TeamMember


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Inside sales {n}")
    existing_owner_days = 90
    claim_timeout_minutes = 15


class TeamMemberFactory(DjangoModelFactory[TeamMember]):
    """A member who works any time, with no quota and an equal share."""

    class Meta:
        model = TeamMember

    team = factory.SubFactory(TeamFactory)
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"Rep {n}")
    email = factory.Sequence(lambda n: f"rep{n}@leadswitch.example")
    time_zone = "America/Chicago"
