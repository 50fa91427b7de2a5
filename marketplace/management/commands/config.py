"""Export the marketplace's configuration to a file, or import one (with a dry-run diff)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.document import FORMATS, DocumentError, dump, format_of, load, render_diff
from marketplace.services import ConfigRefused, config_export, config_import


class Command(BaseCommand):
    help = (
        "Configuration as code. `config export` writes the marketplace's configuration (verticals, "
        "sources, suppression lists, buyers, contracts, teams, notification subscriptions; "
        "secrets as ${LEADSWITCH_SECRET_...} placeholders) to stdout; `config import FILE` makes "
        "the configuration what the file says, all or nothing (--dry-run prints the diff only)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="Write the configuration to stdout.")
        export.add_argument(
            "--vertical",
            action="append",
            default=[],
            metavar="SLUG",
            help="Only this vertical and what buys or sells in it (repeatable).",
        )
        export.add_argument("--format", choices=FORMATS, default="yaml")
        imp = actions.add_parser("import", help="Apply a configuration file.")
        imp.add_argument("file", help="The file (.json is read as JSON, anything else as YAML).")
        imp.add_argument("--dry-run", action="store_true", help="Print the diff; change nothing.")
        imp.add_argument(
            "--prune",
            action="store_true",
            help="Delete what the file's sections do not list (else it is left alone).",
        )
        imp.add_argument("--reason", required=True, help="Kept in the configuration history.")
        imp.add_argument("--as", dest="username", default=None, help="The user the history names.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self._export(options)
        else:
            self._import(options)

    def _export(self, options: dict[str, Any]) -> None:
        try:
            document = config_export(verticals=options["vertical"] or None)
        except ConfigRefused as exc:
            raise CommandError(_problems(exc)) from None
        self.stdout.write(dump(document, options["format"]), ending="")

    def _import(self, options: dict[str, Any]) -> None:
        reason = options["reason"].strip()
        if not reason:
            raise CommandError("Give a --reason: it is kept in the configuration history.")
        user = None
        if options["username"]:
            User = get_user_model()
            user = User._default_manager.filter(
                **{User.USERNAME_FIELD: options["username"]}
            ).first()
            if user is None:
                raise CommandError(f"No user {options['username']!r} (--as).")
        try:
            with open(options["file"], encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc}") from None
        try:
            document = load(text, format_of(options["file"]))
            result = config_import(
                document=document,
                reason=reason,
                user=user,
                prune=options["prune"],
                dry_run=options["dry_run"],
            )
        except DocumentError as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        except ConfigRefused as exc:
            raise CommandError(_problems(exc)) from None
        self.stdout.write(render_diff(result.changes, applied=result.applied), ending="")


def _problems(exc: ConfigRefused) -> str:
    lines = [f"{len(exc.problems)} problem(s); nothing was changed:"]
    lines.extend(f"  {problem}" for problem in exc.problems)
    return "\n".join(lines)
