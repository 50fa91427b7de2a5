"""Idempotent answers kept as bytes by the code before leads 0012 stay replayable after it: the
migration backfills nothing (such records expire within 24 hours), and a replay sends XML and
text answers as they are, and JSON ones after margin privacy (leads.prices)."""

from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import urlencode

import pytest
from django.db import connection

from leads.api.views import Rendered
from leads.models import IdempotencyRecord, Lead, PostingFormat, PostingProfile, Source
from leads.profiles import mask_key
from tests.leads.test_posting_profiles import flat_lead, keyed, send
from tests.migrating import migrate

BEFORE = [("leads", "0011_lead_consumer_hashes")]
AFTER = [("leads", "0012_idempotency_answer_document")]


def kept_as_bytes(model, source: Source, key: str, *, idempotency_key: str, n: int, answer: dict):
    """A record as the code before leads 0012 kept it: the answer's bytes in the source's
    answer format, for the form body of flat_lead(n) sent with `key`."""
    fmt = PostingProfile.objects.get(source=source).answer_format
    rendered = Rendered(200, answer, "application/json", answer_format=fmt)
    body = mask_key(urlencode({**flat_lead(n), "key": key}), key)  # as intake hashes it
    model.objects.create(
        source_id=source.pk,
        key=idempotency_key,
        request_hash=hashlib.sha256(body.encode()).hexdigest(),
        response_status=200,
        response_body=rendered.body,
        response_headers=rendered.headers,
    )
    return rendered


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answer_format", ["json", "xml", "text"])
def test_answers_kept_as_bytes_before_the_migration_are_replayed_after_it(
    client, demo, latest, answer_format
):
    source, key = keyed(demo, PostingFormat.FORM, answer_format=answer_format)
    source.sees_buyer_price = True
    source.save()  # save(), not update(): intake's cached sources are dropped on save
    # Prefer: wait saw no buyer: XML and text write the null amounts as empty values.
    unsold = {"id": str(uuid.uuid4()), "status": "unsold", "payout": None, "buyer_price": None}
    sold = {"id": str(uuid.uuid4()), "status": "sold", "payout": "5.00", "buyer_price": "30.00"}

    old = migrate(BEFORE).apps.get_model("leads", "IdempotencyRecord")
    first_unsold = kept_as_bytes(old, source, key, idempotency_key="u", n=30, answer=unsold)
    first_sold = kept_as_bytes(old, source, key, idempotency_key="s", n=31, answer=sold)
    migrate(AFTER)

    assert set(IdempotencyRecord.objects.values_list("response_document", flat=True)) == {""}
    again = send(client, PostingFormat.FORM, flat_lead(30), key=key, Idempotency_Key="u")
    assert again.status_code == 200, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first_unsold.body
    assert again["Content-Type"] == first_unsold.headers["Content-Type"]

    source.sees_buyer_price = False
    source.save()
    again = send(client, PostingFormat.FORM, flat_lead(31), key=key, Idempotency_Key="s")
    assert again.status_code == 200, again.content
    if answer_format == "json":  # the margin rule applies to what can be read back
        assert json.loads(again.content) == {k: v for k, v in sold.items() if k != "buyer_price"}
    else:
        assert again.content == first_sold.body
    assert again["Content-Type"] == first_sold.headers["Content-Type"]
    assert Lead.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_code_before_the_migration_can_still_keep_an_answer_after_it(demo, latest):
    """A rolling deploy: a worker still running the code before inserts without the new
    columns, and the table's defaults fill them."""
    source, _ = keyed(demo, PostingFormat.FORM)
    migrate(AFTER)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO leads_idempotencyrecord (source_id, key, request_hash, response_status,"
            " response_body, response_headers, created_at) VALUES (%s, 'k', 'h', 200, %s, '{}',"
            " %s)",
            [source.pk, b'{"status":"accepted"}', "2026-01-01 00:00:00+00:00"],
        )
    record = IdempotencyRecord.objects.get(key="k")
    assert (record.response_document, record.answer_format) == ("", "json")
