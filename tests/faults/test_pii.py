"""A canary consumer through the real stack: its email, phone, names, IP and user agent reach no
log, no Redis key or value, no task payload and nothing Sales sees; `manage.py erase_consumer`
then leaves no copy in any column of any table."""

from __future__ import annotations

import base64
import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from django.urls import reverse

from leads.models import Lead, LeadStatus, Postback, PostbackStatus
from routing.models import Attempt, Auction
from tests.faults import invariants
from tests.faults.conftest import PATIENT
from tests.faults.harness import wait_until
from tests.leads.factories import api_key_for
from tests.staff import staff_user
from tests.workers import BASE_DIR

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]


class Canary:
    """A consumer no other test and no fixture could ever spell."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:12]
        line = int(self.token[:4], 16) % 10000
        self.typed_email = f"Canary.{self.token}@Example.com"
        self.typed_phone = f"(212) 555-{line:04d}"
        self.ip = f"198.51.100.{line % 250 + 3}"
        # The token is in the email, both names and the user agent, in every case and encoding
        # that keeps it whole; the phone is searched in the spellings phones are written in.
        self.spellings = (
            self.token,
            f"212555{line:04d}",
            f"212) 555-{line:04d}",
            f"212-555-{line:04d}",
            f"555-{line:04d}",
            self.ip,
        )

    def submission(self, vertical: str, **fields: str) -> dict:
        return {
            "vertical": vertical,
            "sub_id": "canary",
            "fields": {
                "first_name": f"Canaryfirst{self.token}",
                "last_name": f"Canarylast{self.token}",
                "email": self.typed_email,
                "phone": self.typed_phone,
                "zip_code": "60601",
                "state": "IL",
                **fields,
            },
            "consent": {
                "text": "I agree to be contacted by the buyers named on the page.",
                "timestamp": "2026-05-01T14:03:00Z",
                "ip": self.ip,
                "user_agent": f"CanaryAgent/{self.token}",
            },
        }

    def found_in(self, text: str | bytes) -> list[str]:
        """The canary's spellings in text, each with what surrounds it (for the failure)."""
        if isinstance(text, bytes | memoryview):
            text = bytes(text).decode(errors="replace")
        folded = text.lower()
        found = []
        for spelling in self.spellings:
            at = folded.find(spelling.lower())
            if at >= 0:
                found.append(text[max(0, at - 80) : at + len(spelling) + 40])
        return found


def _unwrapped(blob: bytes) -> Iterator[bytes]:
    """The blob, and the base64 bodies of the Celery messages (kombu JSON) inside it."""
    yield blob
    try:
        document = json.loads(blob)
    except ValueError:
        return
    if isinstance(document, dict) and isinstance(document.get("body"), str):
        try:
            yield base64.b64decode(document["body"])
        except ValueError:
            yield document["body"].encode()


def redis_contents(port: int) -> Iterator[tuple[str, bytes]]:
    """Every key of every database of the scenario's Redis, and each value it holds."""
    info = redis.Redis(port=port).info("keyspace")
    for name in info:  # db0, db1, ...
        client = redis.Redis(port=port, db=int(name[2:]))
        for key in client.scan_iter(count=1000):
            label = f"{name}:{key.decode(errors='replace')}"
            yield label, key
            kind = client.type(key).decode()
            if kind == "string":
                values = [client.get(key) or b""]
            elif kind == "hash":
                values = [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(client.smembers(key))
            elif kind == "zset":
                values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "stream":
                values = [json.dumps(str(entry)).encode() for entry in client.xrange(key)]
            else:
                values = []
            for value in values:
                for blob in _unwrapped(value):
                    yield label, blob


def queued_messages(port: int) -> list[bytes]:
    return redis.Redis(port=port).lrange("celery", 0, -1)


def database_holding(canary: Canary) -> tuple[dict[str, int], int]:
    """Per table, the values of any column that hold the canary; and how many were read."""
    found: dict[str, int] = {}
    read = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the catalogue
            for row in cursor.fetchall():
                for value in row:
                    read += 1
                    if value is None or isinstance(value, int | float):
                        continue
                    text = value if isinstance(value, str | bytes | memoryview) else str(value)
                    if canary.found_in(text):
                        found[table] = found.get(table, 0) + 1
    return found, read


def staff_groups() -> None:
    """Make the staff groups as their data migration does, if a flush took them away.

    A transactional test before this one empties every table; serialized_rollback would put
    them back, but collides with the content types the flush recreates.
    """
    if Group.objects.filter(name="Sales").exists():
        return
    migration = importlib.import_module("reporting.migrations.0002_staff_groups")
    migration.create_groups(MigrationLoader(connection).project_state().apps, None)


def sales_pages(lead: Lead) -> dict[str, str]:
    """What a Sales user sees of the lead and its attempts in the admin."""
    staff_groups()
    client = Client()
    client.force_login(staff_user("Sales", "sam"))
    urls = [
        reverse("admin:leads_lead_changelist"),
        reverse("admin:leads_lead_change", args=[lead.pk]),
        reverse("admin:routing_attempt_changelist"),
        *(reverse("admin:routing_attempt_change", args=[a.pk]) for a in lead.attempts.all()),
        *(reverse("admin:routing_auction_change", args=[a.pk]) for a in lead.auctions.all()),
    ]
    pages = {}
    for url in urls:
        response = client.get(url, secure=True)
        assert response.status_code == 200, (url, response.status_code)
        pages[url] = response.content.decode()
    return pages


def test_a_canary_consumer_leaks_nowhere_and_erasure_leaves_no_copy(stack, market, start_simulator):
    canary = Canary()
    buyer, partner = start_simulator(), start_simulator()
    market.contract(sim=buyer, ping="bid=12", **PATIENT)
    market.source.postback_url = f"{partner.base_url}/post"
    market.source.save()
    key = api_key_for(market.source)
    # The most a production operator would log: every logger of every process.
    stack.log_level = "DEBUG"
    stack.start_web()

    def submit(body: dict, expect: int, **headers: str) -> str:
        response = requests.post(
            f"{stack.web_url}/api/v1/leads/",
            json=body,
            headers={"Authorization": f"Bearer {key}", **headers},
            timeout=30,
        )
        assert response.status_code == expect, response.text
        return response.json()["id"]

    # No worker yet: the routing task waits in the broker, where it can be read.
    lead_id = submit(canary.submission(market.vertical.slug), 202)
    waiting = queued_messages(stack.redis_port)
    assert waiting, "the routing task is not in the broker's queue"
    in_payloads = [s for m in waiting for b in _unwrapped(m) for s in canary.found_in(b)]
    assert lead_id.encode() in b"".join(b for m in waiting for b in _unwrapped(m))
    # The same consumer as an invalid lead (only its raw body names them) and as a duplicate.
    invalid_id = submit(canary.submission(market.vertical.slug, zip_code="6060"), 400)
    duplicate_id = submit(canary.submission(market.vertical.slug), 409, **{"Idempotency-Key": "k1"})

    stack.start_worker(concurrency=4)
    stack.start_beat()
    took = wait_until(
        lambda: Lead.objects.filter(pk=lead_id, status=LeadStatus.SOLD).exists(),
        seconds=60,
        what="the canary lead sold",
        logs=stack.logs,
    )
    wait_until(
        lambda: Postback.objects.filter(lead_id=lead_id, status=PostbackStatus.DELIVERED).exists(),
        seconds=30,
        what="the partner told by postback",
        logs=stack.logs,
    )
    lead = Lead.objects.get(pk=lead_id)
    leads = [lead_id, invalid_id, duplicate_id]

    logs = "\n".join(service.output() for service in stack.services)
    in_logs = canary.found_in(logs)
    redis_values = list(redis_contents(stack.redis_port))
    in_redis = sorted({label for label, blob in redis_values if canary.found_in(blob)})
    pages = sales_pages(lead)
    in_pages = {url: canary.found_in(html) for url, html in pages.items() if canary.found_in(html)}
    before, _ = database_holding(canary)
    result = invariants.check([lead_id], [buyer], label="PII canary")

    erased = subprocess.run(  # noqa: S603 - our own command line
        [
            sys.executable,
            "manage.py",
            "erase_consumer",
            "--email",
            canary.typed_email,
            "--phone",
            canary.typed_phone,
            "--suppress",
        ],
        cwd=BASE_DIR,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    after, values_read = database_holding(canary)

    print(
        f"[PII canary] sold {took:.1f} s after the worker started, {buyer.ledger.requests['post']} "
        f"post(s); canary found in {len(logs):,} bytes of logs of {len(stack.services)} "
        f"processes (DEBUG): {len(in_logs)}; in {len({k for k, _ in redis_values})} Redis keys "
        f"and {len(redis_values)} values: {len(in_redis)}; in {len(waiting)} queued task "
        f"message(s): {len(in_payloads)}; in {len(pages)} admin pages Sales sees: "
        f"{len(in_pages)}. Before erasure it was in "
        f"{sum(before.values())} values of {len(before)} tables ({', '.join(sorted(before))}); "
        f"erase_consumer: {' '.join(erased.stdout.split())} After: {sum(after.values())} of "
        f"{values_read:,} values"
    )
    assert not result.broken
    assert in_logs == [], in_logs
    assert in_payloads == []
    assert in_redis == []
    assert in_pages == {}
    assert {"leads_lead", "routing_attempt"} <= set(before)
    assert erased.returncode == 0, erased.stderr
    assert canary.found_in(erased.stdout + erased.stderr) == []
    assert "3 leads" in erased.stdout
    assert after == {}
    assert Lead.objects.filter(pk__in=leads, erased_at__isnull=False).count() == 3
    assert Lead.objects.get(pk=lead_id).status == LeadStatus.SOLD
    assert Attempt.objects.filter(lead_id=lead_id).exists()
    assert Auction.objects.filter(lead_id=lead_id).exists()
