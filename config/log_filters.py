"""Keep API keys out of the logs.

A source whose posting profile puts its key in a query parameter (`GET /api/v1/leads/?key=lsk_…`)
sends it in the request line: Django's `django.request` warnings carry the request (whose repr is
the full path with its query string) and the development server logs the request line. Every
key we mint starts with its kind (`lsk_`, `lbk_`), so a key is recognised wherever it appears and
replaced before any handler formats the record.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Keys are `kind + secrets.token_urlsafe(32)` (config/api_keys.py); shorter tails are no key.
KEY_RE = re.compile(r"\b(l[sb]k_)[A-Za-z0-9_\-]{8,}")
MASK = r"\1[masked]"


def mask_keys(text: str) -> str:
    """The text with every API key in it masked."""
    return KEY_RE.sub(MASK, text)


class _MaskedRequest:
    """The request a record carries, whose text form hides keys; every attribute is the real
    request's (Django's mail handler reads them)."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    def __repr__(self) -> str:
        return mask_keys(repr(self._request))

    __str__ = __repr__


class MaskApiKeys(logging.Filter):
    """Mask API keys in a record's message, its arguments and the request it carries."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_keys(a) if isinstance(a, str) else a for a in record.args)
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, _MaskedRequest):
            record.request = _MaskedRequest(request)
        return True
