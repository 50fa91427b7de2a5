"""Mint an API token for a staff user (reports) and print it once."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reporting.models import TokenScope
from reporting.services import staff_token_create


class Command(BaseCommand):
    help = (
        "Mint an API token for a staff user; it acts with the user's own permissions within its "
        "scope. The token is printed once; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="The staff user the token acts as.")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--scope",
            choices=TokenScope.values,
            default=TokenScope.READ,
            help="read (GET only, the default) or read_write.",
        )

    def handle(self, *args, **options):
        user = get_user_model()._default_manager.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        if not (user.is_active and user.is_staff):
            raise CommandError(f"{user} is not an active staff user: a token would not work.")
        if not options["name"].strip():
            raise CommandError("Give the token a --name saying what it is for.")
        _, raw = staff_token_create(user=user, name=options["name"].strip(), scope=options["scope"])
        self.stdout.write(raw)
