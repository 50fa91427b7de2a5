"""The demo marketplace ships as a file (simulator/demo_marketplace.yaml) that load_demo imports."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from buyers.models import Contract, DeliveryEndpoint
from leads.models import ScoringRule, Vertical
from simulator.demo import DEMO_FILE, FILE_HEADER, FILE_SIMULATOR_URL

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = ".venv/bin/python manage.py load_demo --write-config"


def load_demo(simulator_url: str = FILE_SIMULATOR_URL) -> str:
    out = io.StringIO()
    call_command("load_demo", "--simulator-url", simulator_url, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def export() -> str:
    out = io.StringIO()
    call_command("config", "export", stdout=out)
    return out.getvalue()


def test_the_shipped_file_is_what_an_export_of_the_loaded_demo_writes():
    load_demo()

    shipped = DEMO_FILE.read_text(encoding="utf-8")
    assert shipped == FILE_HEADER + export(), f"the demo's file is stale: run `{REGENERATE}`"


def test_the_file_says_how_to_rewrite_it():
    assert REGENERATE in DEMO_FILE.read_text(encoding="utf-8")


def test_the_endpoints_move_to_the_given_simulator_and_nothing_else_changes():
    load_demo("http://127.0.0.1:9555/")

    urls = list(DeliveryEndpoint.objects.values_list("url", flat=True))
    assert urls
    assert all(url.startswith("http://127.0.0.1:9555/p") for url in urls)
    shipped = DEMO_FILE.read_text(encoding="utf-8")
    assert FILE_HEADER + export().replace("127.0.0.1:9555", "127.0.0.1:9100") == shipped


def test_the_import_is_in_the_history_as_the_demo_admin_with_a_reason():
    load_demo()

    for model in (Vertical, ScoringRule, Contract):
        (record,) = (
            model.history.filter(history_type="+")
            .values_list("history_user__username", "history_change_reason")
            .order_by()
            .distinct()
        )
        assert record == ("admin", "Demo marketplace (manage.py load_demo)")


def test_a_second_run_puts_back_only_what_was_deleted_and_leaves_the_rest_alone():
    load_demo()
    deleted = Contract.objects.get(name="Solar - East Coast")
    deleted.delete()
    kept = Contract.objects.get(name="Auto - West Coast preferred credit")
    kept.floor_price = 99
    kept.save()

    output = load_demo()

    assert "BrightGrid Energy (America/New_York): 1 contract(s), 1 created" in output
    assert Contract.objects.get(name="Solar - East Coast").endpoints.count() == 2
    kept.refresh_from_db()
    assert kept.floor_price == 99
    assert Contract.objects.count() == 8


def test_write_config_rewrites_the_file_from_a_throwaway_database(tmp_path):
    # The command line as the file's header gives it; this installation's database (a SQLite
    # file here) is never created or written.
    database = tmp_path / "installation.sqlite3"
    written = tmp_path / "demo_marketplace.yaml"
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "manage.py", "load_demo", "--write-config", str(written)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{database}", "ENV_FILE": ""},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert written.read_text(encoding="utf-8") == DEMO_FILE.read_text(encoding="utf-8")
    assert not database.exists()
