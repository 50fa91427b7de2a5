"""RabbitMQ for the tests that run on it: a virtual host of the test's own on the machine's server
(created for the test, deleted after it), or a private node of the test's own, started in a
temporary directory on spare loopback ports, that a scenario may kill and start again without
touching the machine's server.

Both are managed with `rabbitmqctl`, which needs root (or the rabbitmq user) to read the Erlang
cookie. Where it cannot run, `unavailable()` says why: the tests skip, unless
REQUIRE_RABBITMQ_TESTS is set (CI), where they fail instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from functools import cache
from pathlib import Path

import pytest

HOST = "127.0.0.1"
PORT = 5672
USER = PASSWORD = "guest"  # RabbitMQ's default user, allowed from the loopback only
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def ctl(*args: str, node: str = "", timeout: float = 60) -> str:
    """Run rabbitmqctl (against `node`, else the machine's server); return what it printed."""
    command = ["rabbitmqctl", "--quiet", *(("-n", node) if node else ()), *args]
    done = subprocess.run(  # noqa: S603 - our own command line
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            # An AMQP server answers a wrong protocol header with its own and closes.
            sock.sendall(b"AMQP\x01\x01\x00\x00")
            return sock.recv(8).startswith(b"AMQP")
    except OSError:
        return False


@cache
def unavailable() -> str:
    """Why the tests cannot use RabbitMQ here, or "" when they can."""
    if not shutil.which("rabbitmqctl"):
        return "RabbitMQ is not installed (Debian's rabbitmq-server)"
    if os.geteuid() != 0:
        return "rabbitmqctl needs root to manage virtual hosts"
    if not _answers(PORT):
        return f"RabbitMQ does not answer on {HOST}:{PORT} (start it: rabbitmq-server -detached)"
    return ""


def require() -> None:
    """Skip the calling test when RabbitMQ cannot be used; fail it instead where it must be."""
    reason = unavailable()
    if reason and os.environ.get("REQUIRE_RABBITMQ_TESTS"):
        pytest.fail(f"RabbitMQ tests are required here, but {reason}")
    if reason:
        pytest.skip(reason)


class Vhost:
    """A virtual host of one test's own on a node, with the guest user allowed in it."""

    def __init__(self, *, node: str = "", port: int = PORT) -> None:
        self.node = node
        self.name = f"leadswitch-test-{uuid.uuid4().hex[:12]}"
        self.url = f"amqp://{USER}:{PASSWORD}@{HOST}:{port}/{self.name}"
        ctl("add_vhost", self.name, node=node)
        ctl("set_permissions", "-p", self.name, USER, ".*", ".*", ".*", node=node)

    def queues(self) -> dict[str, tuple[str, int]]:
        """Each queue's type and number of messages (ready and unacknowledged)."""
        listing = ctl("list_queues", "-p", self.name, "name", "type", "messages", node=self.node)
        found = {}
        for line in listing.splitlines()[1:]:  # after the header
            name, kind, messages = line.split("\t")
            found[name] = (kind, int(messages))
        return found

    def delete(self) -> None:
        ctl("delete_vhost", self.name, node=self.node)


class PrivateNode:
    """A RabbitMQ node in a temporary directory, listening on a spare loopback port only.

    It runs as the rabbitmq user (whose Erlang cookie rabbitmqctl uses) and registers with the
    machine's epmd under a name of its own. Its data outlive a kill: started again, it recovers
    its definitions and its quorum queues' messages, as a restarted server does.
    """

    def __init__(self, port: int, dist_port: int) -> None:
        self.port = port
        self.dist_port = dist_port
        self.name = f"leadswitch-test-{port}@localhost"
        owner = pwd.getpwnam("rabbitmq")
        self.data = Path(tempfile.mkdtemp(prefix="leadswitch-rabbitmq-"))
        config = self.data / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.local = {HOST}:{port}\n")
        (self.data / "enabled_plugins").write_text("[].\n")
        for path in (self.data, config, self.data / "enabled_plugins"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.as_user = [
            "setpriv",
            f"--reuid={owner.pw_uid}",
            f"--regid={owner.pw_gid}",
            "--init-groups",
        ]
        self.env = {
            "HOME": owner.pw_dir,  # its .erlang.cookie, the one rabbitmqctl uses
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.data / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.data / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.data / "log"),
            "RABBITMQ_PID_FILE": str(self.data / "pid"),
        }

    def command(self) -> list[str]:
        return [*self.as_user, str(SERVER)]

    def answers(self) -> bool:
        return _answers(self.port)

    def wait_down(self, seconds: float = 15) -> None:
        """Wait until its Erlang node is gone (epmd forgets the name), so it can start again."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.name.split("@")[0] in _epmd_names():
            time.sleep(0.2)

    def remove(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)


def _epmd_names() -> str:
    command = ["epmd", "-names"]  # from PATH, as rabbitmqctl
    done = subprocess.run(  # noqa: S603 - a fixed command line
        command, capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout
