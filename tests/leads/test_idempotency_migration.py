"""Idempotent answers kept before they were stored as documents stay replayable: a database
taken back to the migration before, its records holding the answers' bytes in every answer
format, and migrated forward again, replays each answer byte for byte through the router."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from leads.models import IdempotencyRecord, Lead, PostingFormat
from tests.leads.test_posting_profiles import flat_lead, keyed, send

BEFORE = [("leads", "0011_lead_consumer_hashes")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor.migrate(targets)


@pytest.fixture
def latest() -> Iterator[None]:
    nodes = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield
    migrate(nodes)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answer_format", ["json", "xml", "text"])
def test_answers_kept_as_bytes_are_replayed_byte_for_byte_after_the_migration(
    client, demo, latest, answer_format
):
    _, key = keyed(demo, PostingFormat.FORM, answer_format=answer_format)
    refused_lead = flat_lead(21, zip_code="1234")
    accepted = send(client, PostingFormat.FORM, flat_lead(20), key=key, Idempotency_Key="a")
    refused = send(client, PostingFormat.FORM, refused_lead, key=key, Idempotency_Key="r")
    assert (accepted.status_code, refused.status_code) == (202, 400)

    old = migrate(BEFORE).apps.get_model("leads", "IdempotencyRecord")
    kept = dict(old.objects.values_list("key", "response_body"))
    assert {k: bytes(v) for k, v in kept.items()} == {
        "a": accepted.content,
        "r": refused.content,
    }
    migrate([("leads", "0012_idempotency_answer_document")])

    assert set(IdempotencyRecord.objects.values_list("answer_format", flat=True)) == {answer_format}
    again = send(client, PostingFormat.FORM, flat_lead(20), key=key, Idempotency_Key="a")
    refused_again = send(client, PostingFormat.FORM, refused_lead, key=key, Idempotency_Key="r")
    for first, replay in ((accepted, again), (refused, refused_again)):
        assert replay["Idempotent-Replayed"] == "true"
        assert (replay.status_code, replay.content) == (first.status_code, first.content)
        assert replay["Content-Type"] == first["Content-Type"]
    assert Lead.objects.count() == 2
