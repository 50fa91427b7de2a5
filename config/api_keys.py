"""API keys as partners and buyers hold them: a random token with a recognisable prefix, shown
once. Only its SHA-256 is stored, with its first characters so that people can tell keys apart.

Sources (`leads.SourceApiKey`, `lsk_…`) and buyers (`buyers.BuyerApiKey`, `lbk_…`) share the row
(`ApiKey`), the services (`api_key_create`, `api_key_revoke`, `api_key_find`) and the bearer
authentication (`BearerKeyAuthentication`); each owner adds only what is its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from django.db import models
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

# last_used_at is a hint for ops, not an audit log: refresh it at most this often per key so that
# a busy partner does not turn every request into an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class MintedKey:
    raw: str  # shown once, never stored
    prefix: str  # stored: tells keys apart in lists and logs
    hashed: str  # stored: what a request's key is checked against


def api_key_hash(raw_key: str) -> str:
    """Return what is stored of a key."""
    # Keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_mint(kind: str) -> MintedKey:
    """Make a new key starting with `kind` (e.g. "lsk_" for sources, "lbk_" for buyers)."""
    raw = kind + secrets.token_urlsafe(32)
    return MintedKey(raw=raw, prefix=raw[: len(kind) + 8], hashed=api_key_hash(raw))


class ApiKey(models.Model):
    """One key of an owner (a source, a buyer). Concrete models add the owner's foreign key,
    named by `owner_field`, and their `kind` (the prefix every key of theirs starts with)."""

    owner_field: ClassVar[str]
    kind: ClassVar[str]
    # Keys an owner had before it minted its own (without `kind`), found by their hash too.
    legacy_key_re: ClassVar[re.Pattern[str] | None] = None

    name = models.CharField(max_length=120, blank=True, help_text="What the key is for.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({getattr(self, self.owner_field)})"

    @property
    def owner(self) -> Any:
        return getattr(self, self.owner_field)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


KeyT = TypeVar("KeyT", bound=ApiKey)


def api_key_create(
    *, model: type[KeyT], owner: models.Model, name: str = "", **fields: Any
) -> tuple[KeyT, str]:
    """Mint a key for owner (with the model's own `fields`); return the row and the key itself,
    which is never stored."""
    key = api_key_mint(model.kind)
    api_key = model._default_manager.create(
        **{model.owner_field: owner},
        name=name,
        prefix=key.prefix,
        hashed_key=key.hashed,
        **fields,
    )
    return api_key, key.raw


def api_key_revoke(*, api_key: ApiKey) -> bool:
    """Revoke a key; return False when it was already revoked."""
    now = timezone.now()
    keys = type(api_key)._default_manager.filter(pk=api_key.pk, revoked_at__isnull=True)
    updated = keys.update(revoked_at=now)
    if updated:
        api_key.revoked_at = now
    return bool(updated)


def api_key_find(
    *,
    model: type[KeyT],
    raw_key: str,
    lookup: Callable[[str], KeyT | None] | None = None,
) -> KeyT | None:
    """Return the live key matching raw_key (with its owner), or None; note that it was used.

    `lookup(hashed)` replaces the default query where an owner caches its keys.
    """
    legacy = model.legacy_key_re is not None and model.legacy_key_re.fullmatch(raw_key)
    if not raw_key.startswith(model.kind) and not legacy:
        return None
    hashed = api_key_hash(raw_key)
    if lookup is None:
        api_key = (
            model._default_manager.select_related(model.owner_field)
            .filter(hashed_key=hashed, revoked_at__isnull=True)
            .order_by()
            .first()
        )
    else:
        api_key = lookup(hashed)
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        type(api_key)._default_manager.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


class KeyPrincipal:
    """Base of the user a key's owner is to DRF (`principal_for`): authenticated and active."""

    is_authenticated: ClassVar[bool] = True
    is_active: ClassVar[bool] = True


class BearerKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>` with a live key; subclasses say whose keys and how a
    principal is made of one (`principal_for`)."""

    # Named in the errors: "Send your <what> as `Authorization: Bearer <key>`."
    what = "API key"

    def find_key(self, raw_key: str) -> ApiKey | None:
        raise NotImplementedError

    def principal_for(self, api_key: Any) -> Any:
        raise NotImplementedError

    def refused(self, reason: str) -> None:
        """Called for each refused or credential-less request (e.g. to count them)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header:
            self.refused("no credentials")
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:
            self.refused("not a bearer token")
            raise exceptions.AuthenticationFailed(
                f"Send your {self.what} as `Authorization: Bearer <key>`."
            )
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raw_key = ""
        api_key = self.find_key(raw_key) if raw_key else None
        if api_key is None:
            self.refused("unknown or revoked key")
            raise exceptions.AuthenticationFailed(
                f"The {self.what} is unknown or has been revoked."
            )
        return self.principal_for(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


# drf-spectacular registers every subclass in an untyped __init_subclass__.
class BearerScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The OpenAPI security scheme of a bearer credential; subclasses name the authentication
    class (`target_class`), the scheme (`name`) and the credential (`description`)."""

    description = ""

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": self.description}
