"""The inbound ping's persistence: the ping and its buyers' attempts as one PostgreSQL statement,
with its ORM twin beside it (as routing/engine/store.py keeps a routing run's writes).

The seller waits for this write: on PostgreSQL it is one round trip, atomic on its own, where
the ORM needs BEGIN, two INSERTs and COMMIT, and it reads the breakers the ping's answers count
towards, which the ORM reads with a query of its own afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from django.db import connection, transaction

from config.rows import insert_values, inserted, one_statement, quoted, stored_fields
from exchange.models import InboundPing, PingAttempt
from routing.engine.store import attempts_insert, attempts_insert_sql
from routing.health import HEALTH_JSON_SQL, health_states_from_json
from routing.models import ContractHealth


def _on_postgres() -> bool:
    return connection.vendor == "postgresql"


@functools.cache
def _ping_table() -> str:
    return quoted(InboundPing._meta.db_table)


def ping_store(
    ping: InboundPing, attempts: Sequence[PingAttempt] = (), *, heard: Iterable[int] = ()
) -> dict[int, ContractHealth] | None:
    """Store a new ping and its attempts, both or neither.

    On PostgreSQL the same statement reads the health rows of the contracts in `heard` (those
    whose buyers answered or failed to), returned for routing.health.health_record to read no
    more; elsewhere None (it reads them itself).
    """
    if not _on_postgres():
        with transaction.atomic():
            ping.save(force_insert=True)
            if attempts:
                attempts_insert(attempts, model=PingAttempt)
        return None
    columns, placeholders, params = insert_values(ping, stored_fields(InboundPing))
    sql = f"WITH stored AS (INSERT INTO {_ping_table()} ({columns}) VALUES ({placeholders}))"  # noqa: S608 - names of the model
    if attempts:
        # The attempts' foreign key is checked at the end of the statement, when the ping of
        # the CTE above is there.
        insert, insert_params = attempts_insert_sql(attempts, model=PingAttempt)
        sql += f", recorded AS ({insert})"
        params += insert_params
    contracts = sorted(set(heard))
    with one_statement(), connection.cursor() as cursor:
        cursor.execute(f"{sql} SELECT {HEALTH_JSON_SQL}", [*params, contracts])
        (health,) = cursor.fetchone()
    inserted(ping, ping.pk)
    return health_states_from_json(health)
