"""Keep API keys and admin search terms out of the logs.

A source whose posting profile puts its key in a query parameter (`GET /api/v1/leads/?key=lsk_…`)
sends it in the request line: Django's `django.request` warnings carry the request (whose repr is
the full path with its query string) and the development server logs the request line. Every
key we mint starts with its kind (`lsk_`, `lbk_`), so a key is recognised wherever it appears and
replaced before any handler formats the record.

Staff search a list by a consumer's e-mail or phone (`/admin/leads/lead/?q=…`); the term rides
in `q`, and URL-encoded in `_changelist_filters` (or in a login's `next`) on every page opened
from that list. Its value is masked the same way, in Django's records and in gunicorn's access
log (`config/gunicorn.py` logs through `AccessLogger` below).
"""

from __future__ import annotations

import logging
import re
from typing import Any

# Keys are `kind + secrets.token_urlsafe(32)` (config/api_keys.py); shorter tails are no key.
KEY_RE = re.compile(r"\b(l(?:sk|bk|st)_)[A-Za-z0-9_\-]{8,}")
MASK = r"\1[masked]"
# `q=` or `_changelist_filters=`, plain or URL-encoded inside another parameter (`%3Fq%3D`),
# up to the next parameter, the end of the URL or of the quoted text around it.
SEARCH_RE = re.compile(
    r"((?:^|[?&]|%3F|%26)(?:q|_changelist_filters)(?:=|%3D))(?:(?!%26)[^&\s\"'#])*",
    re.IGNORECASE,
)


def mask_keys(text: str) -> str:
    """The text with every API key and every admin search term in it masked."""
    return SEARCH_RE.sub(MASK, KEY_RE.sub(MASK, text))


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


def _masked(value: Any) -> Any:
    return mask_keys(value) if isinstance(value, str) else value


class MaskApiKeys(logging.Filter):
    """Mask API keys and search terms in a record's message, its arguments and the request it
    carries."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) for a in record.args)
        elif isinstance(record.args, dict):  # gunicorn's access log: a mapping of atoms
            record.args = {name: _masked(value) for name, value in record.args.items()}
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, _MaskedRequest):
            record.request = _MaskedRequest(request)
        return True
