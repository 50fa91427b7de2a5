"""Every vertical's fields as they are become its version 1, and every source is pinned to version
1 of each vertical it posts to: nothing a partner may send changes with the upgrade.

The definitions are written here as leads.schema_versions wrote them when this ran (a migration
keeps its own copy: the app's code may change later).
"""

from decimal import Decimal

from django.db import migrations


def _decimal_text(value):
    return None if value is None else str(Decimal(value).quantize(Decimal("0.01")))


def _snapshot(field):
    return {
        "name": field.name,
        "label": field.label or "",
        "field_type": field.field_type,
        "required": bool(field.required),
        "choices": [str(c) for c in (field.choices or [])],
        "min_value": _decimal_text(field.min_value),
        "max_value": _decimal_text(field.max_value),
        "max_length": field.max_length,
        "in_ping": bool(field.in_ping),
        "is_pii": bool(field.is_pii),
        "help_text": field.help_text or "",
    }


def versions_from_fields(apps, schema_editor):
    Vertical = apps.get_model("leads", "Vertical")
    VerticalField = apps.get_model("leads", "VerticalField")
    SchemaVersion = apps.get_model("leads", "SchemaVersion")
    SchemaPin = apps.get_model("leads", "SchemaPin")
    Source = apps.get_model("leads", "Source")
    versions = {}
    for vertical in Vertical.objects.order_by("pk").iterator():
        if SchemaVersion.objects.filter(vertical=vertical).exists():
            versions[vertical.pk] = SchemaVersion.objects.get(vertical=vertical, number=1)
            continue
        fields = [
            _snapshot(f)
            for f in VerticalField.objects.filter(vertical=vertical).order_by("position", "id")
        ]
        required = sum(1 for f in fields if f["required"])
        versions[vertical.pk] = SchemaVersion.objects.create(
            vertical=vertical,
            number=1,
            fields=fields,
            summary=f"First version: {len(fields)} fields, {required} required (the fields as "
            "they were when versions began).",
        )
    links = Source.verticals.through.objects.order_by("pk")
    pinned = set(SchemaPin.objects.values_list("source_id", "vertical_id"))
    SchemaPin.objects.bulk_create(
        [
            SchemaPin(
                source_id=link.source_id,
                vertical_id=link.vertical_id,
                schema_version=versions[link.vertical_id],
            )
            for link in links.iterator()
            if (link.source_id, link.vertical_id) not in pinned
        ],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0013_schema_versions"),
    ]

    operations = [
        migrations.RunPython(versions_from_fields, migrations.RunPython.noop, elidable=False),
    ]
