"""The configuration API answers as its own OpenAPI schema says (schemathesis, bounded).

Every operation of /api/schema/config/ gets generated valid and invalid requests from an Ops
user's read-write token, on a marketplace with one of every kind of part
(tests/marketplace/test_config.py). Every check schemathesis has judges each answer, but one:
positive_data_acceptance, since a configuration the JSON Schema allows may still be refused for
what it cannot say (a reference to an object that does not exist, a text longer than its
column, an active contract without a post endpoint); such a refusal must then be a
config-refused problem with `errors`, which `refusals_are_problems_with_errors` checks.

`SCHEMATHESIS_MAX_EXAMPLES` (default 30 in tests/leads/test_schemathesis.py) is read here too,
at a third of it: the configuration's operations are many.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, is_check_class, load_all_checks

from reporting.models import TokenScope
from reporting.services import staff_token_create
from tests.marketplace.test_config import every_kind_of_part
from tests.staff import staff_user

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = max(3, int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30")) // 3)
load_all_checks()
ALL_CHECKS = [check for check in CHECKS.get_all() if not is_check_class(check)]
CHECKED = [c for c in ALL_CHECKS if c.__name__ != "positive_data_acceptance"]


def refusals_are_problems_with_errors(ctx, response, case):
    """A write refused for its content says where: config-refused, with `errors`."""
    if response.status_code == 422:
        problem = response.json()
        assert problem["type"] == "/api/problems/config-refused", problem
        assert problem["errors"], problem


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture
def wsgi_app() -> Iterator[WSGIHandler]:
    """Django's WSGI app, leaving the test's database connection open between requests (see
    tests/leads/test_schemathesis.py)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app):
    every_kind_of_part()
    user = staff_user("Ops", "ops-fuzz")
    raw = staff_token_create(user=user, name="fuzz", scope=TokenScope.READ_WRITE)[1]
    schema = schemathesis.openapi.from_wsgi("/api/schema/config/", wsgi_app)

    class StaffToken:
        def get(self, case, context) -> str:
            return raw

        def set(self, case, data: str, context) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(refresh_interval=None)(StaffToken)
    return schema


def operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_generated_requests_are_answered_as_documented(api_schema, mode):
    found = operations(api_schema)
    assert len(found) > 20
    for operation in found:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answered_as_documented(case):
            case.call_and_validate(checks=[*CHECKED, refusals_are_problems_with_errors])

        answered_as_documented()
