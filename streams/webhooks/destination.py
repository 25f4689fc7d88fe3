"""Where the platform may send HTTP requests for an agent: URL shape on publish, address on send."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from urllib.parse import urlsplit

import httpx

MAX_URL_CHARS = 2048
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*\.?")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook destination, or None: checked on publish, never on a call."""
    if len(url) > MAX_URL_CHARS:
        return f"at most {MAX_URL_CHARS} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        httpx.URL(url)  # the client that sends it must read it the same way
    except (ValueError, httpx.InvalidURL) as err:
        return f"not a valid URL: {err}"
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    host = parts.hostname
    if not host:
        return "must name a host"
    if _ip(host) is None and not _HOST_NAME.fullmatch(host):
        return f"host {host!r} is not a valid host name"
    return None


async def private_address(url: str) -> str | None:
    """The address ``url``'s host resolves to when it is not on the public internet, else None.

    Loopback, private, link-local (cloud metadata at 169.254.169.254), reserved: a tenant must
    not reach the platform's own network through a webhook. Name resolution failing is left to
    the request itself, which reports it.
    """
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None  # not a URL at all: the request fails on it, and says so
    literal = _ip(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except (OSError, UnicodeError):  # IDNA refuses empty or 64+ character labels
            return None
        addresses = [a for a in (_ip(str(info[4][0])) for info in infos) if a is not None]
    for address in addresses:
        if not _public(address):
            return str(address)
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
