"""Personal data: erase a consumer on request (GDPR Art. 17); purge raw bodies past retention.

`consumer_erase` finds every lead of a consumer (by the normalised email and phone columns and
their hashes, and by the raw request body and data, where an invalid or duplicate lead may hold
the value in any spelling masking finds while its columns are blank), then erases the consumer
from the lead and from every row that points at it: the pings and posts (whose bodies carry the
whole lead), auctions, sales and their returns, postbacks, idempotency records, and any table
added later with a foreign key to a lead (found from the models, so a new table is never
forgotten). Ids, statuses, prices, payouts and
timestamps stay, so money and reports still add up.

`raw_bodies_purge` empties the raw request bodies of leads older than the retention period, and
the request and response bodies of their attempts and postbacks; and those of inbound pings and
their buyers' pings.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from config.admin_pii import lead_personal_values, pii_values
from config.masking import replace_spellings, spellings_found
from exchange.models import InboundPing, PingAttempt
from leads.intake import FieldError, FieldSpec, consumer_hash, normalise_value
from leads.models import (
    CONSENT_PERSONAL_KEYS,
    FieldType,
    Lead,
    LeadStatus,
    Postback,
    SuppressionList,
)
from leads.selectors import personal_field_names
from leads.services import suppression_list_add
from privacy import store
from routing.models import Attempt

logger = logging.getLogger(__name__)

ERASED = "[erased]"
SUPPRESSION_LIST_NAME = "Erased consumers"
# Consent evidence that identifies the consumer; the TCPA text, its time and the sellers named
# stay (they say what was agreed, not who agreed), and so does the record's shape: reports count
# leads without consent by an empty record.
# A routing run reads the lead's data: a lead in flight is not erased under a running buyer post.
IN_FLIGHT = (LeadStatus.ACCEPTED, LeadStatus.ROUTING)
# Bodies that carry the whole lead (or a buyer's or partner's answer to it) are emptied, not
# searched: a buyer's field mapping can spell a value in ways no search would find.
CLEARED_FIELDS = {
    Attempt: ("request_body", "response_body"),
    Postback: ("request_body", "response_body"),
}
# Short text columns hold codes (statuses, methods, states), never a consumer's data; scrubbing
# them could only turn a status that happens to equal a name into nonsense.
SHORTEST_SCRUBBED_CHARFIELD = 32


class InvalidConsumer(ValueError):
    """The email or phone given is not one intake would accept; the message says why."""


class ConsumerBusy(Exception):
    """A lead of the consumer is being routed; erasing it now would race the buyer post."""


@dataclass(frozen=True)
class ErasureReport:
    """What was erased (or, in a dry run, would be): rows changed per table, by model label."""

    email: str
    phone: str
    dry_run: bool
    lead_ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def consumer_normalise(*, email: str | None, phone: str | None) -> tuple[str, str]:
    """Return the email and E.164 phone as intake stores them; raise InvalidConsumer."""
    normalised = []
    for kind, given in ((FieldType.EMAIL, email), (FieldType.PHONE, phone)):
        value = (given or "").strip()
        if not value:
            normalised.append("")
            continue
        try:
            normalised.append(normalise_value(FieldSpec(name=kind, field_type=kind), value))
        except FieldError as exc:
            raise InvalidConsumer(str(exc)) from None
    if not any(normalised):
        raise InvalidConsumer("Give the consumer's email, phone or both.")
    return normalised[0], normalised[1]


def _fragments(email: str, phone: str) -> list[list[str]]:
    """ASCII pieces that every usual spelling of the email (its words) or phone (its area code,
    exchange and line) holds as they are: a text lacking one of a value's pieces lacks the value.
    """
    found = []
    if email:
        found.append(re.findall(r"[a-z0-9]+", email) or [email])
    if phone:
        digits = phone[-10:]
        found.append([digits[:3], digits[3:6], digits[6:]])
    return found


def _consumer_leads(email: str, phone: str) -> list[Lead]:
    """Return the consumer's leads, locked (PostgreSQL) until the transaction ends.

    The database finds candidates coarsely: by the columns and their hashes (indexed), and by
    raw bodies and data holding every piece of a value. Masking's matcher then decides, so that
    a value escaped in a raw body (`\\u0040`, `&#64;`, `%40`) is found as masking finds it, and a
    longer address (joann@…) or another area code is someone else.
    """
    coarse = Q()
    for column, value in (("email", email), ("phone", phone)):
        if value:
            coarse |= Q(**{column: value}) | Q(**{f"{column}_sha256": consumer_hash(value)})
    for pieces in _fragments(email, phone):
        for text_field in ("raw_body", "data"):
            coarse |= Q(*(Q(**{f"{text_field}__icontains": piece}) for piece in pieces))
    values = pii_values([email, phone])
    hashes = {consumer_hash(v) for v in (email, phone) if v}
    candidates = Lead.objects.filter(coarse).values_list(
        "pk", "email", "phone", "email_sha256", "phone_sha256", "raw_body", "data"
    )
    found = [
        pk
        for pk, *columns, raw_body, data in candidates.iterator()
        if any(v and v in (email, phone) for v in columns[:2])
        or any(v and v in hashes for v in columns[2:])
        or spellings_found(raw_body, values)
        or spellings_found(json.dumps(data), values)
    ]
    return list(Lead.objects.select_for_update().filter(pk__in=found).order_by("received_at", "pk"))


def text_erase(text: str, values: Iterable[str]) -> str:
    """Replace every spelling of the values in text (longest first) by [erased]."""
    if not text:
        return text
    return replace_spellings(text, values, lambda _value: ERASED)


class _Scrubber:
    """Replace every spelling of the consumer's values by [erased] in text, JSON and bytes.

    The spellings are masking's (config.masking.replace_spellings): as typed, in any case, and
    JSON-, URL- or XML-encoded, alone or one inside another.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self.values = sorted({v for v in values if len(v.strip()) >= 2}, key=len, reverse=True)

    def text(self, value: str) -> str:
        return text_erase(value, self.values)

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.json(item) for item in value]
        return value

    def bytes(self, value: bytes | memoryview) -> bytes:
        raw = bytes(value)
        try:
            return self.text(raw.decode()).encode()
        except UnicodeDecodeError:
            return raw

    def field(self, model_field: models.Field, value: Any) -> Any:
        if value in (None, "", b""):
            return value
        if isinstance(model_field, models.JSONField):
            return self.json(value)
        if isinstance(model_field, models.BinaryField):
            return self.bytes(value)
        scrubbed = self.text(str(value))
        if model_field.max_length:  # "[erased]" may be longer than what it replaces
            scrubbed = scrubbed[: model_field.max_length]
        return scrubbed


def _scrubbable(model: type[models.Model]) -> list[models.Field]:
    """The columns of a model that may hold a consumer's data in free text."""
    found = []
    for model_field in model._meta.concrete_fields:
        if model_field.choices or model_field.primary_key or model_field.is_relation:
            continue
        if isinstance(model_field, models.TextField | models.JSONField | models.BinaryField) or (
            isinstance(model_field, models.CharField)
            and (model_field.max_length or 0) >= SHORTEST_SCRUBBED_CHARFIELD
        ):
            found.append(model_field)
    return found


def lead_dependants() -> list[tuple[type[models.Model], str]]:
    """Every model whose rows point at a lead, directly or through one other row, with the
    lookup from it to the lead (`lead`, `sale__lead`).

    Found from the models, so that a table added later with a foreign key to a lead is erased
    too without anyone remembering to list it here.
    """

    def pointing_at(target: type[models.Model]) -> list[tuple[type[models.Model], str]]:
        return [
            (relation.related_model, relation.field.name)
            for relation in target._meta.related_objects
            if relation.one_to_many or relation.one_to_one
        ]

    direct = [(model, name) for model, name in pointing_at(Lead) if model is not Lead]
    seen = {model for model, _ in direct} | {Lead}
    found = list(direct)
    for parent, to_lead in direct:
        for model, name in pointing_at(parent):
            if model not in seen:
                seen.add(model)
                found.append((model, f"{name}__{to_lead}"))
    return found


def _erase_lead(lead: Lead, personal: set[str], scrub: _Scrubber, now: datetime) -> None:
    lead.score_breakdown = scrub.json(lead.score_breakdown)
    data = lead.data if isinstance(lead.data, dict) else {}
    lead.data = scrub.json(
        {key: ERASED if key in personal else value for key, value in data.items()}
    )
    consent = lead.consent if isinstance(lead.consent, dict) else {}
    lead.consent = scrub.json(
        {key: ERASED if key in CONSENT_PERSONAL_KEYS else value for key, value in consent.items()}
    )
    lead.raw_body = ""
    # What a source sent beyond the vertical's fields is not known to be impersonal.
    lead.extra = {}
    # A hash of an email or phone names the consumer as well as the value does.
    lead.email = lead.phone = lead.email_sha256 = lead.phone_sha256 = ""
    lead.remote_ip = None
    lead.errors = scrub.json(lead.errors)
    lead.reason = scrub.text(lead.reason)[:500]
    lead.sub_id = scrub.text(lead.sub_id)[:255]
    lead.erased_at = now
    # Reports rebuild the hours of leads changed since their last run: an erased lead's attempt
    # reasons (rolled up as rejection reasons) are rebuilt from the scrubbed rows.
    lead.updated_at = now


def _erase_dependants(lead_ids: list[Any], scrub: _Scrubber) -> Counter[str]:
    changed: Counter[str] = Counter()
    for model, to_lead in lead_dependants():
        cleared = CLEARED_FIELDS.get(model, ())
        scrubbed = [f for f in _scrubbable(model) if f.name not in cleared]
        if not cleared and not scrubbed:
            continue
        names = [*cleared, *(f.name for f in scrubbed)]
        rows = model.objects.filter(**{f"{to_lead}__in": lead_ids}).values("pk", *names)
        for row in rows:
            after = {name: "" for name in cleared if row[name]}
            for model_field in scrubbed:
                value = scrub.field(model_field, row[model_field.name])
                if value != row[model_field.name]:
                    after[model_field.name] = value
            if after:
                # An UPDATE, not save(): no signal, and no auto_now column moves (when a row
                # was made or changed is evidence, not personal data).
                model.objects.filter(pk=row["pk"]).update(**after)
                changed[model._meta.label] += 1
    return changed


def consumer_erase(
    *,
    email: str | None = None,
    phone: str | None = None,
    dry_run: bool = False,
    suppress: bool = False,
) -> ErasureReport:
    """Erase every copy of a consumer's personal data; return what was (or would be) erased.

    Atomic: everything or nothing. Idempotent: erased leads no longer match, so a second call
    erases nothing. A dry run does the same work and rolls it back, so its report is exact.
    With `suppress`, the email and phone are added (as keyed hashes) to the "Erased consumers"
    suppression list, so that the consumer is not sold again. Raise InvalidConsumer for an
    email or phone intake would refuse, ConsumerBusy while one of the leads is being routed.
    """
    email, phone = consumer_normalise(email=email, phone=phone)
    now = timezone.now()
    with transaction.atomic():
        # Finding the leads that only a raw body ties to a consumer reads every body: on a big
        # table, longer than the bound a connection carries for web requests and tasks.
        store.statement_timeout_off()
        leads = _consumer_leads(email, phone)
        busy = [lead for lead in leads if lead.status in IN_FLIGHT]
        if busy:
            raise ConsumerBusy(
                f"{len(busy)} of the consumer's leads are being routed "
                f"({', '.join(str(lead.pk) for lead in busy[:5])}); erase again once routing "
                "has finished, within a minute or two."
            )
        personal = personal_field_names({lead.vertical_id for lead in leads})
        values = {email, phone}
        for lead in leads:
            values.update(lead_personal_values(lead, personal[lead.vertical_id]))
        scrub = _Scrubber(pii_values(values))
        counts: Counter[str] = Counter()
        for lead in leads:
            _erase_lead(lead, personal[lead.vertical_id], scrub, now)
        if leads:
            Lead.objects.bulk_update(
                leads,
                [
                    "data", "consent", "raw_body", "extra", "email", "phone", "email_sha256",
                    "phone_sha256", "remote_ip", "errors", "reason", "sub_id", "score_breakdown",
                    "erased_at", "updated_at",
                ],
            )  # fmt: skip
            counts[Lead._meta.label] = len(leads)
            counts.update(_erase_dependants([lead.pk for lead in leads], scrub))
        # Inbound pings keep the consumer only as the seller's hashes (exchange/): forgotten too.
        counts.update(ping_hashes_forget(email=email, phone=phone))
        suppressed = 0
        if suppress:
            suppression_list, _ = SuppressionList.objects.get_or_create(
                name=SUPPRESSION_LIST_NAME,
                defaults={
                    "description": "Consumers whose personal data was erased on request (GDPR "
                    "Art. 17), kept only as keyed hashes so that their leads are not sold again."
                },
            )
            text = "\n".join(v for v in (email, phone) if v)
            suppressed = suppression_list_add(suppression_list=suppression_list, text=text).added
        if dry_run:
            transaction.set_rollback(True)
    report = ErasureReport(
        email=email,
        phone=phone,
        dry_run=dry_run,
        lead_ids=[str(lead.pk) for lead in leads],
        counts=dict(counts),
        suppressed=suppressed,
    )
    if not dry_run:
        # Counts and ids only: a log line holding the consumer's address would be a new copy.
        logger.info(
            "erased a consumer's personal data",
            extra={"leads": len(leads), "rows": report.total, "suppressed": suppressed},
        )
    return report


def ping_hashes_forget(*, email: str, phone: str) -> Counter[str]:
    """Clear the hashed e-mail and phone of the consumer's inbound pings; count the pings."""
    counts: Counter[str] = Counter()
    for column, value in (("email_sha256", email), ("phone_sha256", phone)):
        if value:
            digest = consumer_hash(value)
            cleared = InboundPing.objects.filter(**{column: digest}).update(**{column: ""})
            if cleared:
                counts[InboundPing._meta.label] += cleared
    return counts


# --- Retention ------------------------------------------------------------------------------

RETENTION_BATCH_SIZE = 500
RETENTION_MAX_BATCHES = 200


def raw_bodies_purge(
    *,
    older_than: timedelta,
    batch_size: int = RETENTION_BATCH_SIZE,
    max_batches: int = RETENTION_MAX_BATCHES,
) -> int:
    """Empty the raw request bodies of leads received before now - older_than, and the request
    and response bodies of their attempts and postbacks; then those of the inbound pings received
    before then, and of their buyers' pings; return how many leads and inbound pings were purged.

    One transaction per batch of leads, at most max_batches per call (the next call goes on
    where this one stopped). A purged lead's body is empty, so purging again finds nothing.
    """
    cutoff = timezone.now() - older_than
    batches = {"batch_size": batch_size, "max_batches": max_batches}
    leads = _bodies_purge(
        Lead.objects.filter(received_at__lt=cutoff),
        {Attempt: "lead_id", Postback: "lead_id"},
        **batches,
    )
    pings = _bodies_purge(
        InboundPing.objects.filter(received_at__lt=cutoff), {PingAttempt: "ping_id"}, **batches
    )
    return leads + pings


def _bodies_purge(
    older: models.QuerySet,
    calls: dict[type[models.Model], str],
    *,
    batch_size: int,
    max_batches: int,
) -> int:
    """Empty the raw bodies of the `older` rows (leads or inbound pings, by received_at), oldest
    first, and the request and response bodies of the calls made for them (model: its key to
    the row); return how many rows were purged."""
    pending = older.exclude(raw_body="")
    purged = 0
    after = None
    for _ in range(max_batches):
        with transaction.atomic():
            # The first batch walks the rows already purged: on a big table, longer than the
            # bound a connection carries for web requests and tasks.
            store.statement_timeout_off()
            # Oldest first: go on from the last batch rather than walk the purged history again
            # (there is no index on whether a body is empty).
            rows = pending if after is None else pending.filter(received_at__gte=after)
            batch = list(
                rows.order_by("received_at", "pk").values_list("pk", "received_at")[:batch_size]
            )
            if not batch:
                break
            ids = [pk for pk, _ in batch]
            pending.model.objects.filter(pk__in=ids).update(raw_body="")
            for model, key in calls.items():
                model.objects.filter(**{f"{key}__in": ids}).exclude(
                    request_body="", response_body=""
                ).update(request_body="", response_body="")
        purged += len(batch)
        after = batch[-1][1]
    return purged
