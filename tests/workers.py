"""What the tests that start a real Celery worker subprocess share: the test database's URL, a
routing queue of the test's own on the broker, workers started on it and stopped whatever
happens, and the process with its log (`Service`) that the fault harness starts too.

A test module uses the fixtures by importing them (`from tests.workers import routing_queue,
start_worker`); it needs PostgreSQL, a transactional database and CELERY_BROKER_URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from leads.models import FINAL_STATUSES, Lead
from tests.conftest import celery_eager

BASE_DIR = Path(settings.BASE_DIR)
CELERY = Path(sys.executable).with_name("celery")
STALE_SECONDS = 3
# On a test (or in a module's pytestmark) that starts a worker or sends tasks through the broker.
needs_broker = pytest.mark.skipif(
    not os.environ.get("CELERY_BROKER_URL"), reason="needs a broker: set CELERY_BROKER_URL"
)


def final_count(lead_ids) -> int:
    """How many of these leads are in a final state."""
    return Lead.objects.filter(pk__in=lead_ids, status__in=FINAL_STATUSES).count()


# The marks of a test module whose flows go through a real worker: PostgreSQL, a transactional
# database, a bound on time, and a broker.
WORKER_FLOW = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    needs_broker,
]


def database_url_of_this_test() -> str:
    """Return a DATABASE_URL for the database this test runs on (pytest-django's test copy)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{credentials}@" if credentials else ""
    host += db["HOST"] or "localhost"
    if db["PORT"]:
        host += f":{db['PORT']}"
    return f"postgres://{host}/{db['NAME']}"


@pytest.fixture
def routing_queue(settings) -> Iterator[str]:
    """Send routing to a queue of our own, through the broker, from this process."""
    name = f"routing-test-{uuid.uuid4().hex[:12]}"
    conf = celery_app.conf
    saved = conf.task_default_queue
    conf.task_default_queue = name
    with celery_eager(settings, eager=False):
        yield name
    conf.task_default_queue = saved
    if settings.BROKER_KIND == "rabbitmq":
        # A killed worker's unacknowledged messages went back to the queue when its connection
        # closed: deleting the queue (and its exchange) drops them.
        with celery_app.connection_for_write() as broker:
            channel = broker.default_channel
            channel.queue_delete(name)
            channel.exchange_delete(name)
        return
    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    # Only our keys: the broker may be shared. A killed worker's messages stay unacknowledged
    # (until the visibility timeout); drop them so that no later worker restores them.
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    for tag, payload in client.hgetall("unacked").items():
        with contextlib.suppress(ValueError, IndexError, TypeError):
            if json.loads(payload)[2] == name:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    client.close()


@pytest.fixture
def start_worker(transactional_db, routing_queue, tmp_path) -> Iterator[Callable[[], Service]]:
    """Start real routing workers on the test database; stop every one whatever happens."""
    workers: list[Service] = []

    def start() -> Service:
        worker = worker_start(
            tmp_path / f"worker-{len(workers)}.log",
            name=f"{routing_queue}-{len(workers)}@%h",
            queues=routing_queue,
            env={"ROUTING_STALE_SECONDS": str(STALE_SECONDS)},
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


class Service:
    """One process (and its process group) with its log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own command lines
                command,
                cwd=BASE_DIR,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pids whose parent is this process (a prefork pool's children)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid:
                    found.append(int(entry.name))
        return found

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acknowledgement, nothing."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, *, grace: float = 20) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        self.kill()


def worker_command(
    *,
    name: str,
    queues: str = "",
    pool: str = "threads",
    concurrency: int = 8,
    app: str = "config",
    include: str = "",
    loglevel: str = "WARNING",
) -> list[str]:
    """A Celery worker's command line, named `name`, consuming `queues` (else the default one);
    without gossip, mingle or heartbeat, which only slow a worker's start and stop."""
    return [
        str(CELERY),
        "-A",
        app,
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        *(("-Q", queues) if queues else ()),
        "-n",
        name,
        *(("--include", include) if include else ()),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        loglevel,
    ]


def worker_start(
    log: Path,
    *,
    name: str,
    queues: str,
    pool: str = "threads",
    concurrency: int = 8,
    include: str = "",
    env: dict[str, str] | None = None,
) -> Service:
    """Start a worker (see `worker_command`) on this test's database, logging to `log`; its
    buyers are the simulator on 127.0.0.1. `env` adds to its environment."""
    command = worker_command(
        name=name, queues=queues, pool=pool, concurrency=concurrency, include=include
    )
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
        "PYTHONPATH": str(BASE_DIR),
        "LOG_FORMAT": "text",
        **(env or {}),
    }
    return Service("worker", command, environment, log)


def wait_until(condition: Callable[[], bool], *, seconds: float, worker: Service, what: str):
    """Poll `condition` until it holds; fail with the worker's log when it does not in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        assert worker.alive(), f"the worker died:\n{worker.output()}"
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {seconds} s; worker log:\n{worker.output()}")
