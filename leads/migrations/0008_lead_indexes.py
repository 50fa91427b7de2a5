"""Drop the indexes of leads_lead that every insert updated and no lookup used.

Only the migration state changes the fields; the database side neither rebuilds the foreign keys
(which AlterField would, re-checking every row under a lock) nor the email, phone and ZIP
indexes: on PostgreSQL those are renamed, the others dropped CONCURRENTLY, so that intake and
routing keep using the table while it runs.
"""

import django.db.models.deletion
from django.db import migrations, models

# Django's names for the db_index=True indexes (the same on PostgreSQL and SQLite); PostgreSQL
# also has a varchar_pattern_ops "_like" twin of each character column's.
KEPT = {
    "lead_email": ("leads_lead_email_93d5b817", "email"),
    "lead_phone": ("leads_lead_phone_894df808", "phone"),
    "lead_zip_code": ("leads_lead_zip_code_17208553", "zip_code"),
}
DROPPED = {
    "leads_lead_status_a2927927": "status",
    "leads_lead_state_02441af8": "state",
    "leads_lead_source_id_a5f74de9": "source_id",
    "leads_lead_vertical_id_a39722cc": "vertical_id",
}
PATTERN = ("email", "phone", "zip_code", "status", "state")
# The "_like" twins (PostgreSQL only; IF EXISTS makes them no-ops elsewhere).
LIKE = [
    f"{name}_like"
    for name, column in [*KEPT.values(), *((n, c) for n, c in DROPPED.items())]
    if column in PATTERN
]


def forwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    statements = []
    for new, (old, column) in KEPT.items():
        if postgres:
            statements.append(f'ALTER INDEX IF EXISTS "{old}" RENAME TO "{new}"')
        else:
            statements.append(f'DROP INDEX IF EXISTS "{old}"')
        statements.append(f'CREATE INDEX IF NOT EXISTS "{new}" ON "leads_lead" ("{column}")')
    drop = "DROP INDEX CONCURRENTLY IF EXISTS" if postgres else "DROP INDEX IF EXISTS"
    statements += [f'{drop} "{name}"' for name in [*LIKE, *DROPPED]]
    for statement in statements:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    create = "CREATE INDEX CONCURRENTLY IF NOT EXISTS" if postgres else "CREATE INDEX IF NOT EXISTS"
    statements = []
    for new, (old, column) in KEPT.items():
        if postgres:
            statements.append(f'ALTER INDEX IF EXISTS "{new}" RENAME TO "{old}"')
        else:
            statements.append(f'DROP INDEX IF EXISTS "{new}"')
        statements.append(f'{create} "{old}" ON "leads_lead" ("{column}")')
    statements += [
        f'{create} "{name}" ON "leads_lead" ("{column}")' for name, column in DROPPED.items()
    ]
    if postgres:
        for old, column in [*KEPT.values(), *((n, c) for n, c in DROPPED.items() if c in PATTERN)]:
            statements.append(
                f'{create} "{old}_like" ON "leads_lead" ("{column}" varchar_pattern_ops)'
            )
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    # DROP and CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("leads", "0007_lead_scoring"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="lead",
                    name="email",
                    field=models.CharField(blank=True, max_length=254),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="phone",
                    field=models.CharField(blank=True, max_length=20),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="leads.source",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="state",
                    field=models.CharField(blank=True, max_length=2),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="status",
                    field=models.CharField(
                        choices=[
                            ("accepted", "Accepted, waiting for routing"),
                            ("routing", "Routing"),
                            ("sold", "Sold"),
                            ("unsold", "Unsold"),
                            ("returned", "Returned"),
                            ("invalid", "Invalid"),
                            ("duplicate", "Duplicate"),
                            ("suppressed", "Suppressed"),
                            ("failed", "Failed"),
                        ],
                        max_length=12,
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="vertical",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="leads",
                        to="leads.vertical",
                    ),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="zip_code",
                    field=models.CharField(blank=True, max_length=5),
                ),
                migrations.AddIndex(
                    model_name="lead",
                    index=models.Index(fields=["email"], name="lead_email"),
                ),
                migrations.AddIndex(
                    model_name="lead",
                    index=models.Index(fields=["phone"], name="lead_phone"),
                ),
                migrations.AddIndex(
                    model_name="lead",
                    index=models.Index(fields=["zip_code"], name="lead_zip_code"),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
