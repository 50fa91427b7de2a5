"""Staff users of each role, for tests of who may see and do what in the admin.

The groups are reporting's data migration's (`reporting/migrations/0002_staff_groups.py`);
transactional tests (the browser's) keep them with `serialized_rollback`.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, User

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
