"""Reports read from a real streaming replica (DATABASE_REPLICA_URL); nothing else does.

A private primary and a standby made from it with pg_basebackup -R, both on spare ports on
127.0.0.1, and gunicorn on them. Pausing the standby's replay shows which server a read went to:
a lead written on the primary is on the primary at once, in the report only once replay resumes.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import DEFAULT_DB_ALIAS, router

from config import db_router
from config.db_router import REPLICA, ReplicaRouter, reading_from_replica
from reporting.rollup import reading_reports
from tests.config.probe import probed, python_run
from tests.faults.harness import PrivatePostgres, Stack, free_port, postgres_bin, wait_until
from tests.leads.factories import LeadFactory
from tests.workers import BASE_DIR, Service


def test_the_replica_is_never_migrated_and_never_written():
    replica_router = ReplicaRouter()
    assert replica_router.allow_migrate(REPLICA, "leads") is False
    assert replica_router.allow_migrate(DEFAULT_DB_ALIAS, "leads") is None
    assert replica_router.db_for_write(object) == DEFAULT_DB_ALIAS


def test_without_a_replica_reports_read_the_primary():
    from leads.models import Lead

    with reading_from_replica() as alias:
        assert alias == DEFAULT_DB_ALIAS
        assert router.db_for_read(Lead) == DEFAULT_DB_ALIAS


REPLICA_PROBE = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({alias: {"host": db["HOST"], "test": db.get("TEST", {}),
    "options": db.get("OPTIONS", {}), "checks": db.get("CONN_HEALTH_CHECKS")}
    for alias, db in settings.DATABASES.items()}))
"""
DATABASE_VARS = ("DATABASE_URL", "DATABASE_REPLICA_URL", "CELERY_BROKER_URL", "DEBUG")


def databases_with(**overrides: str) -> subprocess.CompletedProcess[str]:
    return python_run("-c", REPLICA_PROBE, unset=DATABASE_VARS, SECRET_KEY="x" * 50, **overrides)


def test_a_replica_url_adds_a_replica_bounded_as_the_primary_and_a_test_mirror():
    databases = probed(
        databases_with(
            DATABASE_URL="postgres://leads@db.internal:5432/leadswitch",
            DATABASE_REPLICA_URL="postgres://leads@replica.internal:5432/leadswitch",
            DATABASE_CONNECT_TIMEOUT="3",
        )
    )
    replica = databases[REPLICA]
    assert replica["host"] == "replica.internal"
    assert replica["test"]["MIRROR"] == DEFAULT_DB_ALIAS
    assert replica["checks"] is True
    assert replica["options"]["connect_timeout"] == 3
    assert "-c statement_timeout=" in replica["options"]["options"]


@pytest.mark.parametrize("unset", ["", None])
def test_an_empty_or_missing_replica_url_means_no_replica(unset):
    extra = {} if unset is None else {"DATABASE_REPLICA_URL": unset}
    databases = probed(
        databases_with(DATABASE_URL="postgres://leads@db.internal:5432/leadswitch", **extra)
    )
    assert list(databases) == [DEFAULT_DB_ALIAS]


def test_a_replica_on_another_engine_is_refused_at_start_up():
    result = databases_with(
        DATABASE_URL="", DATABASE_REPLICA_URL="postgres://leads@replica.internal:5432/leadswitch"
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DATABASE_REPLICA_URL must be a replica of DATABASE_URL" in result.stderr


@pytest.mark.django_db
def test_a_report_that_rebuilt_the_rollups_reads_them_on_the_primary(settings, monkeypatch):
    # The replica may not have replayed the rollups this very request wrote on the primary.
    monkeypatch.setattr(db_router, "replica_alias", lambda: REPLICA)
    settings.ROLLUPS_REFRESH_ON_READ = True
    LeadFactory()
    with reading_reports() as alias:
        assert alias == DEFAULT_DB_ALIAS
    with reading_reports() as alias:  # fresh: nothing rebuilt, nothing written
        assert alias == REPLICA
    settings.ROLLUPS_REFRESH_ON_READ = False
    with reading_reports() as alias:
        assert alias == REPLICA


BINARIES = postgres_bin()
needs_postgres_binaries = pytest.mark.skipif(
    BINARIES is None or not (BINARIES / "pg_basebackup").exists(),
    reason="PostgreSQL's server programs (initdb, postgres, pg_basebackup) are missing",
)


class Standby(PrivatePostgres):
    """A hot standby of `primary`, made by pg_basebackup -R: it streams from the primary."""

    def __init__(self, primary: PrivatePostgres) -> None:  # no initdb: a copy of the primary
        self.bindir = primary.bindir
        self.as_user = primary.as_user
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="leadswitch-pg-standby-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
        subprocess.run(  # noqa: S603 - our own command line
            [
                *self.as_user,
                str(self.bindir / "pg_basebackup"),
                f"--dbname=host=127.0.0.1 port={primary.port} user=postgres",
                "--pgdata",
                str(self.data / "cluster"),
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )


@dataclass
class Replicated:
    stack: Stack
    primary: PrivatePostgres
    standby: Standby
    standby_service: Service
    token: str

    def sql(self, server: PrivatePostgres, query: str) -> list[tuple]:
        with psycopg.connect(server.url("leadswitch"), autocommit=True, connect_timeout=5) as db:
            return db.execute(query).fetchall()

    def manage(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - our own command line
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def received(self) -> int:
        answer = requests.get(
            f"{self.stack.web_url}/api/v1/reports/summary/?preset=today",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["current"]["received"]

    def readiness(self) -> tuple[int, str]:
        """/health/ready's status code and what it says of the replica."""
        answer = requests.get(f"{self.stack.web_url}/health/ready", timeout=30)
        return answer.status_code, answer.json()["checks"]["replica"]["status"]

    def caught_up(self) -> bool:
        (wanted,) = self.sql(self.primary, "SELECT pg_current_wal_lsn()")[0]
        (replayed,) = self.sql(
            self.standby, f"SELECT pg_last_wal_replay_lsn() >= '{wanted}'::pg_lsn"
        )[0]
        return bool(replayed)


class ReplicaStack(Stack):
    """The scenario's processes on the private primary and its replica."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.databases: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            **{
                "CELERY_BROKER_URL": "",  # tasks run in-process
                "CACHE_URL": "",
                # The rollups are refreshed by `refresh_rollups` here, never by a report.
                "ROLLUPS_REFRESH_ON_READ": "0",
                "DATABASE_REPLICA_RETRY_SECONDS": "0",
                "LOG_LEVEL": "WARNING",
                **self.databases,
                **extra,
            }
        )


MAKE_STAFF = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from reporting.services import staff_token_create
user = get_user_model().objects.create_user("analyst", password="x" * 20, is_staff=True)
user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
print(staff_token_create(user=user, name="replica test", scope="read")[1])
"""
# One more lead, of the first lead's source and vertical (each shell's factories count from 0).
ONE_LEAD = """
import uuid
from leads.models import Lead
from tests.leads.factories import LeadFactory
first = Lead.objects.first()
mine = {"source": first.source, "vertical": first.vertical} if first else {}
LeadFactory(email=f"{uuid.uuid4().hex}@example.com", **mine)
"""


@pytest.fixture
def replicated(tmp_path) -> Iterator[Replicated]:
    stack = ReplicaStack(tmp_path)
    standby: Standby | None = None
    try:
        stack.start_postgres()
        primary = stack.postgres
        assert primary is not None
        with psycopg.connect(primary.url("postgres"), autocommit=True) as db:
            db.execute("CREATE DATABASE leadswitch")
        # Migrations never touch the replica: with its address one where nothing listens
        # (the standby does not exist yet), `migrate` still succeeds.
        nobody = free_port()
        stack.databases = {
            "DATABASE_URL": primary.url("leadswitch"),
            "DATABASE_REPLICA_URL": f"postgres://postgres@127.0.0.1:{nobody}/leadswitch",
            "DATABASE_CONNECT_TIMEOUT": "2",
        }
        subprocess.run(  # noqa: S603 - our own command line
            [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--no-input"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        token = subprocess.run(  # noqa: S603 - our own command line
            [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c", MAKE_STAFF],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()[-1]  # after what the shell says of its imports
        standby = Standby(primary)
        standby_service = standby.start(stack)
        stack.databases["DATABASE_REPLICA_URL"] = standby.url("leadswitch")
        scenario = Replicated(stack, primary, standby, standby_service, token)
        wait_until(
            lambda: (
                scenario.sql(primary, "SELECT state FROM pg_stat_replication") == [("streaming",)]
            ),
            seconds=30,
            what="the standby streams",
            watch=[standby_service],
        )
        assert scenario.sql(standby, "SELECT pg_is_in_recovery()") == [(True,)]
        stack.start_web(workers=1)
        yield scenario
    finally:
        stack.stop()
        if standby is not None:
            standby.remove()


@pytest.mark.postgres  # streaming replication is PostgreSQL's
@pytest.mark.timeout(300)
@needs_postgres_binaries
def test_reports_read_the_replica_and_fall_back_to_the_primary(replicated: Replicated):
    scenario = replicated
    scenario.manage("shell", "-c", ONE_LEAD)
    scenario.manage("refresh_rollups")
    wait_until(scenario.caught_up, seconds=30, what="the standby replays")
    assert scenario.received() == 1

    # Replay paused: the primary has the second lead and its rollup, the replica has neither.
    scenario.sql(scenario.standby, "SELECT pg_wal_replay_pause()")
    scenario.manage("shell", "-c", ONE_LEAD)
    scenario.manage("refresh_rollups")
    assert scenario.sql(scenario.primary, "SELECT count(*) FROM leads_lead") == [(2,)]
    assert scenario.sql(scenario.standby, "SELECT count(*) FROM leads_lead") == [(1,)]
    assert scenario.received() == 1  # the report read the replica

    scenario.sql(scenario.standby, "SELECT pg_wal_replay_resume()")
    wait_until(lambda: scenario.received() == 2, seconds=30, what="the report catches up")

    # The replica down: the report answers from the primary, and says so in the log.
    scenario.sql(scenario.standby, "SELECT pg_wal_replay_pause()")
    scenario.manage("shell", "-c", ONE_LEAD)
    scenario.manage("refresh_rollups")
    assert scenario.received() == 2  # still the paused replica
    assert scenario.readiness() == (200, "ok")
    scenario.standby_service.stop(grace=10)
    assert scenario.received() == 3  # the primary
    assert "replica does not answer" in scenario.stack.logs()
    assert scenario.readiness() == (200, "degraded")  # still ready: the reports read the primary
