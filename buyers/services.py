"""Writes for buyers and contracts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, F, QuerySet, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from simple_history.models import HistoricalRecords

from buyers import store
from buyers.caps import CapLimitSpec, CapUsage, period_bounds
from buyers.models import (
    BoughtScope,
    Buyer,
    BuyerCap,
    CapCounter,
    CapReservation,
    Contract,
    ContractCap,
    ContractStatus,
    ReservationStatus,
    TerritoryKind,
    TerritoryRule,
)
from buyers.readiness import ContractCannotDeliver, contract_delivery_problems
from buyers.selectors import (
    BUYER_SCOPE,
    CONTRACT_PARTS,
    cap_counter_key,
    cap_counter_key_of,
    cap_counters_filter,
    cap_limit_spec,
    consumer_purchases,
    fields_unknown_to,
    mapped_fields,
)
from buyers.versions import (
    ADDED,
    REMOVED,
    ContractRevertRefused,
    ContractVersion,
    contract_version,
    save_order,
)
from leads.models import Lead, Vertical
from notifications import events as notify


def _history_user():
    """The user of the request being served (HistoryRequestMiddleware), if any."""
    request = getattr(HistoricalRecords.context, "request", None)
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _record_history(model, pks, *, reason: str) -> None:
    """Write history for rows changed by a conditional UPDATE, which saves no history itself."""
    records = model.history.bulk_history_create(
        list(model.objects.filter(pk__in=pks)),
        update=True,
        default_user=_history_user(),
        default_change_reason=reason[:100],
    )
    _record_m2m_history(model, records)


def _record_m2m_history(model, records) -> None:
    """Give history rows written in bulk their many-to-many rows (a contract's sources), as a
    save's have: bulk_history_create writes none, and a revert to such a version would empty
    the contract's source list."""
    history = model.history.model
    for m2m_field in history._history_m2m_fields:
        through = m2m_field.remote_field.through
        owner = f"{m2m_field.m2m_field_name()}_id"
        rows = defaultdict(list)
        listed = through.objects.filter(**{f"{owner}__in": [r.id for r in records]})
        for row in listed.values(*(f.attname for f in through._meta.fields)):
            rows[row[owner]].append(row)
        m2m_history = getattr(history, m2m_field.name).model
        m2m_history.objects.bulk_create(
            [m2m_history(history=record, **row) for record in records for row in rows[record.id]]
        )


def contract_pause(*, contract: Contract, reason: str) -> bool:
    """Pause an active contract with a reason; return False when it was already paused."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a paused contract needs a reason")
    now = timezone.now()
    updated = Contract.objects.filter(pk=contract.pk, status=ContractStatus.ACTIVE).update(
        status=ContractStatus.PAUSED, paused_reason=reason[:255], paused_at=now, updated_at=now
    )
    if updated:
        contract.status, contract.paused_reason, contract.paused_at = (
            ContractStatus.PAUSED,
            reason[:255],
            now,
        )
        _record_history(Contract, [contract.pk], reason=f"paused: {reason}")
    return bool(updated)


def contract_resume(*, contract: Contract, reason: str = "") -> bool:
    """Resume a paused contract (saying why, in its history); return False when not paused.

    Raise ContractCannotDeliver, and leave it paused, when it could not deliver a lead.
    """
    if contract.status == ContractStatus.PAUSED:
        problems = contract_delivery_problems(contract)
        if problems:
            raise ContractCannotDeliver(problems)
    updated = Contract.objects.filter(pk=contract.pk, status=ContractStatus.PAUSED).update(
        status=ContractStatus.ACTIVE, paused_reason="", paused_at=None, updated_at=timezone.now()
    )
    if updated:
        contract.status, contract.paused_reason, contract.paused_at = (
            ContractStatus.ACTIVE,
            "",
            None,
        )
        said = f"resumed: {reason.strip()}" if reason.strip() else "resumed"
        _record_history(Contract, [contract.pk], reason=said)
    return bool(updated)


def contract_touch(*, contract_id: int) -> None:
    """Mark a contract changed (a part of it was edited), so eligibility recompiles its rules."""
    Contract.objects.filter(pk=contract_id).update(updated_at=timezone.now())


def buyer_touch(*, buyer_id: int) -> None:
    """Mark a buyer changed (one of its caps was edited), so eligibility recompiles its rules."""
    Buyer.objects.filter(pk=buyer_id).update(updated_at=timezone.now())


def buyers_set_active(*, buyers: QuerySet[Buyer], active: bool) -> int:
    """Activate or deactivate buyers; return how many actually changed."""
    pks = list(buyers.filter(active=not active).values_list("pk", flat=True))
    changed = Buyer.objects.filter(pk__in=pks, active=not active).update(
        active=active, updated_at=timezone.now()
    )
    if changed:
        _record_history(Buyer, pks, reason="activated" if active else "deactivated")
    return changed


@dataclass(frozen=True)
class CloneResult:
    contract: Contract
    warnings: list[str]


def contract_clone(
    *,
    contract: Contract,
    name: str,
    buyer: Buyer | None = None,
    vertical: Vertical | None = None,
    actor: str = "",
) -> CloneResult:
    """Copy a contract and every part of it (caps, schedule, closed dates, territory, criteria,
    endpoints, mappings, response rules, sources), for the same or another buyer or vertical.

    The copy starts paused, so that nothing is routed to it before ops have read it over. An
    endpoint's credentials belong to its buyer: a copy for another buyer gets none, and a copy
    for another vertical is told which of its mappings and criteria name fields it lacks.
    Raise ValueError when the buyer already has a contract of that name in that vertical.
    """
    buyer = buyer or contract.buyer
    vertical = vertical or contract.vertical
    name = name.strip()
    if not name:
        raise ValueError("The copy needs a name.")
    if Contract.objects.filter(buyer=buyer, vertical=vertical, name=name).exists():
        raise ValueError(f"{buyer} already has a contract named {name!r} in {vertical}.")
    warnings: list[str] = []
    now = timezone.now()
    with transaction.atomic():
        original = Contract.objects.get(pk=contract.pk)
        copy = Contract.objects.get(pk=contract.pk)
        copy.pk = copy.id = None
        copy._state.adding = True
        copy.buyer, copy.vertical, copy.name = buyer, vertical, name
        copy.status = ContractStatus.PAUSED
        made_by = f" made by {actor}" if actor else ""
        copy.paused_reason = f"copy of contract {original.pk}{made_by}: check it, resume it"[:255]
        copy.paused_at = now
        copy.save()
        copy.sources.set(original.sources.all())
        for relation in CONTRACT_PARTS:
            rows = list(getattr(original, relation).all())
            if relation == "secrets" and buyer.pk != original.buyer_id and rows:
                # A buyer's credentials are its own: another buyer's copy names what it needs.
                warnings.append(
                    f"The secrets {', '.join(r.name for r in rows)} were not copied to another "
                    "buyer: add them before resuming."
                )
                continue
            for row in rows:
                row.pk = row.id = None
                row._state.adding = True
                row.contract = copy
                if relation == "endpoints" and buyer.pk != original.buyer_id and row.auth_secret:
                    row.auth_secret = ""
                    warnings.append(
                        f"The {row.get_kind_display().lower()} endpoint's credentials were not "
                        "copied to another buyer: enter them before resuming."
                    )
            if rows:
                model = type(rows[0])
                model.objects.bulk_create(rows)
                # bulk_create writes no history: without it, a revert could not tell the parts.
                model.history.bulk_history_create(
                    rows,
                    default_user=_history_user(),
                    default_change_reason=f"copy of contract {original.pk}",
                )
        if vertical.pk != original.vertical_id:
            # Criteria may name enrichments (county, time zone) that no schema lists: only warn.
            unknown = fields_unknown_to(
                vertical,
                mapped_fields(copy.mappings.values_list("source_field", flat=True))
                | set(copy.criteria.values_list("field", flat=True)),
            )
            if unknown:
                warnings.append(
                    f"{vertical} has no field {', '.join(unknown)}: check the mappings and "
                    "criteria that use them."
                )
        cap_counters_seed(caps=copy.caps.select_related("contract__buyer"))
    return CloneResult(contract=copy, warnings=warnings)


def contract_revert(
    *,
    contract: Contract,
    to: datetime | int,
    actor: AbstractBaseUser | None,
    reason: str,
    shown: str | None = None,
) -> ContractVersion:
    """Make the contract and every part of it what they were at `to` (a moment, or the history
    id of one of the contract's versions), recording `actor` and `reason` in their history.

    Parts added since are deleted, parts deleted since are created again, and the others are
    put back as they were; status, cap counters and health are not configuration and stay
    (buyers.versions.KEPT_FIELDS). Everything is validated as an admin save is, and the
    contract's updated_at moves, so routing recompiles its rules at once. Raise
    ContractRevertRefused, changing nothing, when that state is not valid now, or when `shown`
    (the digest of the changes a confirmation page listed) is no longer what it would change;
    return the version, unchanged when there was nothing to revert.
    """
    reason = reason.strip()
    if not reason:
        raise ValueError("a revert needs a reason")
    try:
        with transaction.atomic():
            # Against another revert or an admin save of it; NO KEY: routing's reservations,
            # whose rows name the contract, go on meanwhile.
            locked = Contract.objects.select_for_update(no_key=True).get(pk=contract.pk)
            version = contract_version(contract=locked, to=to)
            if shown is not None and shown != version.digest:
                raise ContractRevertRefused(
                    [
                        "The contract changed after the list of changes was shown: check the "
                        "list as it is now and confirm again."
                    ]
                )
            if version.problems:
                raise ContractRevertRefused(version.problems)
            if not version.unchanged:
                said = f"reverted to {version.moment:%Y-%m-%d %H:%M:%S} UTC: {reason}"[:100]
                _revert_apply(version, actor=actor, reason=said)
    except IntegrityError as exc:
        raise ContractRevertRefused(
            [f"The parts as they were then conflict with each other now: {exc}"]
        ) from exc
    contract.refresh_from_db()
    return version


def _revert_apply(version: ContractVersion, *, actor: AbstractBaseUser | None, reason: str) -> None:
    def said(row: Any) -> Any:
        row._history_user, row._change_reason = actor, reason
        return row

    target = said(version.contract)
    target.save()
    if version.source_ids is not None:
        target.sources.set(version.source_ids)
    # Removed first: a part put back may take the natural key (a cap's period) of one removed;
    # then each part after those that free the key it takes (save_order).
    for part in version.part_changes:
        if part.action == REMOVED:
            said(part.current).delete()
    ordered = save_order(version.part_changes)
    for part, again in ordered:
        if again:
            said(part.current).delete()
    for part, again in ordered:
        said(part.target).save(force_insert=again or part.action == ADDED)
    cap_counters_seed(caps=target.caps.select_related("contract__buyer"))


def contract_zips_set(
    *, contract: Contract, mode: str, zips: Iterable[str], replace: bool
) -> TerritoryRule:
    """Give the contract a ZIP-list territory rule (include or exclude) with these ZIP codes.

    With `replace`, the contract's ZIP list of that mode holds exactly these; otherwise they are
    added to it. Values must be 5-digit ZIP codes already (buyers.forms reads files and pastes).
    """
    values = list(dict.fromkeys(zips))
    if not values:
        raise ValueError("No ZIP codes given.")
    with transaction.atomic():
        # The contract first, then its part, as an admin save and a revert lock them: the other
        # order deadlocks with a revert that changes this rule.
        contract_touch(contract_id=contract.pk)
        rule = (
            TerritoryRule.objects.select_for_update()
            .filter(contract=contract, mode=mode, kind=TerritoryKind.ZIPS)
            .order_by("pk")
            .first()
        )
        if rule is None:
            rule = TerritoryRule(contract=contract, mode=mode, kind=TerritoryKind.ZIPS)
        elif not replace:
            values = list(dict.fromkeys([*rule.value_list, *values]))
        rule.values = "\n".join(values)
        rule.full_clean()
        rule.save()
    return rule


# --- Caps -------------------------------------------------------------------------------------

LIVE_RESERVATION_STATUSES = (ReservationStatus.HELD, ReservationStatus.COMMITTED)


@dataclass(frozen=True)
class CapRefusal:
    """The contract may not take this lead: a full cap (with its usage then) or a repeat buy."""

    reason: str
    usage: CapUsage | None = None


class _CapReachedError(Exception):
    def __init__(self, usage: CapUsage) -> None:
        super().__init__(usage.describe())
        self.usage = usage


class _RefusedError(Exception):
    """Rolls back a reservation its contract's already-bought rule refuses; says why."""


def cap_reserve(
    *, lead: Lead, contract: Contract, price: Decimal, now: datetime | None = None
) -> CapReservation | CapRefusal:
    """Take room under every cap of the contract and of its buyer for one lead at `price`.

    Call it once a contract is chosen and before posting; then `cap_commit` when the buyer
    accepts, `cap_release` when the post fails or is rejected. Return the held reservation, or
    the refusal of the first full cap (nothing is charged then). Calling it again for the same
    lead and contract returns the live reservation instead of charging twice, so a re-delivered
    routing task is harmless. A contract without caps still gets a reservation, without counters.
    """
    if price < 0:
        raise ValueError("a price cannot be negative")
    now = now or timezone.now()
    specs = None
    repeat_rule = contract.refuse_bought_within_days and (lead.email or lead.phone)
    if not repeat_rule:
        try:
            reservation, specs = store.reservation_uncapped(
                lead=lead, contract=contract, price=price, now=now
            )
        except IntegrityError:
            # As below: the lead already holds room with this contract.
            existing = _live_reservation(lead=lead, contract=contract)
            if existing is None:
                raise
            return existing
        if reservation is not None:
            return reservation
    try:
        with transaction.atomic():
            # The row first: when the lead already holds room with this contract (an earlier
            # call, or a concurrent one), the partial unique constraint refuses it before anything
            # is charged, and no routing run pays a query to look for a reservation first.
            reservation = CapReservation.objects.create(
                lead=lead, contract=contract, price=price, created_at=now
            )
            repeat = _repeat_purchase(lead=lead, contract=contract, now=now)
            if repeat:
                raise _RefusedError(repeat)
            counters = _cap_counters_charge(
                contract=contract,
                price=price,
                now=now,
                reservation_id=reservation.pk,
                specs=specs,
            )
            if counters:
                reservation.counters.add(*counters)
    except _RefusedError as refused:
        return CapRefusal(reason=str(refused))
    except _CapReachedError as reached:
        return CapRefusal(reason=reached.usage.describe(), usage=reached.usage)
    except IntegrityError:
        # The lead already holds room with this contract (it may be a concurrent call that won
        # the partial unique constraint): hand back that reservation, nothing charged twice.
        existing = _live_reservation(lead=lead, contract=contract)
        if existing is None:
            raise
        return existing
    return reservation


def cap_release(*, reservation: CapReservation) -> bool:
    """Give a held reservation's room back; return False when it was not held."""
    with transaction.atomic():
        released = CapReservation.objects.filter(
            pk=reservation.pk, status=ReservationStatus.HELD
        ).update(status=ReservationStatus.RELEASED, updated_at=timezone.now())
        if not released:
            return False
        # Held reservations never change price, but the caller's copy may be stale.
        price = CapReservation.objects.values_list("price", flat=True).get(pk=reservation.pk)
        _cap_counters_adjust(reservation_id=reservation.pk, leads=-1, spend=-price)
    reservation.status = ReservationStatus.RELEASED
    return True


def cap_commit(*, reservation: CapReservation, price: Decimal | None = None) -> bool:
    """Turn a held reservation into a sale's charge; return False when it was not held.

    When the buyer accepted at another price than the one reserved, the counters' spend moves by
    the difference. That difference is charged without checking the budget (the buyer has
    already bought the lead at that price), so a budget may end up exceeded by it; the next
    reservation then finds no room.
    """
    if price is not None and price < 0:
        raise ValueError("a price cannot be negative")
    # No savepoint: a sale commits its charge inside its own transaction, and a savepoint is two
    # more round trips to the database on every sale.
    with transaction.atomic(savepoint=False):
        held = CapReservation.objects.filter(pk=reservation.pk, status=ReservationStatus.HELD)
        if price is None or price == reservation.price:
            # A held reservation's price never changes, so the caller's copy is the reserved one.
            if not held.update(status=ReservationStatus.COMMITTED, updated_at=timezone.now()):
                return False
            reservation.status = ReservationStatus.COMMITTED
            return True
        reserved = held.values_list("price", flat=True).first()
        if reserved is None:
            return False
        changes: dict[str, object] = {"status": ReservationStatus.COMMITTED}
        if price is not None and price != reserved:
            changes["price"] = price
        if not held.update(updated_at=timezone.now(), **changes):
            return False
        if "price" in changes:
            _cap_counters_adjust(reservation_id=reservation.pk, leads=0, spend=price - reserved)
    reservation.status = ReservationStatus.COMMITTED
    reservation.price = price if price is not None else reserved
    return True


def _repeat_purchase(*, lead: Lead, contract: Contract, now: datetime) -> str:
    """Return why the contract's already-bought rule refuses this consumer, or ''.

    Eligibility checked this before the auction, but two leads of one consumer may be routed at
    once: on PostgreSQL, a transaction-scoped advisory lock per buyer and email/phone makes the
    check and the reservation one step, so exactly one of them gets through.
    """
    days = contract.refuse_bought_within_days
    identities = [value for value in (lead.email, lead.phone) if value]
    if not days or not identities:
        return ""
    store.consumer_purchases_lock(buyer_id=contract.buyer_id, identities=identities)
    purchases = consumer_purchases(lead=lead, since=now - timedelta(days=days))
    for contract_id, buyer_id, _ in purchases:
        if contract.refuse_bought_scope == BoughtScope.CONTRACT and contract_id == contract.pk:
            return f"already bought by this contract (refuses repeats within {days} days)"
        if contract.refuse_bought_scope == BoughtScope.BUYER and buyer_id == contract.buyer_id:
            return f"already bought by this buyer (refuses repeats within {days} days)"
    return ""


def _live_reservation(*, lead: Lead, contract: Contract) -> CapReservation | None:
    return CapReservation.objects.filter(
        lead=lead, contract=contract, status__in=LIVE_RESERVATION_STATUSES
    ).first()


def _cap_counters_charge(
    *,
    contract: Contract,
    price: Decimal,
    now: datetime,
    reservation_id: int,
    specs: list[CapLimitSpec] | None = None,
) -> list[CapCounter]:
    """Add one lead at `price` to the current counter of every cap, or raise _CapReachedError.

    `reservation_id` is the reservation being charged for: a counter created now counts what
    was bought before it, not that one. `specs` are the caps of the contract and its buyer when
    the caller has just read them.
    """
    if specs is None:
        specs = [cap_limit_spec(cap) for cap in ContractCap.objects.filter(contract_id=contract.pk)]
        specs += [
            cap_limit_spec(cap) for cap in BuyerCap.objects.filter(buyer_id=contract.buyer_id)
        ]
    if not specs:
        return []
    zone = ZoneInfo(contract.buyer.time_zone)
    bounds = {spec: period_bounds(spec.period, now, zone) for spec in specs}
    keys = {spec: cap_counter_key(spec, bounds[spec][0]) for spec in specs}
    counters = {
        cap_counter_key_of(counter): counter
        for counter in CapCounter.objects.filter(cap_counters_filter(keys.values()))
    }
    # Create missing counters in one fixed order, so that two reservations creating the same
    # ones wait for each other rather than deadlock.
    for spec in sorted((s for s in specs if keys[s] not in counters), key=keys.__getitem__):
        counters[keys[spec]] = _cap_counter_create(
            spec=spec, bounds=bounds[spec], reservation_id=reservation_id
        )

    def usage_of(spec: CapLimitSpec, counter: CapCounter) -> CapUsage:
        start, end = bounds[spec]
        return CapUsage(spec, start, end, counter.leads, counter.spend)

    # Rows are locked in id order by every charge, release and commit: no deadlocks.
    charges = sorted(((counters[keys[s]], s) for s in specs), key=lambda pair: pair[0].pk)
    for counter, spec in charges:
        # A full cap refuses without taking the row lock that every other router is queueing on.
        if usage_of(spec, counter).blocks(price):
            raise _CapReachedError(usage_of(spec, counter))
    filled: list[tuple[CapCounter, CapLimitSpec]] = []
    for counter, spec in charges:
        charged = _cap_counter_charge(counter=counter, spec=spec, price=price)
        if not charged:
            counter.refresh_from_db(fields=["leads", "spend"])
            raise _CapReachedError(usage_of(spec, counter))
        if charged == _FILLED:
            filled.append((counter, spec))
    for counter, spec in filled:
        # Told once the reservation commits (a rolled-back one tells nothing).
        notify.cap_reached(counter_id=counter.pk, contract_id=contract.pk, spec=spec)
    return [counter for counter, _ in charges]


_CHARGED, _FILLED = "charged", "filled"


def _cap_counter_charge(*, counter: CapCounter, spec: CapLimitSpec, price: Decimal) -> str:
    """Charge one lead at `price` to the counter; return _CHARGED, _FILLED (this lead took the
    last room: no further lead, or none at this price, fits) or '' (no room).

    The first UPDATE also leaves room for one more lead at this price: the usual case, and its
    only query. Only when that fails does a second one try for the last room, so the reservation
    that fills a cap is known exactly, once, without a query on every reservation.
    """
    for spare, outcome in ((1, _CHARGED), (0, _FILLED)):
        room: dict[str, object] = {}
        if spec.max_leads is not None:
            room["leads__lt"] = spec.max_leads - spare
        if spec.max_budget is not None:
            room["spend__lte"] = spec.max_budget - price * (1 + spare)
        # The condition is re-checked on the newest row version after waiting for its lock, so
        # of any number of concurrent charges only those that fit succeed.
        if CapCounter.objects.filter(pk=counter.pk, **room).update(
            leads=F("leads") + 1, spend=F("spend") + price
        ):
            return outcome
    return ""


def _cap_counter_create(
    *, spec: CapLimitSpec, bounds: tuple[datetime, datetime], reservation_id: int | None
) -> CapCounter:
    """Create the counter of a period, starting from what the owner already bought in it.

    A cap added at noon must count the morning's sales, which no counter recorded. Two routers
    may race to create the same counter: the loser's INSERT waits for the winner, fails on the
    unique constraint inside a savepoint, and reads the winner's row.
    """
    start, end = bounds
    owner = {f"{spec.scope}_id": spec.owner_id}
    bought = CapReservation.objects.filter(
        status__in=LIVE_RESERVATION_STATUSES, created_at__gte=start, created_at__lt=end
    ).exclude(pk=reservation_id)
    if spec.scope == BUYER_SCOPE:
        bought = bought.filter(contract__buyer_id=spec.owner_id)
    else:
        bought = bought.filter(contract_id=spec.owner_id)
    totals = bought.aggregate(leads=Count("pk"), spend=Sum("price"))
    try:
        with transaction.atomic():
            counter = CapCounter.objects.create(
                **owner,
                period=spec.period,
                period_start=start,
                leads=totals["leads"],
                spend=totals["spend"] or Decimal("0.00"),
            )
    except IntegrityError:
        return CapCounter.objects.get(**owner, period=spec.period, period_start=start)
    # Reservations still held will be released or committed: let that reach this counter too.
    through = CapReservation.counters.through
    through.objects.bulk_create(
        through(capreservation_id=reservation_id, capcounter_id=counter.pk)
        for reservation_id in bought.filter(status=ReservationStatus.HELD).values_list(
            "pk", flat=True
        )
    )
    return counter


def _cap_counters_adjust(*, reservation_id: int, leads: int, spend: Decimal) -> None:
    counter_ids = (
        CapReservation.counters.through.objects.filter(capreservation_id=reservation_id)
        .order_by("capcounter_id")
        .values_list("capcounter_id", flat=True)
    )
    for counter_id in counter_ids:
        # Floor at zero: a counter corrected by hand must not make a release fail.
        CapCounter.objects.filter(pk=counter_id).update(
            leads=Greatest(F("leads") + leads, Value(0)),
            spend=Greatest(F("spend") + spend, Value(Decimal("0.00"))),
        )


def cap_counters_seed(
    *, caps: Iterable[ContractCap | BuyerCap], now: datetime | None = None
) -> None:
    """Create the current-period counter of each cap that has none, from what was bought.

    Reservations create counters as they go; a cap added mid-period has none until then, and
    its usage would read 0 although the morning's sales count against it. Call this when caps
    are saved, so that eligibility and the admin see the true usage at once.
    """
    now = now or timezone.now()
    for cap in caps:
        spec = cap_limit_spec(cap)
        buyer = cap.contract.buyer if isinstance(cap, ContractCap) else cap.buyer
        bounds = period_bounds(spec.period, now, ZoneInfo(buyer.time_zone))
        exists = CapCounter.objects.filter(
            cap_counters_filter([cap_counter_key(spec, bounds[0])])
        ).exists()
        if not exists:
            _cap_counter_create(spec=spec, bounds=bounds, reservation_id=None)
