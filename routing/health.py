"""Contract health: the circuit breakers of routing.breaker, stored and shared by the workers.

A contract whose buyer keeps failing (K consecutive failed pings or posts) or answering slowly
(N consecutive pings over its latency limit) is taken out of routing automatically; after a
cool-down one lead goes to it as a probe, and the probe's answer closes or re-opens the breaker.
Only changes are written: a healthy contract that answers well costs no write at all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from buyers.models import Contract
from notifications import events as notify
from routing.breaker import (
    BreakerConfig,
    BreakerState,
    BreakerStatus,
    Transition,
    allow,
    begin_probe,
    force_close,
    force_open,
    record,
)
from routing.models import ContractHealth, HealthEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    """One answer (or non-answer) of a contract's buyer."""

    contract: Contract
    kind: str  # "ping" or "post"
    ok: bool
    latency_ms: int | None


def breaker_config(contract: Contract) -> BreakerConfig:
    return BreakerConfig(
        failure_threshold=contract.breaker_failures,
        latency_limit_ms=contract.latency_limit_ms,
        slow_threshold=contract.latency_strikes,
        cool_down_s=contract.breaker_cool_down_s,
        max_cool_down_s=max(contract.breaker_max_cool_down_s, contract.breaker_cool_down_s),
    )


def _state(row: ContractHealth | None) -> BreakerState:
    return BreakerState.from_dict(row.state) if row is not None and row.state else BreakerState()


def health_states(contract_ids: Iterable[int]) -> dict[int, ContractHealth]:
    return {h.contract_id: h for h in ContractHealth.objects.filter(contract_id__in=contract_ids)}


# The health rows of some contracts as one JSON value, for a caller's statement to read along
# with its own work (a routing run's claim and settlement), instead of a query of its own.
HEALTH_JSON_SQL = (
    f"(SELECT json_agg(h)::text FROM {ContractHealth._meta.db_table} h "  # noqa: S608 - a name
    "WHERE h.contract_id = ANY(%s))"
)


def health_states_from_json(text: str | None) -> dict[int, ContractHealth]:
    """The rows HEALTH_JSON_SQL read, as health_states returns them."""
    rows = {}
    for item in json.loads(text) if text else []:
        row = ContractHealth(
            id=item["id"],
            contract_id=item["contract_id"],
            status=item["status"],
            reason=item["reason"],
            state=item["state"],
            updated_at=datetime.fromisoformat(item["updated_at"]),
        )
        row._state.adding, row._state.db = False, connection.alias
        rows[row.contract_id] = row
    return rows


def health_admit(
    contracts: Iterable[Contract], *, rows: dict[int, ContractHealth] | None = None
) -> dict[int, str]:
    """Return the contracts (id -> reason) the breakers keep out of this routing run.

    An open breaker whose cool-down is over lets this run through as its probe, claimed with a
    conditional update so that of concurrent runs only one probes. `rows` are the contracts'
    health rows when the caller has just read them.
    """
    contracts = list(contracts)
    if rows is None:
        rows = health_states(c.pk for c in contracts)
    now = time.time()
    refused: dict[int, str] = {}
    for contract in contracts:
        row = rows.get(contract.pk)
        state = _state(row)
        if row is None or state.status == BreakerStatus.CLOSED:
            continue
        config = breaker_config(contract)
        if not allow(state, now, config):
            refused[contract.pk] = f"circuit open: {state.reason}"
            continue
        probing = begin_probe(state, now, config)
        claimed = ContractHealth.objects.filter(pk=row.pk, updated_at=row.updated_at).update(
            status=BreakerStatus.HALF_OPEN, state=probing.as_dict(), updated_at=timezone.now()
        )
        if not claimed:
            refused[contract.pk] = "circuit open: another lead is the probe"
            continue
        HealthEvent.objects.create(
            contract=contract, status=BreakerStatus.HALF_OPEN, reason="probe sent"
        )
    return refused


def _save(contract: Contract, transition: Transition, *, actor: str = "") -> None:
    state = transition.state
    ContractHealth.objects.update_or_create(
        contract=contract,
        defaults={"status": state.status, "reason": state.reason[:255], "state": state.as_dict()},
    )
    if transition.opened or transition.closed:
        HealthEvent.objects.create(
            contract=contract, status=state.status, reason=transition.reason[:255], actor=actor
        )
        logger.warning(
            "contract breaker %s",
            "opened" if transition.opened else "closed",
            extra={"contract_id": contract.pk, "reason": transition.reason},
        )
        # Told once this transaction commits; a failing notifier never fails the caller.
        if transition.closed:
            notify.breaker_closed(contract_id=contract.pk, reason=transition.reason, actor=actor)
        else:
            notify.breaker_opened(
                contract_id=contract.pk,
                reason=transition.reason,
                cool_down_s=state.cool_down_s,
                actor=actor,
            )


def health_record(
    observations: Iterable[Observation], *, rows: dict[int, ContractHealth] | None = None
) -> None:
    """Count the answers of one routing run; write only the breakers they change.

    `rows` are the contracts' health rows when the caller has just read them: they only tell
    which breakers may change, and each change is made again on the locked row.
    """
    observations = list(observations)
    if not observations:
        return
    rows = health_states({o.contract.pk for o in observations}) if rows is None else dict(rows)
    now = time.time()
    for observation in observations:
        contract = observation.contract
        config = breaker_config(contract)
        before = _state(rows.get(contract.pk))
        guess = record(
            before,
            ok=observation.ok,
            latency_ms=observation.latency_ms,
            kind=observation.kind,
            now=now,
            config=config,
        )
        if guess.state == before:
            continue
        with transaction.atomic():
            # Again on the locked row: another run may have counted in the meantime.
            row = ContractHealth.objects.select_for_update().filter(contract=contract).first()
            transition = record(
                _state(row),
                ok=observation.ok,
                latency_ms=observation.latency_ms,
                kind=observation.kind,
                now=now,
                config=config,
            )
            _save(contract, transition)
            rows[contract.pk] = ContractHealth.objects.get(contract=contract)


def health_force(*, contract: Contract, open_: bool, reason: str, actor: str) -> None:
    """Open (with a reason) or close a contract's breaker by hand."""
    with transaction.atomic():
        row = ContractHealth.objects.select_for_update().filter(contract=contract).first()
        state = _state(row)
        now = time.time()
        transition = force_open(state, reason, now) if open_ else force_close(state, now)
        _save(contract, transition, actor=actor)
        if not (transition.opened or transition.closed):
            HealthEvent.objects.create(
                contract=contract,
                status=transition.state.status,
                reason=(reason if open_ else "closed by hand")[:255],
                actor=actor,
            )
