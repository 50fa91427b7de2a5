"""The hashed email and phone of every lead, for inbound pings that name a consumer by hash.

The columns are added with the table default '' (on PostgreSQL a constant default rewrites no
row), which the code before them relies on to go on inserting leads; the leads already
stored are filled in batches, each its own short transaction, so that no row stays locked longer
than a batch; then the indexes are built, on PostgreSQL CONCURRENTLY so that intake and routing
keep writing leads while they are built. Leads stored meanwhile by the code before (which
stores no hash) are filled by `manage.py backfill_consumer_hashes`, run once the new code is
deployed.
"""

from django.db import migrations, models

from leads.consumer_hashes import consumer_hashes_backfill

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


def backfill(apps, schema_editor):
    """Hash the email and phone of every lead lacking them, in batches (leads.consumer_hashes)."""
    consumer_hashes_backfill(
        lead_model=apps.get_model("leads", "Lead"), using=schema_editor.connection.alias
    )


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
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AddField(
            model_name="lead",
            name="phone_sha256",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="lead", index=i) for i in INDEXES],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes)],
        ),
    ]
