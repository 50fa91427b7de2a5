"""Nodes as deployed: readiness through gunicorn with its dependencies up and down, a web process
draining on SIGTERM, a Celery worker's warm shutdown mid-task, and the Procfile's processes each
started and stopped with SIGTERM (README "Production layout")."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from leads.models import Lead, LeadStatus
from routing.models import Attempt, Sale
from tests.deploy import procfile
from tests.faults.conftest import PATIENT, submission
from tests.faults.harness import GUNICORN, Service, free_port, wait_until
from tests.leads.factories import api_key_for
from tests.workers import needs_broker, routing_queue, start_worker  # noqa: F401

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
]

SECRET = "hunter2-never-shown"


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def ready(url: str) -> requests.Response:
    return requests.get(f"{url}/health/ready", timeout=10)


def test_readiness_through_gunicorn_names_each_dependency_down_and_never_a_credential(stack):
    # Nothing listens on these ports: connections are refused at once, by the kernel.
    database_port, broker_port, cache_port = free_port(), free_port(), free_port()
    configurations = {
        "up": {},
        "database down": {
            "DATABASE_URL": f"postgres://leadswitch:{SECRET}@127.0.0.1:{database_port}/leadswitch"
        },
        "broker and cache down": {
            "CELERY_BROKER_URL": f"redis://:{SECRET}@127.0.0.1:{broker_port}/0",
            "CACHE_URL": f"redis://:{SECRET}@127.0.0.1:{cache_port}/1",
        },
    }
    with ThreadPoolExecutor(len(configurations)) as pool:
        started = dict(
            zip(
                configurations,
                pool.map(lambda env: stack.start_deployed_web(**env), configurations.values()),
                strict=True,
            )
        )
    answers = {name: ready(url) for name, (_, url) in started.items()}

    up = answers["up"]
    assert (up.status_code, up.json()["status"]) == (200, "ready"), up.text
    assert {name: check["status"] for name, check in up.json()["checks"].items()} == {
        "database": "ok",
        "migrations": "ok",
        "broker": "ok",
        "cache": "ok",
        "replica": "skipped",
    }
    for name, failed, statuses in (
        ("database down", ["database"], {"migrations": "skipped", "broker": "ok", "cache": "ok"}),
        ("broker and cache down", ["broker", "cache"], {"database": "ok", "migrations": "ok"}),
    ):
        answer = answers[name]
        assert answer.status_code == 503, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert (answer.json()["type"], answer.json()["failed"]) == (
            "/api/problems/not-ready",
            failed,
        )
        checks = answer.json()["checks"]
        assert {check: checks[check]["status"] for check in statuses} == statuses
        for check in failed:
            assert checks[check]["ms"] < 2000, checks  # refused, not waited for
    for port in (database_port, broker_port, cache_port):
        for answer in answers.values():
            assert SECRET not in answer.text
            assert str(port) not in answer.text
    # Nor in the processes' logs, which do say what failed.
    for service, _ in started.values():
        assert SECRET not in service.output()
    assert "readiness check database failed" in started["database down"][0].output()


def test_a_stopping_web_process_drains_then_refuses_new_connections_and_finishes_its_request(
    stack, market
):
    drain = 2.0
    web, url = stack.start_deployed_web(WEB_DRAIN_SECONDS=str(drain))
    key = api_key_for(market.source)

    def slow_request() -> requests.Response:
        # No worker runs: the request holds its thread for the whole wait, then answers 202.
        return requests.post(
            f"{url}/api/v1/leads/",
            json=submission(1, vertical=market.vertical.slug),
            headers={"Authorization": f"Bearer {key}", "Prefer": "wait=6"},
            timeout=60,
        )

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(slow_request)
        wait_until(
            lambda: Lead.objects.filter(source=market.source).exists(),
            seconds=20,
            what="the slow request in flight",
            watch=[web],
        )
        web.process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        # Draining (once gunicorn has passed the signal on to its worker): new connections are
        # still served, and told that this process is not ready.
        wait_until(lambda: ready(url).status_code == 503, seconds=drain, what="not ready")
        assert ready(url).json()["failed"] == ["shutdown"]
        assert requests.get(f"{url}/health/live", timeout=5).status_code == 200
        wait_until(lambda: refused(url), seconds=drain + 5, what="connections refused", watch=[web])
        refused_after = time.monotonic() - stopped
        assert not in_flight.done()  # refused while the request is still being answered
        answer = in_flight.result(timeout=60)
    assert answer.status_code == 202, answer.text
    assert web.process.wait(timeout=30) == 0
    print(f"[web SIGTERM] refused new connections {refused_after:.1f} s after (drain {drain} s)")
    assert refused_after >= drain


@needs_broker
def test_a_worker_stopped_mid_task_finishes_it_and_records_its_outcome_once(
    client,
    market,
    start_simulator,
    start_worker,  # noqa: F811 - the imported fixture
    routing_queue,  # noqa: F811
):
    buyer = start_simulator()
    contract = market.contract(sim=buyer, ping="bid=20", post="delay_ms=2000", **PATIENT)
    response = client.post(
        "/api/v1/leads/",
        data=submission(2, vertical=market.vertical.slug),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api_key_for(market.source)}",
        secure=True,
    )
    assert response.status_code == 202, response.content
    lead_id = response.json()["id"]
    worker = start_worker()
    wait_until(
        lambda: buyer.ledger.requests["post"] == 1, seconds=60, what="the post sent", watch=[worker]
    )
    worker.process.send_signal(signal.SIGTERM)  # warm shutdown: the post is still being answered

    assert worker.process.wait(timeout=30) == 0
    assert Lead.objects.get(pk=lead_id).status == LeadStatus.SOLD
    assert list(Sale.objects.filter(lead_id=lead_id).values_list("contract_id", flat=True)) == [
        contract.pk
    ]
    assert Attempt.objects.filter(lead_id=lead_id, kind="post").count() == 1
    assert buyer.ledger.requests["post"] == 1
    # Acknowledged: nothing is left on the broker for another worker to run again.
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    assert broker.llen(routing_queue) == 0
    unacked = [json.loads(payload) for payload in broker.hvals("unacked")]
    assert not [message for message in unacked if message[2] == routing_queue]


def test_each_procfile_process_starts_then_stops_cleanly_on_sigterm(stack, tmp_path):
    entries = procfile()
    port = free_port()
    env = stack.env(
        PATH=f"{GUNICORN.parent}:{os.environ['PATH']}",  # the virtualenv's programs first
        PORT=str(port),
        LOG_LEVEL="INFO",
        BEAT_SCHEDULE_FILE=str(tmp_path / "celerybeat-schedule"),
    )
    # As a runner runs them: each line through the shell, from the checkout. The test database
    # is migrated already, so the release step (a no-op here) runs beside the others.
    services = {
        name: Service(name, ["/bin/sh", "-c", f"exec {line}"], env, tmp_path / f"{name}.log")
        for name, line in entries.items()
    }
    try:
        assert services["release"].process.wait(timeout=120) == 0, services["release"].output()
        running = {name: services[name] for name in ("web", "worker", "beat")}
        # gunicorn binds every address on PORT, as a PaaS and the systemd unit want it.
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: not refused(url) and ready(url).status_code == 200,
            seconds=60,
            what="web ready",
            watch=list(running.values()),
        )
        for name, line in (("worker", " ready."), ("beat", "beat: Starting")):
            wait_until(
                lambda line=line, name=name: line in running[name].output(),
                seconds=60,
                what=f"{name} started",
                watch=list(running.values()),
            )
        took = {}
        for name, service in running.items():
            started = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            code = service.process.wait(timeout=30)
            took[name] = time.monotonic() - started
            assert code == 0, f"{name} exited {code}:\n{service.output()[-3000:]}"
        print(
            "[Procfile SIGTERM] " + ", ".join(f"{n} stopped in {s:.1f} s" for n, s in took.items())
        )
    finally:
        for service in services.values():
            service.stop(grace=5)
