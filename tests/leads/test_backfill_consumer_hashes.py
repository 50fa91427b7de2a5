"""manage.py backfill_consumer_hashes fills the hashes of the leads stored without them (by the
code before leads 0011, while it ran or until the new code was deployed), and only those."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from leads.intake import consumer_hash
from leads.models import Lead
from tests.leads.factories import LeadFactory

pytestmark = pytest.mark.django_db


def backfill(*args: str) -> str:
    out = io.StringIO()
    call_command("backfill_consumer_hashes", *args, stdout=out)
    return out.getvalue()


def test_it_fills_the_leads_lacking_a_hash_and_a_second_run_fills_none():
    hashed = LeadFactory()
    no_hashes = LeadFactory()
    no_phone_hash = LeadFactory()
    email_only = LeadFactory(phone="")
    no_contact = LeadFactory(email="", phone="")
    Lead.objects.filter(pk__in=[no_hashes.pk, email_only.pk]).update(
        email_sha256="", phone_sha256=""
    )
    Lead.objects.filter(pk=no_phone_hash.pk).update(phone_sha256="")
    updated = dict(Lead.objects.values_list("pk", "updated_at"))

    assert backfill("--batch-size", "2") == "Filled the consumer hashes of 3 lead(s).\n"

    for lead in Lead.objects.all():
        assert (lead.email_sha256, lead.phone_sha256, lead.updated_at) == (
            consumer_hash(lead.email),
            consumer_hash(lead.phone),
            updated[lead.pk],
        )
    assert Lead.objects.get(pk=email_only.pk).phone_sha256 == ""
    assert Lead.objects.get(pk=no_contact.pk).email_sha256 == ""
    assert hashed.email_sha256 == consumer_hash(hashed.email)
    assert backfill() == "Filled the consumer hashes of 0 lead(s).\n"


def test_a_batch_size_below_one_is_refused():
    with pytest.raises(CommandError, match="--batch-size must be positive"):
        backfill("--batch-size", "0")
