"""Staff API tokens: minted in the admin (Admin only) or by a command, shown once, stored as a
hash, named, scoped (read or read-write), revocable; a request acts with its user's own
permissions. DRF's clear tokens of before are hashed by a migration and keep working."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from config.problems import PROBLEM_CONTENT_TYPE
from reporting.models import StaffToken, TokenScope
from reporting.services import staff_token_create, staff_token_revoke
from tests.migrating import migrate
from tests.reporting.conftest import PERIOD, staff_user
from tests.test_admin import rows_containing

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"lst_[A-Za-z0-9_\-]{40,}")
SUMMARY = "/api/v1/reports/summary/"
ADD = reverse("admin:reporting_stafftoken_add")


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_admin_mints_a_token_that_is_shown_once_and_stored_only_as_its_hash(caplog):
    caplog.set_level(logging.DEBUG)
    admin = logged_in(staff_user("ada", "Admin"))
    bi = staff_user("bi-tool", "Sales")

    response = admin.post(ADD, {"user": bi.pk, "name": "Metabase", "scope": "read"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (raw,) = TOKEN_RE.findall(response.content.decode())
    token = StaffToken.objects.get(user=bi)
    assert (token.name, token.scope) == ("Metabase", TokenScope.READ)
    assert token.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(token.prefix)
    assert "never be shown again" in response.content.decode()
    # It works, as its user.
    assert Client().get(SUMMARY, PERIOD, **bearer(raw)).status_code == 200
    # And it is nowhere else: not in a row, a cookie, a log record or a later page.
    assert rows_containing(raw) == []
    assert raw not in str(response.cookies)
    assert raw not in caplog.text
    for page in (
        reverse("admin:reporting_stafftoken_changelist"),
        reverse("admin:reporting_stafftoken_change", args=[token.pk]),
        reverse("admin:index"),
    ):
        assert raw not in admin.get(page).content.decode()


def test_a_token_needs_a_name():
    admin = logged_in(staff_user("ada", "Admin"))

    response = admin.post(ADD, {"user": staff_user("bi", "Sales").pk, "name": "", "scope": "read"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert not StaffToken.objects.exists()


@pytest.mark.parametrize("role", ["Sales", "Ops", None])
def test_only_admins_mint_tokens(role):
    client = logged_in(staff_user("someone", *([role] if role else [])))
    target = staff_user("ada", "Admin")

    assert client.get(ADD).status_code == 403
    response = client.post(ADD, {"user": target.pk, "name": "mine now", "scope": "read_write"})

    assert response.status_code == 403
    assert not StaffToken.objects.exists()


def test_the_revoke_action_revokes_and_the_token_is_refused_from_then_on():
    _, raw = staff_token_create(user=staff_user("bi", "Sales"), name="BI")
    admin = logged_in(staff_user("ada", "Admin"))
    assert Client().get(SUMMARY, PERIOD, **bearer(raw)).status_code == 200

    admin.post(
        reverse("admin:reporting_stafftoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [StaffToken.objects.get().pk]},
    )

    response = Client().get(SUMMARY, PERIOD, **bearer(raw))
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert "revoked" in response.json()["detail"]
    assert staff_token_revoke(token=StaffToken.objects.get()) is False


def test_a_read_token_only_reads_and_a_read_write_token_may_change_what_its_user_may():
    user = staff_user("bi", "Ops")
    _, read = staff_token_create(user=user, name="dashboards", scope=TokenScope.READ)
    _, write = staff_token_create(user=user, name="sync", scope=TokenScope.READ_WRITE)

    for token in (read, write):
        assert Client().get(SUMMARY, PERIOD, **bearer(token)).status_code == 200
    refused = Client().post(SUMMARY, {}, content_type="application/json", **bearer(read))
    allowed = Client().post(SUMMARY, {}, content_type="application/json", **bearer(write))

    assert refused.status_code == 403
    assert refused["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert "may only read" in refused.json()["detail"]
    # The scope lets it through; the report itself only reads.
    assert allowed.status_code == 405


def test_a_token_acts_with_its_users_permissions_only():
    nobody = staff_user("no-group", is_staff=True)
    _, raw = staff_token_create(user=nobody, name="BI")

    assert Client().get(SUMMARY, PERIOD, **bearer(raw)).status_code == 403
    # Given the dashboard permission (the Sales group), the same token reads.
    nobody.groups.add(Group.objects.get(name="Sales"))
    assert Client().get(SUMMARY, PERIOD, **bearer(raw)).status_code == 200


def test_a_token_of_a_deactivated_user_is_refused():
    user = staff_user("bi", "Sales")
    _, raw = staff_token_create(user=user, name="BI")
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert Client().get(SUMMARY, PERIOD, **bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    "credential",
    ["lst_" + "x" * 43, secrets.token_hex(20), "lsk_" + "x" * 43, "lbk_" + "x" * 43],
    ids=["unknown token", "unknown 40-hex token", "a source key", "a buyer key"],
)
def test_an_unknown_token_or_another_kind_of_key_is_refused(credential):
    staff_token_create(user=staff_user("bi", "Sales"), name="BI")

    assert Client().get(SUMMARY, PERIOD, **bearer(credential)).status_code == 401


def test_the_command_mints_a_token_and_prints_it_once():
    user = staff_user("bi", "Sales")
    out = StringIO()

    call_command("mint_staff_token", "bi", "--name", "Looker", "--scope", "read_write", stdout=out)

    raw = out.getvalue().strip()
    token = StaffToken.objects.get(user=user)
    assert (token.name, token.scope) == ("Looker", TokenScope.READ_WRITE)
    assert token.hashed_key == hashlib.sha256(raw.encode()).hexdigest()
    assert rows_containing(raw) == []


@pytest.mark.parametrize(
    ("username", "message"),
    [("nobody", "No user 'nobody'"), ("customer", "not an active staff user")],
)
def test_the_command_refuses_a_user_a_token_would_not_work_for(username, message):
    staff_user("customer", "Sales", is_staff=False)

    with pytest.raises(CommandError, match=message):
        call_command("mint_staff_token", username, "--name", "BI", stdout=StringIO())
    assert not StaffToken.objects.exists()


def test_the_token_is_masked_in_log_records(caplog):
    caplog.set_level(logging.DEBUG)
    _, raw = staff_token_create(user=staff_user("bi", "Sales"), name="BI")

    # A token pasted into a query string: Django's 4xx warning carries the request's full path.
    Client().get(f"{SUMMARY}?token={raw}", PERIOD)

    assert caplog.records
    assert raw not in caplog.text
    assert all(raw not in str(getattr(r, "request", "")) for r in caplog.records)


# --- The migration that hashed DRF's clear tokens ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_drf_tokens_of_before_are_hashed_and_keep_working(latest):
    # A transactional test may start after another flushed the groups and permissions the
    # migrations made: a superuser needs neither.
    user = User.objects.create_superuser("bi", password="pw-for-tests-only-1234")
    clear = secrets.token_hex(20)  # DRF's key: 40 hex characters
    migrate([("reporting", "0004_inbound_pings")])
    # DRF authtoken's table as it was (the app is no longer installed).
    with connection.schema_editor() as editor:
        editor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp with time zone NOT NULL, user_id integer NOT NULL UNIQUE)"
            if connection.vendor == "postgresql"
            else "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created datetime NOT NULL, user_id integer NOT NULL UNIQUE)"
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [clear, "2025-01-02 03:04:05+00:00", user.pk],
        )

    migrate([("reporting", "0005_staff_tokens")])

    assert "authtoken_token" not in connection.introspection.table_names()
    token = StaffToken.objects.get(user=user)
    assert token.hashed_key == hashlib.sha256(clear.encode()).hexdigest()
    assert (token.scope, token.prefix) == (TokenScope.READ, clear[:8])
    assert token.created_at.isoformat() == "2025-01-02T03:04:05+00:00"
    assert rows_containing(clear) == []
    response = Client().get(SUMMARY, PERIOD, **bearer(clear))
    assert response.status_code == 200, response.content
