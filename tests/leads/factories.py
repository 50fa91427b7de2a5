from __future__ import annotations

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from leads.intake import consumer_hash
from leads.models import (
    FieldType,
    Lead,
    LeadStatus,
    PayoutModel,
    PostingFormat,
    PostingProfile,
    Source,
    Vertical,
    VerticalField,
)
from leads.services import source_api_key_create


class VerticalFactory(DjangoModelFactory[Vertical]):
    class Meta:
        model = Vertical
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"vertical-{n}")
    name = factory.Sequence(lambda n: f"Vertical {n}")
    duplicate_fields = factory.LazyFunction(lambda: ["email", "phone"])


class VerticalFieldFactory(DjangoModelFactory[VerticalField]):
    class Meta:
        model = VerticalField

    vertical = factory.SubFactory(VerticalFactory)
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"field_{n}")
    label = factory.LazyAttribute(lambda o: o.name.replace("_", " ").capitalize())
    field_type = FieldType.STRING


class SourceFactory(DjangoModelFactory[Source]):
    class Meta:
        model = Source
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Partner {n}")
    payout_model = PayoutModel.FIXED_CPL
    payout_amount = Decimal("8.00")

    @factory.post_generation
    def verticals(self, create: bool, extracted: list[Vertical] | None, **kwargs: object) -> None:
        if create and extracted:
            self.verticals.add(*extracted)


def api_key_for(source: Source, name: str = "test") -> str:
    """Mint a key for source and return the plaintext key."""
    return source_api_key_create(source=source, name=name)[1]


class LeadFactory(DjangoModelFactory[Lead]):
    class Meta:
        model = Lead

    vertical = factory.SubFactory(VerticalFactory)
    source = factory.SubFactory(SourceFactory)
    status = LeadStatus.ACCEPTED
    email = factory.Sequence(lambda n: f"consumer{n}@example.com")
    phone = factory.Sequence(lambda n: f"+1312555{n % 10000:04d}")
    # As intake fills them.
    email_sha256 = factory.LazyAttribute(lambda o: consumer_hash(o.email))
    phone_sha256 = factory.LazyAttribute(lambda o: consumer_hash(o.phone))
    zip_code = "60601"
    state = "IL"
    data = factory.LazyAttribute(
        lambda o: {
            "first_name": "Jane",
            "last_name": "Doe",
            "email": o.email,
            "phone": o.phone,
            "zip_code": o.zip_code,
            "state": o.state,
        }
    )
    raw_body = factory.LazyAttribute(lambda o: f'{{"vertical": "{o.vertical.slug}"}}')


class PostingProfileFactory(DjangoModelFactory[PostingProfile]):
    class Meta:
        model = PostingProfile

    source = factory.SubFactory(SourceFactory)
    format = PostingFormat.ENVELOPE
