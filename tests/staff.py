"""Staff users of each role, for tests of who may see and do what in the admin.

The groups are reporting's data migration's (`reporting/migrations/0002_staff_groups.py`);
transactional tests (the browser's) keep them with `serialized_rollback`.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db.models import Model
from django.test import Client
from django.urls import reverse

ROLES = ("Sales", "Ops", "Admin")
PASSWORD = "pw-for-tests-only-1234"


def staff_user(role: str | None, username: str | None = None) -> User:
    """Return a staff user in the role's group; None makes a staff user of no group."""
    user = User.objects.create_user(
        username=username or f"{(role or 'nobody').lower()}-user",
        email=f"{(role or 'nobody').lower()}@leadswitch.example",
        password=PASSWORD,
        is_staff=True,
    )
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return user


def admin_pages_as(role: str, *objects: Model) -> list[str]:
    """Return the text of each object's admin change page as staff of the role see it (each page
    answered 200)."""
    client = Client()
    client.force_login(staff_user(role))
    texts = []
    for obj in objects:
        meta = obj._meta
        page = client.get(
            reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
        )
        assert page.status_code == 200, obj
        texts.append(page.content.decode())
    return texts


# Every caller the staff and buyer surfaces are probed with (tests/reporting/test_authorization.py,
# tests/test_admin_authorization.py): nobody, the two kinds of API key, and staff of each role.
CALLERS = ("anonymous", "partner key", "buyer key", "staff of no group", *ROLES)


def client_as(caller: str, *, partner_key: str = "", buyer_key: str = "") -> Client:
    """Return a test client that calls as one of CALLERS (a key in the Authorization header)."""
    if caller == "partner key":
        return Client(headers={"Authorization": f"Bearer {partner_key}"})
    if caller == "buyer key":
        return Client(headers={"Authorization": f"Bearer {buyer_key}"})
    client = Client()
    if caller != "anonymous":
        role = None if caller == "staff of no group" else caller
        client.force_login(staff_user(role, username=f"{caller.replace(' ', '-')}-caller"))
    return client
