"""What the configuration file holds: one declarative table of kinds, which the export and the
import (marketplace.services) walk generically.

A kind is a model, the section it is written under, its natural key (never an id) and the kinds
it owns. Its configuration fields are the model's own editable fields, less the link to its
owner, timestamps, and what `exclude` names; a field to another object is written as that
object's natural key (NATURAL_KEYS), and an encrypted field (buyers.fields.EncryptedTextField,
the fields the admin masks) as a `${LEADSWITCH_SECRET_...}` placeholder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q
from django.utils import timezone

from buyers.field_reads import contract_reads, contract_served_versions, version_problems
from buyers.forms import score_criterion_problem, source_filter_problem
from buyers.models import (
    Buyer,
    BuyerCap,
    ClosedDate,
    Contract,
    ContractCap,
    ContractSecret,
    ContractStatus,
    DeliveryEndpoint,
    FieldCriterion,
    FieldMapping,
    ResponseRule,
    ScheduleWindow,
    TerritoryRule,
)
from buyers.readiness import contract_delivery_problems
from buyers.services import buyer_touch, cap_counters_seed, contract_touch
from leads.models import (
    PostingProfile,
    SchemaPin,
    SchemaVersion,
    ScoringRule,
    Source,
    SuppressionList,
    Vertical,
    VerticalField,
)
from leads.services import schema_version_record, vertical_touch
from notifications.models import NotificationSubscription
from teams.models import Team, TeamMember

User = get_user_model()

# How a field pointing at another object names it in the file.
NATURAL_KEYS: dict[type[models.Model], tuple[str, ...]] = {
    Vertical: ("slug",),
    Source: ("name",),
    Buyer: ("company",),
    Team: ("name",),
    Contract: ("buyer", "vertical", "name"),
    SchemaVersion: ("vertical", "number"),
    User: (User.USERNAME_FIELD,),
}

Problems = list[tuple[str, str]]  # (field, message)


@dataclass(frozen=True)
class Kind:
    section: str
    model: type[models.Model]
    # The fields that name one object among its owner's (or among all, at the top). None: the
    # rows have no identity; the owner's list in the file replaces its rows as a whole.
    key: tuple[str, ...] | None
    parent: str = ""  # the field that points at the owner
    children: tuple[Kind, ...] = ()
    m2m: tuple[str, ...] = ()
    exclude: frozenset[str] = frozenset()
    # A person's contact details: masked for staff who see personal data masked (Sales).
    personal: frozenset[str] = frozenset()
    order: tuple[str, ...] = ()  # how the file lists them; default: by key
    fallback_key: tuple[str, ...] = ()  # the identity when the key is empty
    single: bool = False  # at most one per owner: written as a mapping, not a list
    late: bool = False  # imported after every section (names objects of later sections)
    # Exported with --vertical: the rows that belong to these verticals; None: not exported.
    scope: Callable[[list[str]], Q] | None = None
    check: Callable[[Any], Problems] | None = None  # what the admin's forms check as well
    # Tells routing and intake it changed: (pk, the importing user or None).
    touch: Callable[[int, Any], None] | None = None
    saved: Callable[[list[Any]], None] | None = None  # after the rows are saved
    before_save: Callable[[Any], None] | None = None

    @property
    def noun(self) -> str:
        return str(self.model._meta.verbose_name)


def _vertical_check(vertical: Vertical) -> Problems:
    # The admin checks this on the fields inline (VerticalFieldFormSet): the fields are saved
    # together with the vertical.
    if vertical.pk is None or not isinstance(vertical.duplicate_fields, list):
        return []
    names = set(vertical.fields.values_list("name", flat=True))
    unknown = sorted(set(vertical.duplicate_fields) - names)
    if not unknown:
        return []
    return [
        (
            "duplicate_fields",
            f"Duplicates are compared on {', '.join(unknown)}, which this vertical does not have.",
        )
    ]


def _vertical_touch(pk: int, actor: Any) -> None:
    vertical_touch(vertical_id=pk)
    # As the admin's save: fields the file changes, with no version of them in it, are the next
    # version, made by the importing user. A vertical without one gets its first when a source
    # is first given it.
    if SchemaVersion.objects.filter(vertical_id=pk).exists():
        schema_version_record(vertical=Vertical(pk=pk), actor=actor)


def _contract_check(contract: Contract) -> Problems:
    if contract.pk is None:
        return []
    problems: Problems = []
    # As the admin's contract page checks its mappings, criteria and endpoints.
    problems.extend(
        ("sources", p)
        for p in version_problems(
            contract_reads(contract),
            contract_served_versions(contract),
            vertical=str(contract.vertical),
        )
    )
    problem = source_filter_problem(contract.source_filter, listed=contract.sources.exists())
    if problem is not None:
        problems.append(problem)
    if contract.status == ContractStatus.ACTIVE:
        # As the admin refuses an active contract's endpoints (DeliveryReadinessFormSet).
        problems.extend(
            ("status", f"An active contract must be able to deliver. {p}")
            for p in contract_delivery_problems(contract)
        )
    return problems


def _contract_paused_at(contract: Contract) -> None:
    # As contract_pause and contract_resume keep them: when and why a pause began, neither while
    # active.
    if contract.status == ContractStatus.ACTIVE:
        contract.paused_at, contract.paused_reason = None, ""
    elif contract.paused_at is None:
        contract.paused_at = timezone.now()


def _criterion_check(criterion: FieldCriterion) -> Problems:
    problem = score_criterion_problem(
        (criterion.field or "").strip(), criterion.operator or "", criterion.value or ""
    )
    return [problem] if problem is not None else []


def _cap_kind(model: type[models.Model], parent: str) -> Kind:
    return Kind("caps", model, key=("period",), parent=parent, saved=_seed)


def _seed(caps: list[Any]) -> None:
    cap_counters_seed(caps=caps)


SECTIONS: tuple[Kind, ...] = (
    Kind(
        "verticals",
        Vertical,
        key=("slug",),
        scope=lambda slugs: Q(slug__in=slugs),
        check=_vertical_check,
        touch=_vertical_touch,
        children=(
            Kind(
                "fields",
                VerticalField,
                key=("name",),
                parent="vertical",
                order=("position", "name"),
            ),
            # After the fields, whose newest version they end with; frozen once stored.
            Kind("schema_versions", SchemaVersion, key=("number",), parent="vertical"),
            Kind(
                "scoring_rules",
                ScoringRule,
                key=("name",),
                parent="vertical",
                order=("position", "name"),
                late=True,
            ),
        ),
    ),
    Kind(
        "sources",
        Source,
        key=("name",),
        m2m=("verticals",),
        personal=frozenset({"contact_name", "contact_email"}),
        scope=lambda slugs: Q(verticals__slug__in=slugs),
        children=(
            Kind("posting_profile", PostingProfile, key=(), parent="source", single=True),
            # The version of each vertical's fields it posts in.
            Kind("schema_pins", SchemaPin, key=("vertical",), parent="source"),
        ),
    ),
    # Its entries are hashed and never readable: only the list's own settings.
    Kind("suppression_lists", SuppressionList, key=("name",)),
    Kind(
        "buyers",
        Buyer,
        key=("company",),
        personal=frozenset({"contact_name", "contact_email", "contact_phone"}),
        scope=lambda slugs: Q(contracts__vertical__slug__in=slugs),
        touch=lambda pk, actor: buyer_touch(buyer_id=pk),
        children=(_cap_kind(BuyerCap, "buyer"),),
    ),
    Kind(
        "teams",
        Team,
        key=("name",),
        scope=lambda slugs: Q(contracts__vertical__slug__in=slugs),
        children=(
            Kind(
                "members",
                TeamMember,
                key=("user",),
                fallback_key=("name",),
                parent="team",
                personal=frozenset({"name", "email", "slack_user_id"}),
                order=("position", "user", "name"),
            ),
        ),
    ),
    Kind(
        "contracts",
        Contract,
        key=("buyer", "vertical", "name"),
        m2m=("sources",),
        # When and why it was paused is the pause's record, not configuration; its status and
        # reason are.
        exclude=frozenset({"paused_at"}),
        personal=frozenset({"delivery_emails"}),
        scope=lambda slugs: Q(vertical__slug__in=slugs),
        check=_contract_check,
        touch=lambda pk, actor: contract_touch(contract_id=pk),
        before_save=_contract_paused_at,
        children=(
            _cap_kind(ContractCap, "contract"),
            Kind("schedule", ScheduleWindow, key=None, parent="contract"),
            Kind("closed_dates", ClosedDate, key=("date",), parent="contract"),
            Kind("territory", TerritoryRule, key=None, parent="contract"),
            Kind("criteria", FieldCriterion, key=None, parent="contract", check=_criterion_check),
            # Before the endpoints and mappings, whose templates name them.
            Kind("secrets", ContractSecret, key=("name",), parent="contract"),
            Kind("endpoints", DeliveryEndpoint, key=("kind",), parent="contract"),
            Kind(
                "mappings",
                FieldMapping,
                key=("target_field", "applies_to"),
                parent="contract",
                order=("position", "target_field", "applies_to"),
            ),
            Kind("response_rules", ResponseRule, key=("kind",), parent="contract"),
        ),
    ),
    Kind(
        "notification_subscriptions",
        NotificationSubscription,
        key=("name",),
        personal=frozenset({"email"}),
        scope=lambda slugs: (
            Q(contract__vertical__slug__in=slugs)
            | Q(buyer__contracts__vertical__slug__in=slugs)
            | Q(source__verticals__slug__in=slugs)
        ),
    ),
)
