"""Erase every copy of a consumer's personal data (GDPR Art. 17) and say what was erased."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.admin_display import plural
from config.masking import mask_email, mask_phone
from privacy.services import (
    SUPPRESSION_LIST_NAME,
    ConsumerBusy,
    InvalidConsumer,
    consumer_erase,
)


class Command(BaseCommand):
    help = (
        "Erase a consumer's personal data from every lead, ping, post, postback and record that "
        "holds it, found by email and/or phone (as intake normalises them). Ids, statuses, "
        "prices and times stay, so money and reports still add up."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="", help="The consumer's email address.")
        parser.add_argument(
            "--phone", default="", help="The consumer's US phone, in any common format."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be erased; change nothing."
        )
        parser.add_argument(
            "--suppress",
            action="store_true",
            help=f'Also add the email and phone (hashed) to the "{SUPPRESSION_LIST_NAME}" '
            "suppression list, so that the consumer's leads are not sold again.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["email"].strip() or options["phone"].strip()):
            raise CommandError("Give the consumer's --email, --phone or both.")
        try:
            report = consumer_erase(
                email=options["email"],
                phone=options["phone"],
                dry_run=options["dry_run"],
                suppress=options["suppress"],
            )
        except (InvalidConsumer, ConsumerBusy) as exc:
            raise CommandError(str(exc)) from None
        # Masked: this output may end up in a job log, which must not become a new copy.
        who = " and ".join(
            text
            for text in (
                f"email {mask_email(report.email)}" if report.email else "",
                f"phone {mask_phone(report.phone)}" if report.phone else "",
            )
            if text
        )
        verb = "Would erase" if report.dry_run else "Erased"
        if not report.lead_ids:
            self.stdout.write(f"No personal data found for the consumer with {who}.")
        else:
            self.stdout.write(
                f"{verb} the consumer with {who}: {plural(len(report.lead_ids), 'lead')}, "
                f"{plural(report.total, 'row')} in all."
            )
            for label, count in sorted(report.counts.items()):
                self.stdout.write(f"  {label:<28} {count:>6}")
        if options["suppress"]:
            added = "would add" if report.dry_run else "added"
            self.stdout.write(
                f'Suppression list "{SUPPRESSION_LIST_NAME}": {added} '
                f"{plural(report.suppressed, 'new contact')}."
            )
        if report.dry_run:
            self.stdout.write("Dry run: nothing was changed.")
