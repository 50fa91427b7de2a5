"""The processes of a fault scenario, all on 127.0.0.1: a private Redis (cache, and broker unless
the scenario runs on RabbitMQ), gunicorn, Celery workers and beat, on the test's PostgreSQL
database.

Each scenario gets a Redis of its own on a spare port, so killing it never touches the machine's
shared services. On RabbitMQ a scenario gets a virtual host of its own on the machine's server,
or, to kill the broker, a private RabbitMQ node on spare ports (`tests/rabbitmq.py`). Every
process runs in its own process group and is stopped (SIGKILL if need be) when the scenario ends,
whatever happens.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psycopg
import requests

from tests import rabbitmq
from tests.workers import BASE_DIR, CELERY, Service, database_url_of_this_test, worker_command

GUNICORN = Path(sys.executable).with_name("gunicorn")
STALE_SECONDS = 3
# What a scenario's broker is: the private Redis, a virtual host on the machine's RabbitMQ, or a
# private RabbitMQ node (for scenarios that kill the broker).
BROKERS = ("redis", "rabbitmq", "rabbitmq-node")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """Start the platform's processes for one scenario; `stop` ends every one of them."""

    def __init__(self, tmp_path: Path, *, broker: str = "redis") -> None:
        assert broker in BROKERS, broker
        self.tmp_path = tmp_path
        self.broker = broker
        self.redis_port = free_port()
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.vhost: rabbitmq.Vhost | None = None
        self.rabbitmq_node: rabbitmq.PrivateNode | None = None
        self.web_url = ""
        self.services: list[Service] = []
        self.restarts = 0
        # Every service logs at this level; a scenario that reads the logs may raise it.
        self.log_level = "WARNING"
        self._supervised: list[tuple[Service, Callable[[], Service]]] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.postgres: PrivatePostgres | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "ENV_FILE": "",  # a developer's .env must not change the scenario
            "DEBUG": "0",
            "SECRET_KEY": "fault-scenarios-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url_of_this_test(),
            "CELERY_BROKER_URL": self.broker_url,
            "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
            "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",  # the simulators
            "ROUTING_STALE_SECONDS": str(STALE_SECONDS),
            "ROUTING_SWEEP_AFTER_SECONDS": "2",
            "SWEEP_EVERY_SECONDS": "1",
            "PYTHONPATH": str(BASE_DIR),
            "LOG_FORMAT": "text",
            "LOG_LEVEL": self.log_level,
            **extra,
        }

    def _log(self, name: str) -> Path:
        return self.tmp_path / f"{name}-{len(self.services)}.log"

    def _start(self, name: str, command: list[str], **extra: str) -> Service:
        service = Service(name, command, self.env(**extra), self._log(name))
        self.services.append(service)
        return service

    def start_redis(self) -> Service:
        """Start (or restart, on the same port) the scenario's private Redis."""
        data = self.tmp_path / "redis"
        data.mkdir(exist_ok=True)
        service = self._start(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data),
            ],
        )
        wait_until(lambda: _redis_answers(self.redis_port), seconds=10, what="Redis up")
        return service

    def start_broker(self) -> Service | None:
        """Start (or restart) the scenario's broker; return its process, if it has one here.

        Redis: the private Redis. RabbitMQ: a virtual host of the scenario's own on the machine's
        server (no process of ours). A private RabbitMQ node: started (again, on the same ports
        and data) and, the first time, given a virtual host of the scenario's own.
        """
        if self.broker == "redis":
            return self.start_redis()
        if self.broker == "rabbitmq":
            if self.vhost is None:
                self.vhost = rabbitmq.Vhost()
                self.broker_url = self.vhost.url
            return None
        if self.rabbitmq_node is None:
            self.rabbitmq_node = rabbitmq.PrivateNode(free_port(), free_port())
        node = self.rabbitmq_node
        node.wait_down()
        service = Service(
            "rabbitmq", node.command(), {**os.environ, **node.env}, self._log("rabbitmq")
        )
        self.services.append(service)
        wait_until(node.answers, seconds=90, what="private RabbitMQ node up", watch=[service])
        if self.vhost is None:
            self.vhost = rabbitmq.Vhost(node=node.name, port=node.port)
            self.broker_url = self.vhost.url
        return service

    def start_postgres(self) -> Service:
        """Start (or restart, on the same port and data) the scenario's private PostgreSQL.

        The cluster lives in a temporary directory of its own: a scenario that kills it outright
        never touches the machine's server. The first start runs initdb. fsync is off: a killed
        process (not a lost machine) loses nothing the operating system already holds, and the
        server's crash recovery on restart is what the scenario exercises.
        """
        if self.postgres is None:
            self.postgres = PrivatePostgres()
        return self.postgres.start(self)

    def start_web(self, *, workers: int = 2) -> Service:
        port = free_port()
        self.web_url = f"http://127.0.0.1:{port}"
        service = self._start(
            "gunicorn",
            [
                str(GUNICORN),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "30",
            ],
        )
        up = f"{self.web_url}/health/"
        wait_until(lambda: _http_up(up), seconds=90, what="gunicorn up", watch=[service])
        return service

    def start_deployed_web(self, *args: str, **extra: str) -> tuple[Service, str]:
        """gunicorn as deployed (config/gunicorn.py: its hooks, its graceful timeout), one worker
        of four threads on a spare port, `args` added to its command line and `extra` to its
        environment; return it with its URL once it answers its liveness check."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        service = self._start(
            "gunicorn",
            [
                str(GUNICORN),
                "-c",
                "python:config.gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
                *args,
            ],
            **extra,
        )
        wait_until(
            lambda: _http_up(f"{url}/health/live"), seconds=90, what="gunicorn up", watch=[service]
        )
        return service, url

    def start_worker(
        self,
        *,
        pool: str = "threads",
        concurrency: int = 8,
        app: str = "config",
        supervised: bool = False,
    ) -> Service:
        """Start a worker; a supervised one is started again whenever it exits on its own, as
        systemd (Restart=always) or Kubernetes would in production."""
        if supervised:
            again = partial(self.start_worker, pool=pool, concurrency=concurrency, app=app)
            service = again()
            self._supervise(service, again)
            return service
        number = sum(s.name == "worker" for s in self.services)
        name = f"fault-{number}-{self.redis_port}@%h"
        return self._start(
            "worker",
            worker_command(
                name=name, pool=pool, concurrency=concurrency, app=app, loglevel=self.log_level
            ),
        )

    def start_beat(self) -> Service:
        return self._start(
            "beat",
            [
                str(CELERY),
                "-A",
                "config",
                "beat",
                "--schedule",
                str(self.tmp_path / "celerybeat-schedule"),
                "--loglevel",
                self.log_level,
            ],
        )

    def supervised(self, place: int) -> Service:
        """The live process of the place-th supervised service (restarts replace it)."""
        return self._supervised[place][0]

    def _supervise(self, service: Service, again: Callable[[], Service]) -> None:
        self._supervised.append((service, again))
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._watch, daemon=True)
            self._supervisor.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for index, (service, again) in enumerate(self._supervised):
                if not service.alive() and not self._stopping.is_set():
                    self.restarts += 1
                    self._supervised[index] = (again(), again)

    def logs(self) -> str:
        return "\n".join(f"--- {s.log.name} ---\n{s.output()[-6000:]}" for s in self.services)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        for service in reversed(self.services):
            if service.name == "rabbitmq":
                service.kill()  # its data go with it: no need to wait for a clean stop
            else:
                service.stop(grace=10)
        if self.postgres is not None:
            self.postgres.remove()
        if self.rabbitmq_node is not None:
            self.rabbitmq_node.remove()
        elif self.vhost is not None:
            self.vhost.delete()


def postgres_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL's server programs, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, listening on a spare loopback port only."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        assert bindir is not None, "PostgreSQL's server programs (initdb, postgres) are missing"
        self.bindir = bindir
        self.port = free_port()
        # initdb and postgres refuse to run as root: as root, run them as the postgres user, in
        # a directory that user owns (pytest's tmp_path is private to root).
        self.as_user: list[str] = []
        self.data = Path(tempfile.mkdtemp(prefix="leadswitch-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
            self.as_user = [
                "setpriv",
                f"--reuid={owner.pw_uid}",
                f"--regid={owner.pw_gid}",
                "--init-groups",
            ]
        subprocess.run(  # noqa: S603 - our own command line
            [
                *self.as_user,
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data / "cluster"),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--no-sync",
                "--encoding",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, stack: Stack) -> Service:
        service = stack._start(
            "postgres",
            [
                *self.as_user,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data / "cluster"),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
        )
        wait_until(
            lambda: _postgres_answers(self.port),
            seconds=60,
            what="private PostgreSQL up",
            watch=[service],
        )
        return service

    def remove(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)


def _postgres_answers(port: int) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=1
        ):
            return True
    except psycopg.OperationalError:
        return False


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


def wait_until(
    condition: Callable[[], bool],
    *,
    seconds: float,
    what: str,
    watch: list[Service] = (),
    logs: Callable[[], str] = lambda: "",
) -> float:
    """Wait for condition (polled every 0.1 s); return how long it took, or fail saying what."""
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic() - started
        for service in watch:
            assert service.alive(), f"{service.name} died:\n{service.output()[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {seconds} s\n{logs()}")
