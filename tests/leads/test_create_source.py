from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from leads.models import PayoutModel, Source, SourceApiKey
from leads.services import source_api_key_authenticate
from tests.leads.factories import SourceFactory, VerticalFactory

pytestmark = pytest.mark.django_db


def create_source(*args: str) -> str:
    out = io.StringIO()
    call_command("create_source", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def verticals():
    return VerticalFactory(slug="auto-insurance"), VerticalFactory(slug="solar")


def test_it_creates_a_source_and_prints_a_working_key_once(verticals):
    output = create_source("Acme Media", "--verticals", "auto-insurance,solar", "--payout", "8.50")
    source = Source.objects.get(name="Acme Media")
    assert set(source.verticals.values_list("slug", flat=True)) == {"auto-insurance", "solar"}
    assert (source.payout_model, source.payout_amount) == (PayoutModel.FIXED_CPL, Decimal("8.50"))
    raw_key = output.strip().splitlines()[-1]
    assert source_api_key_authenticate(raw_key=raw_key).source == source
    assert "Created source 'Acme Media'" in output
    assert not SourceApiKey.objects.filter(hashed_key=raw_key).exists()


def test_a_source_sees_only_its_payout_unless_created_to_see_the_buyers_price(verticals):
    create_source("Private Media", "--verticals", "solar")
    create_source("Open Media", "--verticals", "solar", "--sees-buyer-price")

    assert dict(Source.objects.values_list("name", "sees_buyer_price")) == {
        "Private Media": False,
        "Open Media": True,
    }


def test_it_mints_a_fresh_key_for_an_existing_source_and_adds_verticals(verticals):
    source = SourceFactory(name="Acme Media", verticals=[verticals[0]])
    first = create_source("Acme Media", "--verticals", "solar").strip().splitlines()[-1]
    second = create_source("Acme Media", "--verticals", "solar").strip().splitlines()[-1]
    assert first != second
    assert source.api_keys.count() == 2
    assert set(source.verticals.values_list("slug", flat=True)) == {"auto-insurance", "solar"}
    assert Source.objects.count() == 1


def test_it_refuses_an_unknown_vertical_and_creates_nothing(verticals):
    with pytest.raises(CommandError, match=r"Unknown vertical\(s\): mortgage\. Known: auto-"):
        create_source("Acme Media", "--verticals", "solar,mortgage")
    assert not Source.objects.exists()


def test_it_refuses_an_invalid_source_and_creates_nothing(verticals):
    with pytest.raises(CommandError, match="revenue_share_percent"):
        create_source("Acme", "--verticals", "solar", "--payout-model", "revenue_share")
    with pytest.raises(CommandError, match="not an amount"):
        create_source("Acme", "--verticals", "solar", "--payout", "lots")
    assert not Source.objects.exists()
    assert not SourceApiKey.objects.exists()


def test_it_exits_non_zero_with_a_message_from_the_command_line(verticals):
    result = subprocess.run(
        [sys.executable, "manage.py", "create_source", "Acme"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "--verticals" in result.stderr
