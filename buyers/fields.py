"""A model field that keeps buyer credentials encrypted at rest (Fernet)."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode())
    except ValueError:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be 32 url-safe base64-encoded bytes "
            "(python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        ) from None


def encrypt(plaintext: str) -> str:
    return _PREFIX + _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(_PREFIX):
        raise ValueError("not an encrypted value")
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(stored[len(_PREFIX) :]).decode()
    except InvalidToken:
        # The key changed since the value was stored: fail loudly instead of sending garbage.
        raise ImproperlyConfigured(
            "A stored buyer credential cannot be decrypted with FIELD_ENCRYPTION_KEY "
            "(was SECRET_KEY or FIELD_ENCRYPTION_KEY changed?)"
        ) from None


def mask(secret: str) -> str:
    """Return a hint that identifies a secret without revealing it."""
    if not secret:
        return ""
    if len(secret) <= 8:
        return "••••"
    return f"••••{secret[-4:]}"


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code sees plaintext."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
