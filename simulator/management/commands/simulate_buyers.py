"""Serve simulated buyer endpoints on a loopback address until Ctrl-C."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from simulator import server


class Command(BaseCommand):
    help = (
        "Serve simulated buyers: the query string of /ping and /post decides bids, declines, "
        "failures, delays and timeouts. Listens on a loopback address until Ctrl-C."
    )
    # The simulator uses neither models nor settings; it must start even while the project does not.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Loopback address to listen on (default: 127.0.0.1).",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=9100,
            help="Port to listen on; 0 picks a free one (default: 9100).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            help="Seed for the random outcomes, to replay a run (default: unseeded).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host: str = options["host"]
        port: int = options["port"]
        seed: int | None = options["seed"]
        if not server.is_loopback(host):
            raise CommandError(
                f"Refusing to listen on {host!r}: the buyer simulator only listens on loopback "
                "addresses such as 127.0.0.1 or ::1."
            )
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}.")

        def announce(base_url: str) -> None:
            seeded = f"seed {seed}" if seed is not None else "unseeded"
            self.stdout.write(
                self.style.SUCCESS(f"Buyer simulator listening on {base_url} ({seeded}).")
            )
            self.stdout.write("Examples:")
            for example in (
                "/ping?bid=12.50&delay_ms=40&decline=0.1&fail=0.05",
                "/ping?bid=8-20&decline=0.5&reason=budget%20reached",
                "/post?accept=0.9&delay_ms=80&price=12.50",
                "/post?timeout=1",
                "/health",
                "/_ledger",
            ):
                self.stdout.write(f"  {base_url}{example}")
            self.stdout.write("Press Ctrl-C to stop.")

        try:
            server.run(host, port, seed=seed, on_started=announce)
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.stdout.write("Buyer simulator stopped.")
