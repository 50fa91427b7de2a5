from __future__ import annotations

import pytest
from django.db import connection

from tests.status_guard import guard_install


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database refuses any lead status change the transition table does not allow."""
    with django_db_blocker.unblock():
        guard_install(connection)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # The manifest storage needs collectstatic; tests render admin pages without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Users are created and logged in by the hundred; slow hashing only slows the suite.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _simulator_reachable(settings):
    # Buyers in tests are the simulator on 127.0.0.1, which outbound/guard.py otherwise
    # refuses; the guard's own tests take this away again.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture(autouse=True)
def _fresh_eligibility_rules(settings):
    # Tests change contracts between evaluations: never serve compiled rules from a cache.
    from routing.selectors import clear_rules_cache

    settings.ELIGIBILITY_RULES_TTL = 0
    settings.ELIGIBILITY_VERSION_RECHECK_MS = 0
    clear_rules_cache()


def pytest_collection_modifyitems(config, items):
    """Skip tests marked postgres when the suite runs on SQLite (the embedded default)."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)
