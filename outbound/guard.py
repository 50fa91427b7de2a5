"""Where the platform may send HTTP: never to itself or the networks behind it (SSRF).

A buyer's endpoint, a source's postback URL or a Slack webhook is typed in by staff, or by
whoever got hold of a staff account: left unchecked, a URL such as http://169.254.169.254/ or
http://127.0.0.1:6379/ turns a worker into a proxy into the platform's own network. So every
address must be globally routable (no loopback, private, link-local, shared, multicast, reserved
or unspecified range, which includes the cloud metadata address), unless it lies in
OUTBOUND_ALLOWED_NETWORKS (the buyer simulator's 127.0.0.1 in development and tests).

URLs are checked twice: when staff save them (a literal address, or a name that resolves now),
and again when outbound.http connects. There a name is resolved once, by GuardedResolver, and
aiohttp connects to the very addresses it checked: DNS answering differently a moment later
(rebinding) cannot slip another address in. Redirects are never followed, so an allowed host
cannot bounce a request elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ForbiddenAddressError(OSError):
    """A destination the platform must not connect to."""


@lru_cache(maxsize=8)
def _allowed(networks: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def allowed_networks() -> tuple[IPNetwork, ...]:
    return _allowed(tuple(settings.OUTBOUND_ALLOWED_NETWORKS))


def address_refusal(address: str) -> str:
    """Return why the platform may not connect to `address` (an IP literal), or ''."""
    return _address_refusal(address, tuple(settings.OUTBOUND_ALLOWED_NETWORKS))


# Every ping and post asks about the same few buyer addresses: parse and check each one once per
# process, not on every request from the HTTP thread.
@lru_cache(maxsize=4096)
def _address_refusal(address: str, networks: tuple[str, ...]) -> str:
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _allowed(networks)):
        return ""
    if ip.is_global and not ip.is_multicast:
        return ""
    return f"{ip} is a {_kind(ip)} address, which the platform never connects to"


def _kind(ip: IPAddress) -> str:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private:
        return "private"
    if ip.is_multicast:
        return "multicast"
    return "reserved or non-public"


@lru_cache(maxsize=4096)
def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def url_refusal(url: str, *, resolve: bool = True) -> str:
    """Return why a URL may not be called, or ''.

    A literal address is checked as is; a name is resolved (when `resolve`) and refused if any
    of its addresses is forbidden. A name that does not resolve now passes: the connect-time
    check refuses it then, if it must.
    """
    host = urlsplit(url).hostname or ""
    if not host:
        return "the URL has no host"
    if _literal(host):
        return address_refusal(host)
    addresses: list[str] = []
    if host == "localhost" or host.endswith(".localhost"):
        addresses = ["127.0.0.1"]
    elif resolve:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            infos = []
        addresses = [str(info[4][0]) for info in infos]
    refusals = [r for r in map(address_refusal, addresses) if r]
    return f"{host} resolves to {refusals[0]}" if refusals else ""


def check_outbound_url(url: str) -> None:
    """Refuse (ForbiddenAddressError) a URL whose host is a forbidden literal address.

    Names are checked as they resolve, by GuardedResolver.
    """
    host = urlsplit(url).hostname or ""
    if _literal(host):
        refusal = address_refusal(host)
        if refusal:
            raise ForbiddenAddressError(refusal)


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses names resolving to a forbidden address.

    It hands aiohttp the addresses it checked, and aiohttp connects to those (cached for the
    connector's DNS TTL), never resolving the name again. A name is refused when any of its
    addresses is forbidden, so no choice among them can reach one. aiohttp does not resolve
    literal addresses: `check_outbound_url` covers those before the request starts.
    """

    def __init__(self, resolver: AbstractResolver | None = None) -> None:
        self._resolver = resolver or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            refusal = address_refusal(result["host"])
            if refusal:
                raise ForbiddenAddressError(f"{host} resolves to {refusal}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


def webhook_url_refusal(url: str) -> str:
    """Return why a webhook URL (Slack's) may not be called (syntax, or the guard), or ''."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return "Enter the full URL Slack gave, starting with https://."
    refusal = url_refusal(url)
    return f"The platform may not call this address: {refusal}." if refusal else ""
