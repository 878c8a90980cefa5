"""Where webhooks may point: PEMREG_WEBHOOK_ALLOWED_HOSTS, one rule for creation and connection.

Each entry is `host` (any port) or `host:port` (`[v6]:port` for IPv6), matched exactly against the URL's
host (no suffix or wildcard matching). A URL whose host is listed may still resolve to an address that
is not public (loopback, private, link-local, ...): such an address is used only when it is itself
listed, so a listed name cannot be pointed at the registry's own network by DNS. The URL is checked when
a webhook is created or edited (`check_url`); every connection re-checks the resolved addresses
(`check_address`, called by the sender at connect time).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from registry.errors import InvalidInput

MAX_URL = 2048
SCHEMES = {"http": 80, "https": 443}
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Entry:
    host: str  # lowercase; an IPv6 address without brackets
    port: int | None  # None: any port

    def matches(self, host: str, port: int) -> bool:
        return self.host == host and self.port in (None, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # lowercase, without IPv6 brackets
    port: int


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"PEMREG_WEBHOOK_ALLOWED_HOSTS: {entry!r}: bad port")
    return int(text)


def canonical_host(host: str) -> str:
    """Lowercase; an IP address in its canonical text (so `0:0::1` and `::1` match)."""
    host = host.strip().lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def parse_entry(raw: str) -> Entry:
    entry = raw.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = _port(rest[1:], raw) if rest.startswith(":") else None
        if rest and port is None:
            raise ValueError(f"PEMREG_WEBHOOK_ALLOWED_HOSTS: {raw!r}: expected [address]:port")
        return Entry(canonical_host(host), port)
    if entry.count(":") > 1:  # a bare IPv6 address
        return Entry(str(ipaddress.IPv6Address(entry)), None)
    host, sep, port_text = entry.partition(":")
    if not host or "/" in host or "@" in host:
        raise ValueError(f"PEMREG_WEBHOOK_ALLOWED_HOSTS: {raw!r} is not host or host:port")
    return Entry(canonical_host(host), _port(port_text, raw) if sep else None)


@dataclass(frozen=True)
class AllowedHosts:
    entries: tuple[Entry, ...]

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        return cls(tuple(parse_entry(item) for item in text.split(",") if item.strip()))

    def allows(self, host: str, port: int) -> bool:
        return any(e.matches(host, port) for e in self.entries)

    def __str__(self) -> str:
        return ", ".join(map(str, self.entries)) or "none"


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidInput(f"url: not a valid URL ({exc})", field="url") from None
    return parts


def check_url(url: str, allowed: AllowedHosts) -> Target:
    """A webhook URL: http(s), no credentials or fragment, host[:port] listed. InvalidInput otherwise."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidInput(f"url: 1 to {MAX_URL} characters", field="url")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidInput("url: spaces and control characters are not allowed", field="url")
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidInput("url: must start with http:// or https://", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url: credentials in the URL are not supported (put a token in the path)", field="url"
        )
    if parts.fragment:
        raise InvalidInput("url: a fragment (#...) is never sent; leave it out", field="url")
    host = canonical_host(parts.hostname or "")
    if not host:
        raise InvalidInput("url: has no host", field="url")
    port = parts.port or SCHEMES[scheme]
    if not allowed.allows(host, port):
        shown = f"[{host}]" if ":" in host else host
        raise InvalidInput(
            f"url: {shown}:{port} is not an allowed webhook host (PEMREG_WEBHOOK_ALLOWED_HOSTS: {allowed})",
            field="url",
        )
    return Target(url=url, scheme=scheme, host=host, port=port)


def _plain(address: IP) -> IP:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


class BlockedAddress(Exception):
    """A resolved address the allow list does not cover: the connection is never opened."""


def check_address(address: str, host: str, port: int, allowed: AllowedHosts) -> None:
    """At connect time: a public address of a listed host, or a non-public one listed as an address."""
    ip = _plain(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip.is_multicast or ip.is_unspecified:
        raise BlockedAddress(f"{host} resolves to {ip}, which is never a webhook target")
    if ip.is_global:
        if allowed.allows(host, port):
            return
        raise BlockedAddress(f"{host}:{port} is not an allowed webhook host")
    if allowed.allows(str(ip), port):
        return
    raise BlockedAddress(
        f"{host} resolves to {ip}, a non-public address; "
        f"list {ip} in PEMREG_WEBHOOK_ALLOWED_HOSTS to allow it"
    )
