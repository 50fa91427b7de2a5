"""Create a partner source (if missing) and print a fresh API key for it, once."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from leads.models import PayoutModel, Vertical
from leads.services import source_api_key_create, source_get_or_create


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CommandError(f"{text!r} is not an amount such as 8.50") from None
    if not value.is_finite() or value < 0:
        raise CommandError(f"{text!r} is not a non-negative amount")
    return value


class Command(BaseCommand):
    help = (
        "Create a source (partner) if it does not exist, allow it the given verticals, and "
        "print a new API key for it. The key is shown once: only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The source's name, e.g. 'Acme Media'.")
        parser.add_argument(
            "--verticals",
            required=True,
            help="Comma-separated vertical slugs it may submit to, e.g. auto-insurance,solar.",
        )
        parser.add_argument(
            "--payout-model",
            choices=PayoutModel.values,
            default=PayoutModel.FIXED_CPL,
            help="How the source is paid (only used when the source is created).",
        )
        parser.add_argument(
            "--payout", default="0", help="Dollars per sold lead under fixed_cpl (default 0)."
        )
        parser.add_argument(
            "--revenue-share", default="0", help="Percent of the sale price under revenue_share."
        )
        parser.add_argument(
            "--sees-buyer-price",
            action="store_true",
            help="Show it the buyer's price beside its payout (only used when it is created).",
        )
        parser.add_argument("--key-name", default="", help="What the key is for, e.g. 'web form'.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("Give the source a name.")
        slugs = [s.strip() for s in options["verticals"].split(",") if s.strip()]
        if not slugs:
            raise CommandError("Name at least one vertical with --verticals.")
        verticals = {v.slug: v for v in Vertical.objects.filter(slug__in=slugs)}
        unknown = [slug for slug in slugs if slug not in verticals]
        if unknown:
            known = ", ".join(Vertical.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(
                f"Unknown vertical(s): {', '.join(unknown)}. Known: {known or 'none yet'}."
            )
        try:
            with transaction.atomic():
                source, created = source_get_or_create(
                    name=name,
                    verticals=list(verticals.values()),
                    payout_model=options["payout_model"],
                    payout_amount=_amount(options["payout"]),
                    revenue_share_percent=_amount(options["revenue_share"]),
                    sees_buyer_price=options["sees_buyer_price"],
                )
                api_key, raw_key = source_api_key_create(source=source, name=options["key_name"])
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
            )
            raise CommandError(f"The source is not valid: {problems}") from None
        allowed = ", ".join(sorted(source.verticals.values_list("slug", flat=True)))
        self.stdout.write(
            f"{'Created' if created else 'Found'} source {source.name!r} (id {source.pk}), "
            f"allowed verticals: {allowed}."
        )
        if not source.active:
            self.stdout.write(
                self.style.WARNING("The source is inactive: activate it in the admin first.")
            )
        self.stdout.write(f"API key {api_key.prefix}… (shown only this once, copy it now):")
        self.stdout.write(raw_key)
