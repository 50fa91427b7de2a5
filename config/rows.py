"""Rows written and read by hand-built SQL that still goes through the models' own fields.

Routing does a few writes per lead, each of which the ORM would spread over several round trips
(BEGIN, the statements, COMMIT) and build at a cost of a few hundred microseconds each. These
helpers let one statement do the work while every value is prepared as the ORM would prepare it
(`get_db_prep_save`) and every value read is converted as the ORM would convert it
(`from_db_value`). Only column and table names taken from the models go into the SQL text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import connection, models, transaction

# PostgreSQL's text refuses NUL, and UTF-8 cannot carry a lone surrogate (which json.loads
# makes of a buyer's "\ud800").
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """Text PostgreSQL can store, of the same length: NUL and lone surrogates become U+FFFD."""
    return _UNSTORABLE_RE.sub("\ufffd", text)


def quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def stored_fields(model: type[models.Model]) -> list[models.Field]:
    """The columns an INSERT fills: every concrete field but an auto primary key and generated
    fields. A field with a database default is refused: the INSERT would override it."""
    fields = [
        f
        for f in model._meta.concrete_fields
        if not (f.primary_key and isinstance(f, models.AutoField))
        and not getattr(f, "generated", False)
    ]
    for f in fields:
        if f.db_default is not models.NOT_PROVIDED:
            raise ValueError(f"{f} has a database default, which these INSERTs would override")
    return fields


def insert_values(
    instance: models.Model, fields: Sequence[models.Field]
) -> tuple[str, str, list[Any]]:
    """Return the column list, the placeholders and the parameters that insert `instance`.

    Each value is what the ORM's INSERT would send: `pre_save` (auto_now and friends), then
    `get_db_prep_save`.
    """
    columns = ", ".join(quoted(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    params = [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]
    return columns, placeholders, params


def inserted(instance: models.Model, pk: Any) -> models.Model:
    """Mark an instance as stored under `pk`, as Model.save() would have."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def select_list(model: type[models.Model], alias: str) -> str:
    """`alias`.column for every concrete field of the model, in model order (for `from_row`)."""
    return ", ".join(f"{alias}.{quoted(f.column)}" for f in model._meta.concrete_fields)


def from_row(model: type[models.Model], values: Sequence[Any]) -> models.Model:
    """Build an instance from a row in `select_list` order, converting values as the ORM does."""
    converted = [
        _converted(value, field, converters) if converters and value is not None else value
        for value, (field, converters) in zip(
            values, _converters(model, connection.vendor), strict=True
        )
    ]
    return model.from_db(
        connection.alias, [f.attname for f in model._meta.concrete_fields], converted
    )


def _converted(value: Any, field: models.Field, converters: list[Any]) -> Any:
    for converter in converters:
        value = converter(value, field, connection)
    return value


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[models.Field, list[Any]]]:
    # Converters are the field's own (from_db_value) and the backend's for its type; neither
    # depends on which connection of the backend (`vendor`) asks.
    return [
        (
            field,
            connection.ops.get_db_converters(field.get_col(model._meta.db_table))
            + field.get_db_converters(connection),
        )
        for field in model._meta.concrete_fields
    ]


@contextmanager
def one_statement() -> Iterator[None]:
    """Run a statement that is atomic on its own: bare in autocommit (no BEGIN or COMMIT to pay
    for), and under a savepoint inside a caller's transaction, so that a failed statement (a
    unique constraint, say) leaves the caller's transaction usable, as the ORM's atomic would."""
    if connection.get_autocommit():
        yield
        return
    with transaction.atomic():
        yield


def json_rows(instances: Iterable[models.Model], fields: Sequence[models.Field]) -> str:
    """Instances as a JSON array of {column: value} objects, for `jsonb_populate_recordset`.

    Values are the fields' Python values after `pre_save`; PostgreSQL reads each with its
    column type's own input, so a date, a number or a UUID goes in as text. They skip
    `get_db_prep_save`: only for models of plain fields (no encrypted field, no JSONField with
    an encoder of its own), which `json_ready_fields` checks.
    """
    rows = [{f.column: f.pre_save(instance, add=True) for f in fields} for instance in instances]
    return json.dumps(rows, default=_json_value, ensure_ascii=False)


def json_ready_fields(fields: Sequence[models.Field]) -> Sequence[models.Field]:
    """Return the fields if json_rows stores each as the ORM would, else raise ValueError:
    Django's own fields only (a custom one, such as an encrypted field, prepares its values
    itself), and no JSONField with an encoder of its own."""
    for f in fields:
        custom = not type(f).__module__.startswith("django.db.models.")
        if custom or (isinstance(f, models.JSONField) and f.encoder is not None):
            raise ValueError(f"{f} prepares its values itself: json_rows would skip that")
    return fields


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value")
