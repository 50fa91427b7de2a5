"""API keys as partners and buyers hold them: a random token with a recognisable prefix, shown
once. Only its SHA-256 is stored, with its first characters so that people can tell keys apart."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


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
