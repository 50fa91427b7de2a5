"""The hashed email and phone of every lead, for inbound pings that name a consumer by hash.

The columns are added (on PostgreSQL a constant default rewrites no row), the leads already
stored are filled in batches, each its own short transaction, so that no row stays locked longer
than a batch; then the indexes are built, on PostgreSQL CONCURRENTLY so that intake and routing
keep writing leads while they are built.
"""

import hashlib

from django.db import migrations, models

BATCH_SIZE = 5000
INDEXES = [
    models.Index(
        condition=models.Q(email_sha256__gt=""),
        fields=["email_sha256", "vertical", "received_at"],
        name="lead_email_sha256",
    ),
    models.Index(
        condition=models.Q(phone_sha256__gt=""),
        fields=["phone_sha256", "vertical", "received_at"],
        name="lead_phone_sha256",
    ),
]
# As leads.intake.consumer_hash, in SQL: '' stays ''.
HASH_SQL = "CASE WHEN {0} = '' THEN '' ELSE encode(sha256(convert_to({0}, 'UTF8')), 'hex') END"


def _hash(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def backfill(apps, schema_editor):
    """Hash the email and phone of every lead that has one, a batch at a time by primary key."""
    Lead = apps.get_model("leads", "Lead")
    connection = schema_editor.connection
    postgres = connection.vendor == "postgresql"
    table = connection.ops.quote_name(Lead._meta.db_table)
    last = None
    while True:
        rows = Lead.objects.using(connection.alias).exclude(email="", phone="").order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        batch = list(rows.values_list("pk", "email", "phone")[:BATCH_SIZE])
        if not batch:
            return
        last = batch[-1][0]
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET email_sha256 = {HASH_SQL.format('email')}, "  # noqa: S608
                    f"phone_sha256 = {HASH_SQL.format('phone')} WHERE id = ANY(%s)",
                    [[pk for pk, _, _ in batch]],
                )
            continue
        leads = [
            Lead(pk=pk, email_sha256=_hash(email), phone_sha256=_hash(phone))
            for pk, email, phone in batch
        ]
        Lead.objects.using(connection.alias).bulk_update(leads, ["email_sha256", "phone_sha256"])


def create_indexes(apps, schema_editor):
    Lead = apps.get_model("leads", "Lead")
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    for index in INDEXES:
        schema_editor.add_index(Lead, index, **concurrently)


def drop_indexes(apps, schema_editor):
    Lead = apps.get_model("leads", "Lead")
    concurrently = {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}
    for index in INDEXES:
        schema_editor.remove_index(Lead, index, **concurrently)


class Migration(migrations.Migration):
    # Each batch of the backfill commits on its own; CREATE INDEX CONCURRENTLY cannot run inside
    # a transaction.
    atomic = False

    dependencies = [
        ("leads", "0010_lead_ping_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="lead",
            name="email_sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name="lead",
            name="phone_sha256",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="lead", index=i) for i in INDEXES],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes)],
        ),
    ]
