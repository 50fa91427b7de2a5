"""Where the platform may send HTTP: never to itself or the networks behind it (SSRF).

A buyer's endpoint, a source's postback URL or a Slack webhook is typed in by staff, or by
whoever got hold of a staff account: left unchecked, a URL such as http://169.254.169.254/ or
http://127.0.0.1:6379/ turns a worker into a proxy into the platform's own network. So every
address must be globally routable (no loopback, private, link-local, shared, multicast, reserved
or unspecified range, which includes the cloud metadata address), unless it lies in
OUTBOUND_ALLOWED_NETWORKS (the buyer simulator's 127.0.0.1 in development and tests). An IPv6
address that carries an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is judged
by the address it carries, and only the mapped and well-known NAT64 forms are called at all. A host
that is neither an IP address nor a DNS name (such as 2130706433 or 127.1, which resolvers read as
127.0.0.1) is refused outright.

URLs are checked twice: when staff save them (a literal address, or a name that resolves now),
and again when outbound.http connects. There a name is resolved once, by GuardedResolver, and
aiohttp connects to the very addresses it checked: DNS answering differently a moment later
(rebinding) cannot slip another address in. Redirects are never followed, so an allowed host
cannot bounce a request elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
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


# IPv6 forms that carry an IPv4 address. A packet to one of them reaches (through the host's own
# stack, a NAT64 gateway, a 6to4 relay or a Teredo server) the IPv4 address inside, so it is
# judged by that address: ::ffff:169.254.169.254 is the metadata service.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, a network's own translators
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291's deprecated IPv4-compatible form
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765's IPv4-translated form (SIIT)
_LOW32 = 0xFFFFFFFF


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """Return the form and the IPv4 address an IPv6 address carries, or None.

    NAT64 addresses carry theirs in the last 32 bits (the /96 layout, the one translators use);
    a Teredo address carries its client's address XOR'd in its last 32 bits (`teredo` undoes it).
    """
    low32 = ipaddress.IPv4Address(int(ip) & _LOW32)
    teredo = ip.teredo
    carried = (
        ("IPv4-mapped", ip.ipv4_mapped),
        ("6to4", ip.sixtofour),
        ("Teredo", teredo[1] if teredo else None),
        ("NAT64", low32 if ip in _NAT64 or ip in _NAT64_LOCAL else None),
        # :: and ::1 are themselves, not IPv4-compatible forms of 0.0.0.0 and 0.0.0.1.
        ("IPv4-compatible", low32 if ip in _COMPATIBLE and int(ip) > 1 else None),
        ("IPv4-translated", low32 if ip in _TRANSLATED else None),
    )
    return next(((form, inner) for form, inner in carried if inner is not None), None)


# Of the forms above, only these two reach the embedded address itself from a host on the
# Internet; the others are deprecated transition mechanisms or a network's local translators,
# which no buyer needs: refused whatever they carry.
_REACHES_EMBEDDED = ("IPv4-mapped", "NAT64")


# Every ping and post asks about the same few buyer addresses: parse and check each one once per
# process, not on every request from the HTTP thread.
@lru_cache(maxsize=4096)
def _address_refusal(address: str, networks: tuple[str, ...]) -> str:
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    allowed = _allowed(networks)
    if any(ip in network for network in allowed):
        return ""
    embedded = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedded is None:
        # Python counts some reserved blocks (::/8 beyond the forms above) and the deprecated
        # site-local fec0::/10 as global: neither is an address a buyer has.
        if ip.is_global and not (ip.is_multicast or ip.is_reserved or _site_local(ip)):
            return ""
        return f"{ip} is a {_kind(ip)} address, which the platform never connects to"
    return _carried_refusal(ip, *embedded, allowed)


def _carried_refusal(
    ip: IPAddress, form: str, inner: ipaddress.IPv4Address, allowed: tuple[IPNetwork, ...]
) -> str:
    if form == "IPv4-mapped" and any(inner in network for network in allowed):
        return ""  # the very address a dual-stack socket reports for an allowed IPv4 peer
    if not inner.is_global or inner.is_multicast:
        return (
            f"{ip} carries {inner} ({form}): {inner} is a {_kind(inner)} address, which the "
            "platform never connects to"
        )
    if form not in _REACHES_EMBEDDED or ip in _NAT64_LOCAL:
        return f"{ip} is a {form} address, which the platform never connects to"
    return ""


def _site_local(ip: IPAddress) -> bool:
    return isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local


def _kind(ip: IPAddress) -> str:
    kinds = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local (cloud metadata)"),
        (ip.is_private, "private"),
        (ip.is_multicast, "multicast"),
        (_site_local(ip), "site-local"),
    )
    return next((kind for matches, kind in kinds if matches), "reserved or non-public")


@lru_cache(maxsize=4096)
def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A last label of digits (or 0x…) makes the host an IPv4 address to browsers and to
# getaddrinfo: 2130706433, 127.1 and 0x7f.0.0.1 all reach 127.0.0.1.
_NUMERIC_LABEL_RE = re.compile(r"^(0x[0-9a-f]*|\d+)$")


def host_refusal(host: str) -> str:
    """Return why a URL's host is not one the platform calls (it does not parse), or ''.

    A host is an IP address as written everywhere (dotted quad, or IPv6) or a DNS name of letters,
    digits and hyphens (an international name as its IDNA form). Anything else, such as the
    numeric spellings of an IPv4 address that resolvers read their own way, is refused: it would
    fail alike at every try.
    """
    if not host:
        return "the URL has no host"
    if _literal(host):
        return ""
    try:
        name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        name = ""
    labels = name.split(".") if name else []
    if (
        not labels
        or len(name) > 253
        or not all(_LABEL_RE.match(label) for label in labels)
        or _NUMERIC_LABEL_RE.match(labels[-1])
    ):
        return f"the host {host!r} is neither an IP address nor a DNS name"
    return ""


def _host(url: str) -> tuple[str, str]:
    """The URL's host and why it does not parse ('' if it does)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError as exc:  # an unclosed [ or a bad IPv6 literal
        return "", f"the URL's host does not parse ({exc})"
    return host, host_refusal(host)


def url_refusal(url: str, *, resolve: bool = True) -> str:
    """Return why a URL may not be called, or ''.

    A literal address is checked as is; a name is resolved (when `resolve`) and refused if any
    of its addresses is forbidden. A name that does not resolve now passes: the connect-time
    check refuses it then, if it must.
    """
    host, refusal = _host(url)
    if refusal:
        return refusal
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
    """Refuse (ForbiddenAddressError) a URL whose host does not parse or is a forbidden literal
    address.

    Names are checked as they resolve, by GuardedResolver.
    """
    host, refusal = _host(url)
    if not refusal and _literal(host):
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
