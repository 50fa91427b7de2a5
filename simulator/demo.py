"""The demo marketplace: two verticals, three sources, seven buyers on the simulator, and staff
users.

Its configuration (verticals with their fields and scoring rules, sources, buyers, contracts) is
a file, `demo_marketplace.yaml` beside this module, imported through `config_import` as any
marketplace's file is. This module keeps what such a file does not hold: the staff users and
groups, the sources' API keys, the demo buyers' credentials (the file holds placeholders) and the
buyer simulator's address (the file's endpoints name FILE_SIMULATOR_URL; `demo_load` puts the
one it is given instead).

`demo_load` is idempotent by natural keys (vertical slug, source name, buyer company, contract
(buyer, vertical, name), username, group name): it imports only the file's objects that are not
stored yet, so an existing row is left exactly as ops staff left it, and the parts of a vertical,
buyer, contract, group or user are only written when it is created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.db import transaction

from buyers.models import Buyer, Contract
from leads.models import Source, SourceApiKey, Vertical
from leads.services import source_api_key_create
from marketplace.document import FORMAT_KEY, dump, load, placeholder_variable
from marketplace.kinds import SECTIONS, Kind
from marketplace.services import config_export, config_import

DEFAULT_PASSWORD = "leadswitch-demo"  # noqa: S105 - a published demo password, printed on purpose
AUTO = "auto-insurance"
SOLAR = "solar"

# --- The configuration file --------------------------------------------------------------------

DEMO_FILE = Path(__file__).with_name("demo_marketplace.yaml")
# The buyer simulator's address as the file's endpoints give it (settings.SIMULATOR_URL's
# default).
FILE_SIMULATOR_URL = "http://127.0.0.1:9100"
FILE_HEADER = """\
# The demo marketplace's configuration, which `manage.py load_demo` imports (`./dev run` calls it).
# Written by `manage.py config export`: after editing it, or when the export's format changes,
# rewrite it (from a throwaway database; yours is left alone) with
#
#   .venv/bin/python manage.py load_demo --write-config
#
# tests/simulator/test_demo_file.py fails while it is not what that writes. The endpoints name the
# buyer simulator at http://127.0.0.1:9100 (load_demo --simulator-url puts another address);
# credentials are ${LEADSWITCH_SECRET_...} placeholders that load_demo fills with the demo's own
# (simulator/demo.py); users and API keys are not configuration and are not here.
"""
IMPORT_REASON = "Demo marketplace (manage.py load_demo)"
# The demo buyers' published credentials (the simulator ignores them): (buyer, contract, endpoint
# kind) -> the endpoint's auth_secret.
CREDENTIALS = {
    ("Summit Mutual Insurance", "Auto - Midwest exclusive", "post"): "summit-demo-basic-password",
    ("Liberty Bell Insurance Group", "Auto - national direct post", "post"): "lb-demo-4f9c2e7a1d",
}


def demo_document(*, simulator_url: str = FILE_SIMULATOR_URL) -> dict[str, Any]:
    """Return the demo's configuration file, its endpoints at this simulator."""
    document = load(DEMO_FILE.read_text(encoding="utf-8"), "yaml")
    simulator_url = simulator_url.rstrip("/")
    for contract in document.get("contracts") or []:
        for endpoint in contract.get("endpoints") or []:
            url = endpoint.get("url", "")
            if url.startswith(f"{FILE_SIMULATOR_URL}/"):
                endpoint["url"] = simulator_url + url.removeprefix(FILE_SIMULATOR_URL)
    return document


def demo_file_text() -> str:
    """Return the demo's file as an export of the stored configuration writes it."""
    return FILE_HEADER + dump(config_export(), "yaml")


def _credentials(document: dict[str, Any]) -> dict[str, str]:
    """The environment the import reads the file's placeholders from: the demo's credentials."""
    environ = {}
    for contract in document.get("contracts") or []:
        for endpoint in contract.get("endpoints") or []:
            variable = placeholder_variable(endpoint.get("auth_secret"))
            key = (contract["buyer"], contract["name"], endpoint["kind"])
            if variable is not None and key in CREDENTIALS:
                environ[variable] = CREDENTIALS[key]
    return environ


(_CONTRACTS,) = [kind for kind in SECTIONS if kind.section == "contracts"]


def _key(kind: Kind, item: dict[str, Any]) -> str:
    return json.dumps([item.get(name) for name in kind.key or ()], sort_keys=True)


def _missing(document: dict[str, Any]) -> dict[str, Any]:
    """The document less the objects that are stored already (named by the same natural key)."""
    stored = config_export()
    missing: dict[str, Any] = {FORMAT_KEY: document[FORMAT_KEY]}
    for kind in SECTIONS:
        names = {_key(kind, item) for item in stored.get(kind.section) or []}
        items = [item for item in document.get(kind.section) or [] if _key(kind, item) not in names]
        if items:
            missing[kind.section] = items
    return missing


# --- Users -------------------------------------------------------------------------------------

ADMIN = "admin"
OPS = "Ops"
SALES = "Sales"
PERMISSION_APPS = ("leads", "buyers", "notifications", "routing", "teams", "exchange")
# Leads are evidence (raw request, consent) and auctions, attempts and sales are the transaction
# log: ops may work with them but never delete them.
OPS_FORBIDDEN = {
    "leads.delete_lead",
    "routing.delete_auction",
    "routing.delete_attempt",
    "routing.delete_sale",
}


USERS: list[dict[str, Any]] = [
    {
        "username": ADMIN,
        "email": "admin@leadswitch.example",
        "first_name": "Demo",
        "last_name": "Admin",
        "is_superuser": True,
        "groups": [],
    },
    {
        "username": "ops",
        "email": "ops@leadswitch.example",
        "first_name": "Olga",
        "last_name": "Operations",
        "is_superuser": False,
        "groups": [OPS],
    },
    {
        "username": "sales",
        "email": "sales@leadswitch.example",
        "first_name": "Sam",
        "last_name": "Sales",
        "is_superuser": False,
        "groups": [SALES],
    },
]


# --- The service -------------------------------------------------------------------------------


@dataclass
class VerticalResult:
    vertical: Vertical
    created: bool
    field_count: int


@dataclass
class SourceResult:
    source: Source
    created: bool
    api_key: str | None  # the plaintext key, only when it was minted by this run
    key_prefixes: list[str] = field(default_factory=list)


@dataclass
class BuyerResult:
    buyer: Buyer
    created: bool
    contracts: list[Contract]
    contracts_created: int


@dataclass
class UserResult:
    user: User
    created: bool
    password_set: bool


@dataclass
class DemoResult:
    simulator_url: str
    password: str
    verticals: list[VerticalResult]
    sources: list[SourceResult]
    buyers: list[BuyerResult]
    groups: dict[str, bool]  # name -> created
    users: list[UserResult]

    @property
    def contract_count(self) -> int:
        return sum(len(b.contracts) for b in self.buyers)

    @property
    def created_anything(self) -> bool:
        return any(
            [
                *(v.created for v in self.verticals),
                *(s.created for s in self.sources),
                *(b.created or b.contracts_created for b in self.buyers),
                *self.groups.values(),
                *(u.created for u in self.users),
            ]
        )


def _group_permissions(name: str) -> list[Permission]:
    permissions = Permission.objects.filter(
        content_type__app_label__in=PERMISSION_APPS
    ).select_related("content_type")
    if name == SALES:
        # Sales view everything, consumers' personal data masked (config/admin_pii.py).
        return [p for p in permissions if p.codename.startswith("view_")]
    return [
        p
        for p in permissions
        if p.codename.split("_", 1)[0] in {"add", "change", "delete", "view"}
        and f"{p.content_type.app_label}.{p.codename}" not in OPS_FORBIDDEN
    ]


def _group_get_or_create(name: str) -> tuple[Group, bool]:
    group = Group.objects.filter(name=name).first()
    if group is not None:
        return group, False
    group = Group(name=name)
    group.full_clean()
    group.save()
    group.permissions.set(_group_permissions(name))
    return group, True


def _user_get_or_create(
    spec: dict[str, Any], groups: dict[str, Group], password: str, reset_password: bool
) -> UserResult:
    spec = dict(spec)
    group_names = spec.pop("groups")
    user = User.objects.filter(username=spec["username"]).first()
    if user is None:
        user = User(is_staff=True, **spec)
        user.set_password(password)
        user.full_clean()
        user.save()
        user.groups.set([groups[name] for name in group_names])
        return UserResult(user, created=True, password_set=True)
    if reset_password:
        user.set_password(password)
        user.save(update_fields=["password"])
    return UserResult(user, created=False, password_set=reset_password)


def _source_result(name: str, created: bool) -> SourceResult:
    source = Source.objects.get(name=name)
    if created:
        _, raw_key = source_api_key_create(source=source, name="Demo key")
        return SourceResult(source, created=True, api_key=raw_key)
    prefixes = list(
        SourceApiKey.objects.filter(source=source, revoked_at__isnull=True).values_list(
            "prefix", flat=True
        )
    )
    return SourceResult(source, created=False, api_key=None, key_prefixes=prefixes)


def _buyer_results(document: dict[str, Any], missing: dict[str, Any]) -> list[BuyerResult]:
    new_buyers = {item["company"] for item in missing.get("buyers", [])}
    new_contracts = {_key(_CONTRACTS, item) for item in missing.get("contracts", [])}
    results = []
    for item in document.get("buyers") or []:
        buyer = Buyer.objects.get(company=item["company"])
        specs = [c for c in document.get("contracts") or [] if c["buyer"] == buyer.company]
        contracts = [
            Contract.objects.get(buyer=buyer, vertical__slug=c["vertical"], name=c["name"])
            for c in specs
        ]
        created = sum(_key(_CONTRACTS, c) in new_contracts for c in specs)
        results.append(BuyerResult(buyer, buyer.company in new_buyers, contracts, created))
    return results


def demo_load(*, simulator_url: str, password: str, reset_passwords: bool = False) -> DemoResult:
    """Create the demo users, and the demo verticals, sources and buyers that are not stored yet
    (imported from the demo's file, as its admin, with their endpoints at this simulator).

    Raise marketplace.services.ConfigRefused (nothing created) when the file does not import.
    """
    simulator_url = simulator_url.rstrip("/")
    if not password:
        raise ValueError("the demo users need a password")
    document = demo_document(simulator_url=simulator_url)
    with transaction.atomic():
        groups, groups_created = {}, {}
        for name in (OPS, SALES):
            groups[name], groups_created[name] = _group_get_or_create(name)
        user_results = [
            _user_get_or_create(spec, groups, password, reset_passwords) for spec in USERS
        ]
        missing = _missing(document)
        if len(missing) > 1:
            config_import(
                document=missing,
                reason=IMPORT_REASON,
                user=User.objects.get(username=ADMIN),
                environ=_credentials(missing),
            )
        new_verticals = {item["slug"] for item in missing.get("verticals", [])}
        vertical_results = []
        for item in document.get("verticals") or []:
            vertical = Vertical.objects.get(slug=item["slug"])
            vertical_results.append(
                VerticalResult(vertical, vertical.slug in new_verticals, vertical.fields.count())
            )
        new_sources = {item["name"] for item in missing.get("sources", [])}
        source_results = [
            _source_result(item["name"], created=item["name"] in new_sources)
            for item in document.get("sources") or []
        ]
        buyer_results = _buyer_results(document, missing)
    return DemoResult(
        simulator_url=simulator_url,
        password=password,
        verticals=vertical_results,
        sources=source_results,
        buyers=buyer_results,
        groups=groups_created,
        users=user_results,
    )
