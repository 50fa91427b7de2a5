"""Idempotent answers are kept as their document and format, rendered again at each replay.

Metadata only, so that it is quick and the code before goes on running during a deploy: the
new columns have defaults in the table (the code before inserts without them), and
`response_body` stays, nullable (the new code no longer writes it). Nothing is backfilled: a
record kept as bytes is replayed from them (leads.api.views) until it expires, 24 hours on.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0011_lead_consumer_hashes"),
    ]

    operations = [
        migrations.AddField(
            model_name="idempotencyrecord",
            name="response_document",
            field=models.TextField(blank=True, db_default=""),
        ),
        migrations.AddField(
            model_name="idempotencyrecord",
            name="answer_format",
            field=models.CharField(db_default="json", max_length=8),
        ),
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="response_body",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
