from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
from django.db import connection
from hypothesis import settings as hypothesis_settings

from tests.migrating import latest_migrations, migrate
from tests.outbound.receiver import Receiver, receiving
from tests.status_guard import guard_install

# Hypothesis' default 200 ms deadline is a timed unit test: on a loaded machine (a cold import,
# a busy CI host) it fails properties that are correct. Speed goals live in bench/.
hypothesis_settings.register_profile("leadswitch", deadline=None)
hypothesis_settings.load_profile("leadswitch")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On SQLite the test database is a file, not Django's shared in-memory one: there a writer
    that meets another's lock fails at once ("database table is locked"; the busy timeout
    applies to files only), so tests racing real threads would see what no deployment sees."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        name = tmp_path_factory.mktemp("database") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(name)


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


@pytest.fixture
def rules_cached_as_in_production(settings):
    """Compiled rules are kept between leads, their version read once a second: the vertical's
    compiled contracts and its version kept per process, as in production."""
    settings.ELIGIBILITY_RULES_TTL = 60
    settings.ELIGIBILITY_VERSION_RECHECK_MS = 1000


@contextmanager
def celery_eager(settings, eager: bool) -> Iterator[None]:
    """Run tasks in-process (or through the broker), then leave Celery's setting as found.

    Celery reads Django's CELERY_TASK_ALWAYS_EAGER live until its own `task_always_eager` is
    set. So what is found is Celery's own value, read before Django's setting changes (read
    after, it is the new value, and restoring it would pin that for the rest of the run), or
    the absence of one, which is restored by deleting it.
    """
    from config.celery import app

    conf = app.conf
    own = "task_always_eager" in conf.changes
    found = conf.changes.get("task_always_eager")
    found_setting = settings.CELERY_TASK_ALWAYS_EAGER
    settings.CELERY_TASK_ALWAYS_EAGER = eager
    conf.task_always_eager = eager
    try:
        yield
    finally:
        settings.CELERY_TASK_ALWAYS_EAGER = found_setting
        if own:
            conf.task_always_eager = found
        else:
            conf.changes.pop("task_always_eager", None)


@pytest.fixture
def eager_celery(settings) -> Iterator[None]:
    """Run tasks in-process, even when the suite was started with a broker."""
    with celery_eager(settings, eager=True):
        yield


@pytest.fixture
def start_receiver() -> Iterator[Callable[..., Receiver]]:
    """Start partners' endpoints on 127.0.0.1 (`receiving`'s arguments) that answer until the
    test ends."""
    with ExitStack() as stack:
        yield lambda *statuses, **options: stack.enter_context(receiving(*statuses, **options))


def pytest_collection_modifyitems(config, items):
    """Skip tests marked postgres when the suite runs on SQLite (the embedded default)."""
    if connection.vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def latest() -> Iterator[list[tuple[str, str]]]:
    """For tests that migrate the database back: the latest migrations, where the database is
    left whatever the test did (tests/migrating.py)."""
    nodes = latest_migrations()
    yield nodes
    migrate(nodes)
