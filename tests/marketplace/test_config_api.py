"""The configuration API (/api/config/v1/), through HTTP with real staff tokens: who may read and
write what, the document's export and import, each kind's objects by their natural keys."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import quote

import pytest
import yaml
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from buyers.models import (
    Buyer,
    BuyerCap,
    Contract,
    ContractCap,
    ContractSecret,
    ContractStatus,
    TerritoryRule,
)
from config.masking import mask_email, mask_phone
from config.problems import PROBLEM_CONTENT_TYPE
from leads.models import Source, SuppressedContact, SuppressionList, Vertical
from leads.store import suppression_hash
from marketplace.kinds import SECTIONS
from reporting.models import TokenScope
from reporting.services import staff_token_create, staff_token_revoke
from routing.models import Attempt
from routing.selectors import explain
from teams.models import TeamMember
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory, VerticalFactory
from tests.marketplace.test_config import (
    API_KEY_SECRET,
    AUTH_SECRET,
    OPS_SLACK_URL,
    PLACEHOLDER,
    SLACK_URL,
    every_kind_of_part,
    row_counts,
    wipe_configuration,
)
from tests.routing.factories import AttemptFactory
from tests.staff import staff_user
from tests.test_admin import rows_containing

pytestmark = pytest.mark.django_db

API = "/api/config/v1/"
BUYER_EMAIL = "dana.doe@summit.example"
BUYER_PHONE = "312-555-0142"
MEMBER_EMAIL = "bo.berg@leadswitch.example"
SOURCE_EMAIL = "mia.media@acme.example"
PERSONAL = (BUYER_EMAIL, BUYER_PHONE, MEMBER_EMAIL, SOURCE_EMAIL)
# Every object of every_kind_of_part by its natural key, as the URLs name it.
OBJECTS = {
    "verticals": ["auto"],
    "sources": ["Acme Media"],
    "suppression_lists": ["Do not call"],
    "buyers": ["Summit Mutual"],
    "teams": ["Inside sales"],
    "contracts": ["Summit Mutual", "auto", "Exclusive"],
    "notification_subscriptions": ["Ops Slack"],
}


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def url(*parts: str) -> str:
    return API + "".join(f"{quote(part)}/" for part in parts)


def item_url(section: str) -> str:
    return url(section.replace("_", "-"), *OBJECTS[section])


@pytest.fixture
def marketplace() -> None:
    every_kind_of_part()
    Buyer.objects.update(contact_email=BUYER_EMAIL, contact_phone=BUYER_PHONE)
    Source.objects.update(contact_email=SOURCE_EMAIL, contact_name="Mia Media")
    TeamMember.objects.filter(name="Bo").update(email=MEMBER_EMAIL)


def token(role: str | None, scope: str = TokenScope.READ_WRITE, username: str = "") -> str:
    user = staff_user(role, username or f"{role or 'nobody'}-{scope}".lower())
    return staff_token_create(user=user, name="probe", scope=scope)[1]


def client(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    return response.json()


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: object = None

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    def send(self, caller: Client, reason: str = "probe") -> object:
        path = f"{self.path}?reason={quote(reason)}" if self.writes else self.path
        if self.method == "GET":
            return caller.get(path)
        data = json.dumps(self.body)
        return getattr(caller, self.method.lower())(path, data, content_type="application/json")


def every_call() -> Iterator[Call]:
    """Every endpoint and method of the API, with a body it would take."""
    ops = client(token("Ops", username="body-reader"))
    document = json.loads(ops.get(f"{API}export/?format=json").content)
    yield Call("GET", f"{API}export/")
    yield Call("POST", f"{API}import/", document)
    for kind in SECTIONS:
        yield Call("GET", url(kind.section.replace("_", "-")))
        path = item_url(kind.section)
        yield Call("GET", path)
        yield Call("PUT", path, ops.get(path).json())
        yield Call("DELETE", path)
    yield Call("POST", url("suppression-lists", "Do not call", "entries"), {"entries": ["a@b.co"]})


def test_every_route_is_probed():
    from marketplace.api.urls import urlpatterns

    # Two per kind, export, import and the suppression entries: a new route joins every_call.
    assert len(urlpatterns) == 2 * len(SECTIONS) + 3


@pytest.mark.parametrize("caller", ["nobody", "revoked token", "inactive user", "partner key"])
def test_every_endpoint_refuses_a_caller_without_a_live_token_with_401(marketplace, caller):
    ops_token = token("Ops", username="ops-probe")
    if caller == "revoked token":
        staff_token_revoke(token=User.objects.get(username="ops-probe").staff_tokens.get())
    if caller == "inactive user":
        User.objects.filter(username="ops-probe").update(is_active=False)
    headers = {
        "nobody": {},
        "partner key": {"Authorization": "Bearer lsk_not-a-staff-token-at-all"},
    }.get(caller, {"Authorization": f"Bearer {ops_token}"})
    calls = list(every_call())
    before = row_counts()
    for call in calls:
        response = call.send(Client(headers=headers))
        body = problem(response, 401)
        assert body["type"] == "/api/problems/unauthenticated", call
        assert response["WWW-Authenticate"].startswith("Bearer"), call
    assert row_counts() == before


def test_a_read_token_reads_every_endpoint_and_writes_none(marketplace):
    reader = client(token("Ops", TokenScope.READ))
    calls = list(every_call())
    before = row_counts()
    for call in calls:
        response = call.send(reader)
        if call.writes:
            assert "scope is read" in problem(response, 403)["detail"], call
        else:
            assert response.status_code == 200, call
    assert row_counts() == before
    assert SuppressedContact.objects.count() == 0


def test_sales_read_everything_without_personal_data_and_write_nothing(marketplace):
    sales = client(token("Sales", TokenScope.READ_WRITE))
    calls = list(every_call())
    before = row_counts()
    read = ""
    for call in calls:
        response = call.send(sales)
        if call.writes:
            problem(response, 403)
        else:
            assert response.status_code == 200, call
            read += response.content.decode()
    assert row_counts() == before
    assert SuppressedContact.objects.count() == 0
    for value in PERSONAL:
        assert value not in read
    for masked in (mask_email(BUYER_EMAIL), mask_phone(BUYER_PHONE), mask_email(MEMBER_EMAIL)):
        assert masked in read
    # What is not personal stays readable.
    assert "Summit Mutual" in read
    assert "Inside sales" in read


def test_ops_see_personal_data_and_staff_of_no_group_see_nothing(marketplace):
    ops = client(token("Ops", TokenScope.READ))
    assert BUYER_EMAIL in ops.get(item_url("buyers")).content.decode()
    nobody = client(token(None, TokenScope.READ_WRITE))
    for call in every_call():
        problem(call.send(nobody), 403)


def test_a_user_who_is_not_staff_is_refused_with_403(marketplace):
    raw = token("Ops", TokenScope.READ, username="left-staff")
    User.objects.filter(username="left-staff").update(is_staff=False)
    problem(client(raw).get(url("verticals")), 403)


def test_a_session_of_staff_works_too_until_the_user_is_deactivated(marketplace):
    session = Client()
    session.force_login(staff_user("Ops", "ops-session"))
    assert session.get(item_url("verticals")).json()["slug"] == "auto"
    User.objects.filter(username="ops-session").update(is_active=False)
    problem(session.get(item_url("verticals")), 401)


# --- The document ---------------------------------------------------------------------------


def command_export(*args: str) -> str:
    out = io.StringIO()
    call_command("config", "export", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_export_is_the_commands_file(marketplace, fmt):
    ops = client(token("Ops", TokenScope.READ))
    response = ops.get(f"{API}export/", {"format": fmt})
    assert response.status_code == 200
    assert response["Content-Type"].startswith(f"application/{fmt}")
    assert response.content.decode() == command_export("--format", fmt)
    solar = VerticalFactory(slug="solar")
    ContractFactory(vertical=solar, name="Sunny")
    scoped = ops.get(f"{API}export/?format=json&vertical=solar").json()
    assert [v["slug"] for v in scoped["verticals"]] == ["solar"]
    assert scoped["scope"] == {"verticals": ["solar"]}


def test_a_bad_export_parameter_is_a_problem_naming_it(marketplace):
    ops = client(token("Ops", TokenScope.READ))
    assert "format" in problem(ops.get(f"{API}export/?format=xml"), 400)["errors"]
    assert problem(ops.get(f"{API}export/?vertical=nope"), 400)["errors"] == {
        "vertical": ["No vertical nope."]
    }


def test_a_bad_export_parameter_from_a_caller_without_a_token_is_refused_as_such(marketplace):
    # The caller is known before its parameters are judged: 401, not 400.
    assert problem(Client().get(f"{API}export/?format=xml"), 401)["type"] == (
        "/api/problems/unauthenticated"
    )


def literal_secrets(text: str) -> str:
    """Fill every placeholder with a value of its own, as a client re-creating secrets does."""
    return PLACEHOLDER.sub(
        lambda m: f"https://hooks.slack.com/services/T1/B1/{m.group(1)[-12:]}", text
    )


def post_import(caller: Client, text: str, fmt: str = "json", **params: str) -> object:
    query = "&".join(f"{k}={quote(v)}" for k, v in {"reason": "api", **params}.items())
    return caller.post(f"{API}import/?{query}", text, content_type=f"application/{fmt}")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_configuration_round_trips_through_the_api(marketplace, fmt):
    ops = client(token("Ops"))
    first = ops.get(f"{API}export/", {"format": fmt}).content.decode()
    wipe_configuration()
    response = post_import(ops, literal_secrets(first), fmt)
    assert response.status_code == 200, response.content
    assert response.json()["applied"] is True
    assert ops.get(f"{API}export/", {"format": fmt}).content.decode() == first
    assert ContractSecret.objects.get().value.startswith("https://hooks.slack.com/")


def edited(document: dict) -> dict:
    (exclusive,) = [c for c in document["contracts"] if c["name"] == "Exclusive"]
    exclusive["floor_price"] = "21.50"
    exclusive["caps"].append({"period": "month", "max_leads": 900, "max_budget": None})
    document["suppression_lists"].append({"name": "Litigators", "description": "", "active": True})
    return document


def test_a_dry_run_import_answers_the_diff_and_writes_nothing(marketplace):
    ops = client(token("Ops"))
    document = edited(ops.get(f"{API}export/?format=json").json())
    before = row_counts()
    response = post_import(ops, json.dumps(document), dry_run="true")
    assert response.status_code == 200, response.content
    diff = response.json()
    assert row_counts() == before
    assert diff["applied"] is False
    (changed,) = diff["changed"]
    assert changed["path"] == "contracts[0]"
    assert changed["label"] == "Summit Mutual / auto / Exclusive"
    assert {"name": "floor_price", "old": "5.00", "new": "21.50"} in changed["fields"]
    assert {"path": "contracts[0].caps[2]", "label": "month"} in diff["created"]
    assert {"path": "suppression_lists[1]", "label": "Litigators"} in diff["created"]
    assert {"path": "verticals[0]", "label": "auto"} in diff["unchanged"]
    assert diff["deleted"] == diff["absent"] == []
    # Applied, the same diff: and the history names the token's user and the reason.
    applied = post_import(ops, json.dumps(document), reason="Q1 prices")
    assert applied.json()["applied"] is True
    latest = Contract.objects.get(name="Exclusive").history.latest()
    assert (latest.history_change_reason, latest.history_user.username) == (
        "Q1 prices",
        "ops-read_write",
    )


def test_a_refused_import_lists_every_problem_with_its_path_and_changes_nothing(marketplace):
    ops = client(token("Ops"))
    document = edited(ops.get(f"{API}export/?format=json").json())
    document["contracts"][0]["caps"][0]["period"] = "fortnight"
    document["contracts"][1]["buyer"] = "Nobody Inc"
    document["buyers"][0]["colour"] = "blue"
    before = row_counts()
    body = problem(post_import(ops, json.dumps(document), prune="true"), 422)
    assert body["type"] == "/api/problems/config-refused"
    assert body["errors"] == {
        "buyers[0].colour": [
            body["errors"]["buyers[0].colour"][0]  # lists the known keys
        ],
        "contracts[0].caps[0].period": ["Value 'fortnight' is not a valid choice."],
        "contracts[1].buyer": ["no buyer 'Nobody Inc', stored or in the file."],
    }
    assert body["errors"]["buyers[0].colour"][0].startswith("unknown key")
    assert row_counts() == before


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("{", "application/json", "Not valid JSON"),
        ("verticals: [", "application/yaml", "Not valid YAML"),
        ('{"leadswitch": 1, "a": 1, "a": 2}', "application/json", "given twice"),
        ('{"verticals": []}', "application/json", "first key must be `leadswitch: 1`"),
        # Text no database column may hold: PostgreSQL refuses NUL even in a lookup.
        (
            '{"leadswitch": 1, "sources": [{"name": "Acme\\u0000"}]}',
            "application/json",
            "sources[0].name",
        ),
        ('leadswitch: 1\nbuyers:\n- company: "\\0"\n', "application/yaml", "buyers[0].company"),
        ('{"leadswitch": 1, "teams": [{"name": "\\ud800"}]}', "application/json", "teams[0].name"),
    ],
)
def test_a_body_that_is_no_document_is_a_malformed_request(
    marketplace, body, content_type, expected
):
    ops = client(token("Ops"))
    response = ops.post(f"{API}import/?reason=x", body, content_type=content_type)
    assert expected in problem(response, 400)["detail"]


def test_a_natural_key_no_database_may_hold_names_no_object(marketplace):
    ops = client(token("Ops"))
    path = url("buyers", "Summit\x00")
    before = row_counts()
    problem(ops.get(path), 404)
    problem(ops.delete(f"{path}?reason=x"), 404)
    assert set(problem(put(ops, path, {}), 422)["errors"]) == {"company"}
    entries = url("suppression-lists", "Do not call\x00", "entries")
    body = json.dumps({"entries": ["a@b.co"]})
    problem(ops.post(f"{entries}?reason=x", body, content_type="application/json"), 404)
    assert row_counts() == before


def test_a_write_without_a_reason_is_refused_naming_it(marketplace):
    ops = client(token("Ops"))
    before = row_counts()
    for call in every_call():
        if call.writes:
            body = problem(call.send(ops, reason=" "), 400)
            assert set(body["errors"]) == {"reason"}, call
    assert row_counts() == before


def test_a_write_of_what_the_user_may_not_do_is_refused_and_undone(marketplace):
    # Contracts may be viewed and changed, not added: the diff says which a write does.
    user = staff_user(None, "contracts-only")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_contract", "change_contract", "view_unmasked_pii"]
        )
    )
    raw = staff_token_create(user=user, name="x", scope=TokenScope.READ_WRITE)[1]
    contract = client(raw).get(item_url("contracts")).json()
    contract["floor_price"] = "3.00"
    contract["caps"].append({"period": "month", "max_leads": 1, "max_budget": None})
    allowed = put(client(raw), item_url("contracts"), contract, reason="price")
    assert allowed.status_code == 200, allowed.content
    assert Contract.objects.get(name="Exclusive").floor_price == Decimal("3.00")
    before = row_counts()
    response = put(
        client(raw), url("contracts", "Summit Mutual", "auto", "Copy"), contract | {"name": "Copy"}
    )
    assert "buyers.add_contract" in problem(response, 403)["detail"]
    document = {"leadswitch": 1, "contracts": [contract | {"name": "Copy"}]}
    problem(post_import(client(raw), json.dumps(document)), 403)
    assert row_counts() == before
    problem(client(raw).delete(f"{item_url('contracts')}?reason=x"), 403)
    problem(client(raw).get(url("buyers")), 403)


# --- One object -----------------------------------------------------------------------------


def put(caller: Client, path: str, body: dict, **params: str) -> object:
    query = "&".join(f"{k}={quote(v)}" for k, v in {"reason": "api", **params}.items())
    return caller.put(f"{path}?{query}", json.dumps(body), content_type="application/json")


def test_each_kind_reads_as_the_export_writes_it(marketplace):
    ops = client(token("Ops", TokenScope.READ))
    document = json.loads(command_export("--format", "json"))
    for kind in SECTIONS:
        collection = ops.get(url(kind.section.replace("_", "-"))).json()
        assert collection == document[kind.section], kind.section
        assert ops.get(item_url(kind.section)).json() in collection, kind.section
    missing = ops.get(url("contracts", "Summit Mutual", "auto", "Nope"))
    assert "No contract" in problem(missing, 404)["detail"]


def test_a_put_of_a_contract_is_seen_by_routing_at_once(settings):
    settings.ELIGIBILITY_RULES_TTL = 60
    vertical = VerticalFactory(slug="home")
    contract = ContractFactory(vertical=vertical, name="Everywhere", deliverable=True)
    lead = LeadFactory(vertical=vertical, state="IL")
    assert [v.eligible for v in explain(lead)] == [True]
    ops = client(token("Ops"))
    path = url("contracts", contract.buyer.company, "home", "Everywhere")
    body = ops.get(path).json()
    body["territory"] = [
        {"mode": "include", "kind": "states", "values": "WI", "radius_miles": None}
    ]
    response = put(ops, path, body, reason="Wisconsin only")
    assert response.status_code == 200, response.content
    assert response.json()["created"] == [{"path": "territory", "label": "1 territory rules"}]
    (verdict,) = explain(lead)
    assert not verdict.eligible
    rule = TerritoryRule.history.get(contract_id=contract.pk)
    assert (rule.history_change_reason, rule.history_user.username) == (
        "Wisconsin only",
        "ops-read_write",
    )


def test_a_put_creates_then_replaces_with_its_parts(marketplace):
    ops = client(token("Ops"))
    path = url("buyers", "Northwind")
    body = {"company": "Northwind", "caps": [{"period": "day", "max_leads": 10}]}
    before = row_counts()
    dry = put(ops, path, body, reason="new buyer", dry_run="true")
    assert (dry.status_code, dry.json()["applied"]) == (200, False)
    assert [c["label"] for c in dry.json()["created"]] == ["Northwind", "day"]
    assert row_counts() == before
    created = put(ops, path, body, reason="new buyer")
    assert created.status_code == 201, created.content
    assert created.json()["created"] == [
        {"path": "", "label": "Northwind"},
        {"path": "caps[0]", "label": "day"},
    ]
    buyer = Buyer.objects.get(company="Northwind")
    assert buyer.history.get().history_user.username == "ops-read_write"
    # A part the body's list leaves out goes; fields left out keep their value.
    replaced = put(ops, path, {"caps": [{"period": "week", "max_leads": 50}]}, reason="weekly")
    assert replaced.status_code == 200
    assert replaced.json()["deleted"] == [{"path": "caps", "label": "day"}]
    assert list(BuyerCap.objects.filter(buyer=buyer).values_list("period", flat=True)) == ["week"]
    # Other buyers are left alone and not reported.
    assert replaced.json()["absent"] == []
    assert Buyer.objects.count() == 2


def test_a_put_whose_body_names_another_object_is_refused_with_the_field(marketplace):
    ops = client(token("Ops"))
    body = ops.get(item_url("contracts")).json() | {"name": "Other"}
    before = row_counts()
    response = put(ops, item_url("contracts"), body)
    assert set(problem(response, 422)["errors"]) == {"name"}
    assert row_counts() == before


def test_a_put_with_bad_values_is_refused_field_by_field_in_the_object(marketplace):
    ops = client(token("Ops"))
    body = ops.get(item_url("contracts")).json()
    before = row_counts()
    parts = problem(
        put(ops, item_url("contracts"), body | {
            "caps": [body["caps"][0] | {"period": "fortnight"}],
            "schedule": [body["schedule"][0] | {"closes_at": 1050}],
        }),
        422,
    )["errors"]  # fmt: skip
    assert parts["caps[0].period"] == ["Value 'fortnight' is not a valid choice."]
    assert parts["schedule[0].closes_at"][0].startswith("give a time as 'HH:MM'")
    own = problem(put(ops, item_url("contracts"), body | {"floor_price": "x", "colour": 1}), 422)
    assert own["errors"]["floor_price"] == ["“x” value must be a decimal number."]
    assert own["errors"]["colour"][0].startswith("unknown key")
    assert row_counts() == before


def test_secrets_are_write_only(marketplace):
    ops = client(token("Ops"))
    read = "".join(ops.get(item_url(s)).content.decode() for s in OBJECTS)
    for secret in (SLACK_URL, OPS_SLACK_URL, AUTH_SECRET, API_KEY_SECRET):
        assert secret not in read
    body = ops.get(item_url("contracts")).json()
    assert PLACEHOLDER.fullmatch(body["secrets"][0]["value"])
    # The placeholder keeps the stored secret (the server's environment is never read) ...
    assert put(ops, item_url("contracts"), body).json()["changed"] == []
    assert ContractSecret.objects.get().value == API_KEY_SECRET
    # ... the value itself sets it, and the answer never shows it.
    body["secrets"][0]["value"] = "rotated-key-0005"
    response = put(ops, item_url("contracts"), body, reason="rotate")
    assert "rotated-key-0005" not in response.content.decode()
    (changed,) = response.json()["changed"]
    assert changed["fields"] == [{"name": "value", "old": "••••", "new": "••••"}]
    assert ContractSecret.objects.get().value == "rotated-key-0005"
    assert "rotated-key-0005" not in ops.get(item_url("contracts")).content.decode()
    # A new secret needs its value.
    body["secrets"].append({"name": "token", "value": "${LEADSWITCH_SECRET_X}"})
    errors = problem(put(ops, item_url("contracts"), body), 422)["errors"]
    assert errors["secrets[1].value"][0].startswith("give the secret's value")


def test_a_user_who_sees_personal_data_masked_may_not_write_it(marketplace):
    user = staff_user(None, "masked-writer")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_buyer", "change_buyer"])
    )
    raw = staff_token_create(user=user, name="x", scope=TokenScope.READ_WRITE)[1]
    body = client(raw).get(item_url("buyers")).json()
    assert body["contact_email"] == mask_email(BUYER_EMAIL)
    response = put(client(raw), item_url("buyers"), body)
    assert "buyers[0].contact_email" not in problem(response, 403)["detail"]
    assert "contact_email" in response.json()["detail"]
    assert Buyer.objects.get().contact_email == BUYER_EMAIL
    del body["contact_email"], body["contact_phone"], body["contact_name"]
    assert put(client(raw), item_url("buyers"), body | {"notes": "ok"}).status_code == 200


def test_a_diff_shows_a_user_who_sees_personal_data_masked_no_personal_label(marketplace):
    # Bo is a team member without an account: the file names him by his name, which is personal.
    user = staff_user(None, "masked-team-writer")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_team", "change_team"]))
    masked = client(staff_token_create(user=user, name="x", scope=TokenScope.READ_WRITE)[1])
    document = {"leadswitch": 1, "teams": [{"name": "Inside sales", "members": []}]}
    answers = [
        put(masked, item_url("teams"), {"members": []}, dry_run="true"),
        post_import(masked, json.dumps(document), dry_run="true"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.content
        labels = [c["label"] for action in ("deleted", "absent") for c in answer.json()[action]]
        assert sorted(labels) == ["B***", "ana"]
    ops = client(token("Ops"))
    shown = put(ops, item_url("teams"), {"members": []}, dry_run="true").json()["deleted"]
    assert sorted(c["label"] for c in shown) == ["Bo", "ana"]


def test_a_delete_goes_with_its_parts_and_history_or_is_refused_when_it_would_take_others(
    marketplace,
):
    ops = client(token("Ops"))
    before = row_counts()
    # A vertical that contracts use, a buyer whose contracts would go with it.
    vertical = problem(ops.delete(f"{item_url('verticals')}?reason=x"), 422)
    assert re.search("contracts.* still refer to it", vertical["errors"]["_"][0])
    buyer = problem(ops.delete(f"{item_url('buyers')}?reason=x"), 422)
    assert "would delete contract" in buyer["errors"]["_"][0]
    assert row_counts() == before
    assert ops.delete(f"{url('notification-subscriptions', 'Ops Slack')}?reason=x").json()[
        "applied"
    ]
    before = row_counts()
    dry = ops.delete(f"{item_url('contracts')}?reason=tidy&dry_run=1")
    assert dry.json() == {
        "applied": False, "created": [], "changed": [], "unchanged": [], "absent": [],
        "deleted": [{"path": "", "label": "Summit Mutual / auto / Exclusive"}],
    }  # fmt: skip
    assert row_counts() == before
    response = ops.delete(f"{item_url('contracts')}?reason=tidy")
    assert response.status_code == 200, response.content
    assert not Contract.objects.filter(name="Exclusive").exists()
    cap = ContractCap.history.filter(history_type="-").first()
    assert (cap.history_change_reason, cap.history_user.username) == ("tidy", "ops-read_write")
    problem(ops.delete(f"{item_url('contracts')}?reason=again"), 404)


def test_a_delete_that_would_erase_leads_records_is_refused(marketplace):
    # A contract that pinged leads without selling them: its attempts are those leads' record
    # (what was sent to whom, and the answer), which no staff may delete in the admin either.
    contract = Contract.objects.get(name="Exclusive")
    AttemptFactory(contract=contract, auction__lead__vertical=contract.vertical)
    ops = client(token("Ops"))
    assert ops.delete(f"{url('notification-subscriptions', 'Ops Slack')}?reason=x").json()[
        "applied"
    ]
    before = row_counts()
    body = problem(ops.delete(f"{item_url('contracts')}?reason=tidy"), 422)
    assert "1 attempt" in body["errors"]["_"][0]
    assert Attempt.objects.filter(contract=contract).count() == 1
    assert row_counts() == before


def test_suppression_entries_are_appended_hashed_and_never_read_back(marketplace):
    ops = client(token("Ops"))
    path = url("suppression-lists", "Do not call", "entries")
    body = {"entries": ["Lit.Igator@Example.com", "(312) 555-0199", "not a contact"]}
    response = ops.post(f"{path}?reason=court+list", json.dumps(body), "application/json")
    assert response.json() == {"added": 2, "already_listed": 0, "rejected": 1}
    again = ops.post(f"{path}?reason=again", json.dumps(body), "application/json")
    assert again.json() == {"added": 0, "already_listed": 2, "rejected": 1}
    suppression_list = SuppressionList.objects.get()
    assert SuppressedContact.objects.filter(
        suppression_list=suppression_list,
        value_hash=suppression_hash("email", "lit.igator@example.com"),
    ).exists()
    assert rows_containing("igator@example.com") == []
    read = ops.get(url("suppression-lists", "Do not call")).json()
    assert read == {"name": "Do not call", "description": "Litigators", "active": True}
    assert ops.get(path).status_code == 405
    bad = ops.post(f"{path}?reason=x", json.dumps({"entries": "a@b.co"}), "application/json")
    assert "entries" in problem(bad, 400)["errors"]


def test_tokens_never_reach_the_logs_or_the_database_in_clear(marketplace, caplog):
    caplog.set_level(logging.DEBUG)
    raw = token("Ops")
    revoked = token("Sales", username="revoked-sales")
    staff_token_revoke(token=User.objects.get(username="revoked-sales").staff_tokens.get())
    for caller in (client(raw), client(revoked)):
        caller.get(url("verticals"))
        put(caller, item_url("verticals"), caller.get(item_url("verticals")).json() or {})
        caller.post(f"{API}import/?reason=x", "{", content_type="application/json")
    for secret in (raw, revoked, raw[4:], revoked[4:]):
        assert secret not in caplog.text
        assert rows_containing(secret) == []


def test_the_schema_documents_every_route_with_problems():
    schema = yaml.safe_load(Client().get("/api/schema/config/").content)
    assert schema["info"]["title"] == "Leadswitch configuration API"
    paths = schema["paths"]
    assert "/api/config/v1/contracts/{buyer}/{vertical}/{name}/" in paths
    assert set(paths["/api/config/v1/teams/{name}/"]) == {"get", "put", "delete"}
    put_ = paths["/api/config/v1/buyers/{company}/"]["put"]
    assert put_["responses"]["422"]["content"] == {
        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    assert {p["name"] for p in put_["parameters"]} >= {"company", "reason", "dry_run"}
    contract = schema["components"]["schemas"]["Contract"]
    assert contract["properties"]["caps"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/ContractCap"}
    }  # fmt: skip
    assert re.search("placeholder", contract["properties"]["secrets"]["items"]["$ref"]) is None
    assert len(paths) == 2 * len(SECTIONS) + 3


def test_a_contract_resumed_through_the_api_must_be_able_to_deliver(marketplace):
    ops = client(token("Ops"))
    body = ops.get(item_url("contracts")).json()
    body |= {"status": ContractStatus.ACTIVE, "paused_reason": ""}
    body["endpoints"] = [e for e in body["endpoints"] if e["kind"] != "post"]
    errors = problem(put(ops, item_url("contracts"), body), 422)["errors"]
    assert errors["status"][0].startswith("An active contract must be able to deliver.")
    assert Vertical.objects.count() == 1


def test_the_schema_generates_without_warnings():
    """`check --deploy` (CI) fails on any drf-spectacular warning, e.g. two operations of one id."""
    from drf_spectacular.checks import schema_check

    assert [str(message.msg) for message in schema_check(None)] == []
