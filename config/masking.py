"""Mask personal data for people who may see a lead but not its consumer (Sales).

Pure functions on plain strings, no database: the dashboards, exports, admin pages and erasure
use them; they live in `config` so that every app may.
"""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "***"


def mask_email(email: str) -> str:
    """Keep the first letter of the local part and the domain: j***@example.com."""
    if not email:
        return ""
    local, at, domain = email.partition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def mask_phone(phone: str) -> str:
    """Keep the last four digits only: ***0142."""
    digits = [c for c in phone or "" if c.isdigit()]
    if not digits:
        return ""
    return MASK + "".join(digits[-4:]) if len(digits) > 4 else MASK


def mask_name(name: str) -> str:
    """Keep the initial: J***."""
    return f"{name[:1]}{MASK}" if name else ""


def webhook_display(url: str) -> str:
    """Return a webhook URL with its secret path hidden: 'hooks.slack.com/services/T0…/••••'."""
    if not url:
        return ""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    shown = "/".join(segments[:2]) if len(segments) > 2 else ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{host}/{shown}/••••" if shown else f"{host}/••••"
