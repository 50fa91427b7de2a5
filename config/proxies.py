"""Forwarded headers (`X-Forwarded-Proto`, `X-Forwarded-For`, …) are believed only when the
connection comes from a proxy listed in TRUSTED_PROXIES.

Anyone can send `X-Forwarded-Proto: https`; Django takes a request carrying it for HTTPS
(SECURE_PROXY_SSL_HEADER), which skips the HTTPS redirect and would let a secure cookie be
set over plain HTTP. `TrustedProxyMiddleware` drops those headers from every other peer before
anything reads them, and `client_ip` names the client the login throttle counts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:  # settings.py imports this module: it loads no more of Django than settings
    from django.http import HttpRequest, HttpResponse

FORWARDED_HEADERS = (
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(entries: Iterable[str]) -> list[Network]:
    """TRUSTED_PROXIES' entries (addresses or CIDR networks, host bits allowed: `10.0.0.1/8`) as
    networks; Django's settings and gunicorn's `forwarded_allow_ips` both read them so.
    Raises ValueError naming an entry that is neither."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _is_proxy(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Return whether the request's connection comes from a trusted proxy."""
    return _is_proxy(request.META.get("REMOTE_ADDR", ""), settings.TRUSTED_PROXY_NETWORKS)


def client_ip(request: HttpRequest) -> str:
    """The client's address: the connection's, or behind trusted proxies the last address in
    X-Forwarded-For that is not one of them (what a client writes further left may be forged)."""
    remote = request.META.get("REMOTE_ADDR", "")
    networks = settings.TRUSTED_PROXY_NETWORKS
    if not _is_proxy(remote, networks):
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([a for a in forwarded if a]):
        if _is_proxy(address, networks):
            continue
        try:
            return str(ipaddress.ip_address(address))
        except ValueError:
            break  # not an address our proxy wrote: count the proxy's own
    return remote


class TrustedProxyMiddleware:
    """Drop forwarded headers sent by anyone but a trusted proxy; runs first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not from_trusted_proxy(request):
            for header in FORWARDED_HEADERS:
                request.META.pop(header, None)
        return self.get_response(request)
