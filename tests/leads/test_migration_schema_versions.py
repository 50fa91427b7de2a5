"""Versions begin (leads 0013, 0014): a database taken back to the migration before, given
verticals, fields and sources by that state's models, and migrated forward holds version 1 of each
vertical, its fields as they were, and every source pinned to it."""

from __future__ import annotations

import pytest
from django.db import connection

from leads.models import SchemaPin, SchemaVersion
from tests.migrating import migrate

BEFORE_VERSIONS = [("leads", "0012_idempotency_answer_document")]


@pytest.mark.django_db(transaction=True)
def test_migrating_forward_makes_each_vertical_s_fields_version_1_and_pins_every_source(latest):
    old = migrate(BEFORE_VERSIONS).apps
    assert "leads_schemaversion" not in connection.introspection.table_names()
    Vertical = old.get_model("leads", "Vertical")
    VerticalField = old.get_model("leads", "VerticalField")
    Source = old.get_model("leads", "Source")
    solar = Vertical.objects.create(slug="solar", name="Solar")
    VerticalField.objects.create(
        vertical=solar, name="zip_code", field_type="zip", required=True, position=2
    )
    VerticalField.objects.create(
        vertical=solar,
        name="bill",
        field_type="decimal",
        min_value="10",
        max_value="999.5",
        position=1,
    )
    empty = Vertical.objects.create(slug="empty", name="Empty")
    both = Source.objects.create(name="Both")
    both.verticals.add(solar, empty)
    Source.objects.create(name="None yet")

    migrate()

    first = SchemaVersion.objects.get(vertical__slug="solar")
    assert first.number == 1
    assert first.created_by is None
    assert first.fields == [
        {
            "name": "bill",
            "label": "",
            "field_type": "decimal",
            "required": False,
            "choices": [],
            "min_value": "10.00",
            "max_value": "999.50",
            "max_length": None,
            "in_ping": False,
            "is_pii": False,
            "help_text": "",
        },
        {
            "name": "zip_code",
            "label": "",
            "field_type": "zip",
            "required": True,
            "choices": [],
            "min_value": None,
            "max_value": None,
            "max_length": None,
            "in_ping": False,
            "is_pii": False,
            "help_text": "",
        },
    ]
    assert first.summary.startswith("First version: 2 fields, 1 required")
    assert SchemaVersion.objects.get(vertical__slug="empty").fields == []
    pins = sorted(
        SchemaPin.objects.values_list("source__name", "vertical__slug", "schema_version__number")
    )
    assert pins == [("Both", "empty", 1), ("Both", "solar", 1)]
