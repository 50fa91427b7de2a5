"""The leads' consumer hashes (leads 0011) are filled for the leads stored before them: a database
taken back to the migration before, given leads by that state's models, and migrated forward
again holds the hashes intake would have stored, batch after batch, and their indexes; a lead
the code before inserts while the backfill runs, with an id below the batches done, is filled
too."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.db import connection

from leads import consumer_hashes
from leads.models import Lead
from tests.leads.factories import SourceFactory, VerticalFactory
from tests.migrating import migrate

BEFORE_THE_HASHES = [("leads", "0010_lead_ping_id")]
LOWEST_ID = uuid.UUID(int=1)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


@pytest.mark.django_db(transaction=True)
def test_migrating_forward_hashes_the_email_and_phone_of_every_earlier_lead(latest, monkeypatch):
    vertical, source = VerticalFactory(), SourceFactory()
    old = migrate(BEFORE_THE_HASHES).apps
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, "leads_lead")
    assert "email_sha256" not in {column.name for column in columns}
    OldLead = old.get_model("leads", "Lead")
    contacts = [
        ("ann@example.com", "+12125550101"),
        ("bob@example.com", ""),
        ("", "+12125550103"),
        ("", ""),  # refused before its fields were read
        ("eve@example.com", "+12125550105"),
    ]
    ids = [
        OldLead.objects.create(
            vertical_id=vertical.pk, source_id=source.pk, status="sold", email=email, phone=phone
        ).pk
        for email, phone in contacts
    ]
    updated = dict(OldLead.objects.values_list("pk", "updated_at"))
    # Several batches; after the first, the code before (which names no hash column) takes a lead
    # whose id sorts below every other.
    monkeypatch.setattr(consumer_hashes, "BATCH_SIZE", 2)
    inserted = []

    def intake_meanwhile(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("UPDATE") and "email_sha256" in sql and not inserted:
            inserted.append(
                OldLead.objects.create(
                    id=LOWEST_ID,
                    vertical_id=vertical.pk,
                    source_id=source.pk,
                    status="sold",
                    email="low@example.com",
                    phone="+12125550199",
                )
            )
        return result

    with connection.execute_wrapper(intake_meanwhile):
        migrate(latest)

    hashed = {
        lead.pk: (lead.email_sha256, lead.phone_sha256, lead.updated_at)
        for lead in Lead.objects.all()
    }
    assert [hashed[pk] for pk in ids] == [
        (sha256(email), sha256(phone), updated[pk])
        for pk, (email, phone) in zip(ids, contacts, strict=True)
    ]
    assert inserted, "the backfill ran no batch"
    assert hashed[LOWEST_ID][:2] == (sha256("low@example.com"), sha256("+12125550199"))
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, "leads_lead")
    assert indexes["lead_email_sha256"]["columns"] == ["email_sha256", "vertical_id", "received_at"]
    assert indexes["lead_phone_sha256"]["columns"] == ["phone_sha256", "vertical_id", "received_at"]
