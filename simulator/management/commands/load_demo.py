"""Load the demo: staff users, and the demo marketplace imported from its file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test.utils import override_settings

from leads.models import PayoutModel, Source
from marketplace.services import ConfigRefused
from simulator.demo import (
    DEFAULT_PASSWORD,
    DEMO_FILE,
    FILE_SIMULATOR_URL,
    DemoResult,
    demo_file_text,
    demo_load,
)


class Command(BaseCommand):
    help = (
        "Create demo data: the users admin, ops and sales, and, imported from "
        "simulator/demo_marketplace.yaml, the auto-insurance and solar verticals, three sources "
        "(API keys are printed once) and seven buyers whose contracts point at the buyer "
        "simulator. Safe to run again: it only creates what is missing."
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
        parser.add_argument(
            "--write-config",
            nargs="?",
            const=str(DEMO_FILE),
            default=None,
            metavar="FILE",
            help=(
                "Load nothing here: load the demo into a throwaway database and write its "
                "configuration export to the demo's file (or FILE), as load_demo imports it. Run "
                "it after editing the file or changing the export's format."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["password"] or os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD
        try:
            validate_password(password)
        except ValidationError as exc:
            self.stderr.write(self.style.WARNING(f"Weak demo password: {' '.join(exc.messages)}"))
        if options["write_config"]:
            self._write_config(Path(options["write_config"]), password)
            return
        try:
            result = demo_load(
                simulator_url=options["simulator_url"],
                password=password,
                reset_passwords=options["reset_passwords"],
            )
        except ConfigRefused as exc:
            # The file imports into an empty database (its test says so); this is nearly always
            # a bad --simulator-url.
            problems = "\n".join(f"  {problem}" for problem in exc.problems)
            raise CommandError(
                f"The demo's file did not import; nothing was created:\n{problems}"
            ) from None
        self._report(result)

    def _write_config(self, path: Path, password: str) -> None:
        # A throwaway database, as `manage.py testserver` makes one: the file is the export of
        # the demo alone, whatever this installation holds. Its endpoints are never called, so
        # the simulator's address is allowed whatever this installation allows.
        # Named after this installation's, so that it clobbers neither it nor its test database
        # (on SQLite, a file beside it, deleted with it).
        old_name = connection.settings_dict["NAME"]
        connection.settings_dict["TEST"]["NAME"] = f"{old_name}_demo_file"
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            with override_settings(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"]):
                demo_load(simulator_url=FILE_SIMULATOR_URL, password=password)
            text = demo_file_text()
        except ConfigRefused as exc:
            problems = "\n".join(f"  {problem}" for problem in exc.problems)
            raise CommandError(f"The demo's file did not import:\n{problems}") from None
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        path.write_text(text, encoding="utf-8")
        self.stdout.write(self.style.SUCCESS(f"Wrote {path}"))

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
