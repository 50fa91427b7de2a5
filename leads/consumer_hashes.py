"""The consumer hashes of a lead (the SHA-256 of its email and phone), and their backfill.

Migrations import this module (leads 0011): it imports nothing of the app, and the backfill is
given the lead model, so the historical model of a migration serves as well as today's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connections
from django.db.models import Q

BATCH_SIZE = 5000
# A lead lacking a hash: one of its contact details is set and that detail's hash is not.
LACKING = "(email <> '' AND email_sha256 = '') OR (phone <> '' AND phone_sha256 = '')"
# consumer_hash in SQL: '' stays ''.
HASH_SQL = "CASE WHEN {0} = '' THEN '' ELSE encode(sha256(convert_to({0}, 'UTF8')), 'hex') END"


def consumer_hash(value: str) -> str:
    """Return the SHA-256 (lower-case hex) of a normalised email or E.164 phone, as a seller
    hashes it in an inbound ping; '' for no value."""
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def consumer_hashes_backfill(
    *, lead_model: Any, using: str = "default", batch_size: int | None = None
) -> int:
    """Hash the email and phone of every lead lacking them, a batch at a time; return how many.

    Each batch selects afresh the leads still lacking a hash, with no cursor over the (random)
    primary keys: a lead written meanwhile by code that stores no hash is found by a later batch,
    and a second run finds nothing to do. Every set email or phone hashes to a non-empty value,
    so each batch leaves its leads no longer lacking and the loop ends. Run outside a
    transaction, each batch commits on its own and holds its rows' locks only that long.
    """
    batch_size = batch_size or BATCH_SIZE
    connection = connections[using]
    filled = 0
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(lead_model._meta.db_table)
        # One statement per batch, hashing each row as it is when updated: an email erased
        # between a read and a write could not leave its hash behind.
        update = (
            f"UPDATE {table} SET email_sha256 = {HASH_SQL.format('email')},"  # noqa: S608
            f" phone_sha256 = {HASH_SQL.format('phone')}"
            f" WHERE id IN (SELECT id FROM {table} WHERE {LACKING} LIMIT %s)"
        )
        while True:
            with connection.cursor() as cursor:
                cursor.execute(update, [batch_size])
                rows = cursor.rowcount
            if not rows:
                return filled
            filled += rows
    lacking = lead_model.objects.using(using).filter(
        (~Q(email="") & Q(email_sha256="")) | (~Q(phone="") & Q(phone_sha256=""))
    )
    while True:
        batch = list(lacking.values_list("pk", "email", "phone")[:batch_size])
        if not batch:
            return filled
        leads = [
            lead_model(pk=pk, email_sha256=consumer_hash(email), phone_sha256=consumer_hash(phone))
            for pk, email, phone in batch
        ]
        lead_model.objects.using(using).bulk_update(leads, ["email_sha256", "phone_sha256"])
        filled += len(leads)
