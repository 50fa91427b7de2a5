"""Load the demo: verticals, sources with API keys, buyers on the simulator, and staff users."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leads.models import PayoutModel, Source
from simulator.demo import DEFAULT_PASSWORD, DemoResult, demo_load


class Command(BaseCommand):
    help = (
        "Create demo data: the auto-insurance and solar verticals, three sources (API keys are "
        "printed once), seven buyers whose contracts point at the buyer simulator, and the users "
        "admin, ops and sales. Safe to run again: it only creates what is missing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--simulator-url",
            default=settings.SIMULATOR_URL,
            help=f"Base URL of `manage.py simulate_buyers` (default: {settings.SIMULATOR_URL}).",
        )
        parser.add_argument(
            "--password",
            default=None,
            help=(
                "Password for the demo users (default: $DEMO_PASSWORD, else "
                f"{DEFAULT_PASSWORD!r}). Only set on users this run creates."
            ),
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Also set the password of demo users that already exist.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        try:
            validate_password(password)
        except ValidationError as exc:
            self.stderr.write(self.style.WARNING(f"Weak demo password: {' '.join(exc.messages)}"))
        try:
            result = demo_load(
                simulator_url=options["simulator_url"],
                password=password,
                reset_passwords=options["reset_passwords"],
            )
        except ValidationError as exc:
            # Demo data is valid by construction; this is nearly always a bad --simulator-url.
            raise CommandError(f"Demo data failed validation: {exc.message_dict}") from exc
        self._report(result)

    def _report(self, result: DemoResult) -> None:
        out, ok, note = self.stdout.write, self.style.SUCCESS, self.style.NOTICE

        def status(created: bool) -> str:
            return ok("created") if created else "exists "

        out(self.style.MIGRATE_HEADING("Verticals"))
        for v in result.verticals:
            vertical = v.vertical
            sharing = (
                "exclusive" if vertical.max_buyers == 1 else f"shared by {vertical.max_buyers}"
            )
            out(
                f"  {status(v.created)}  {vertical.slug}: {v.field_count} fields, "
                f"{vertical.get_distribution_mode_display().lower()}, {sharing}"
            )

        out(self.style.MIGRATE_HEADING("Sources"))
        for s in result.sources:
            source = s.source
            verticals = ", ".join(source.verticals.order_by("slug").values_list("slug", flat=True))
            out(f"  {status(s.created)}  {source.name} ({self._payout(s.source)}; {verticals})")
            if s.api_key:
                out(f"             API key, shown only this once (copy it now): {s.api_key}")
            elif s.key_prefixes:
                keys = ", ".join(f"{prefix}…" for prefix in s.key_prefixes)
                out(f"             API key(s) exist: {keys} (the full key is never shown again)")
            else:
                out(note("             no active API key"))
        if not all(s.api_key for s in result.sources):
            out(
                "  Need a new key? Use 'Mint API key' on the source's admin page, or "
                "`manage.py create_source <name> --verticals <slugs>`."
            )

        out(self.style.MIGRATE_HEADING(f"Buyers (endpoints at {result.simulator_url})"))
        for b in result.buyers:
            created = f", {b.contracts_created} created" if b.contracts_created else ""
            out(
                f"  {status(b.created)}  {b.buyer.company} ({b.buyer.time_zone}): "
                f"{len(b.contracts)} contract(s){created}"
            )

        out(self.style.MIGRATE_HEADING("Users"))
        for u in result.users:
            user = u.user
            role = "superuser" if user.is_superuser else "staff"
            groups = ", ".join(user.groups.order_by("name").values_list("name", flat=True))
            password = "password set" if u.password_set else "password unchanged"
            out(
                f"  {status(u.created)}  {user.username} ({role}{', ' + groups if groups else ''}"
                f"; {password})"
            )
        if all(u.password_set for u in result.users):
            out(f"  Demo password: {result.password}")
        else:
            out(
                "  Users that already existed keep their password; run with --reset-passwords "
                f"to set it to: {result.password}"
            )
        out("  Sign in at /admin/ on the web server (./dev run prints its address)")

        out("")
        summary = (
            f"{len(result.verticals)} verticals, {len(result.sources)} sources, "
            f"{len(result.buyers)} buyers, {result.contract_count} contracts, "
            f"{len(result.users)} users."
        )
        if result.created_anything:
            out(ok(f"Demo data loaded: {summary}"))
        else:
            out(f"Demo data already present, nothing created: {summary}")
        out(
            f"The contracts ping and post to {result.simulator_url}: `./dev run` starts the "
            "buyer simulator there (or run `manage.py simulate_buyers`)."
        )

    @staticmethod
    def _payout(source: Source) -> str:
        if source.payout_model == PayoutModel.REVENUE_SHARE:
            return f"revenue share {source.revenue_share_percent.normalize():f}%"
        return f"fixed CPL ${source.payout_amount}"
