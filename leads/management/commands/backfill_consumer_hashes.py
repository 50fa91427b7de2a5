"""Hash the email and phone of every lead stored without them; print how many.

    manage.py backfill_consumer_hashes

Run once after deploying the code that stores the hashes (leads 0011): leads taken by the code
before while the migration ran, or until the new code was live, have none, and the ping's
duplicate and already-bought checks read only the hashes. Safe to run again: it fills only the
leads still lacking a hash.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from leads.consumer_hashes import BATCH_SIZE, consumer_hashes_backfill
from leads.models import Lead


class Command(BaseCommand):
    help = "Hash the email and phone of every lead lacking them (run once after deploying 0011)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=int,
            default=BATCH_SIZE,
            help=f"Leads per batch, each its own transaction (default {BATCH_SIZE}).",
        )

    def handle(self, *args, **options) -> None:
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be positive.")
        try:
            filled = consumer_hashes_backfill(lead_model=Lead, batch_size=batch_size)
        except DatabaseError as error:
            raise CommandError(f"The backfill stopped: {error}") from error
        self.stdout.write(f"Filled the consumer hashes of {filled} lead(s).")
