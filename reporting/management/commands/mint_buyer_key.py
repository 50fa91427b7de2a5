"""Mint an API key for a buyer (returns) and print it once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from buyers.models import Buyer
from reporting.services import buyer_api_key_create


class Command(BaseCommand):
    help = "Mint an API key for a buyer, for POST /api/v1/returns/; the key is printed once."

    def add_arguments(self, parser):
        parser.add_argument("buyer", help="The buyer's company name or id.")
        parser.add_argument("--name", default="", help="What the key is for.")

    def handle(self, *args, **options):
        ref = options["buyer"]
        buyer = (
            Buyer.objects.filter(pk=int(ref)).first()
            if ref.isdigit()
            else Buyer.objects.filter(company=ref).first()
        )
        if buyer is None:
            raise CommandError(f"No buyer {ref!r}.")
        _, raw_key = buyer_api_key_create(buyer=buyer, name=options["name"])
        self.stdout.write(raw_key)
