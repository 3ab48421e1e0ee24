"""Webhook URLs, alert rules' and event endpoints' alike: http or https to a public address.

Link-local addresses (169.254.0.0/16, fe80::/10) and cloud metadata endpoints are
always refused: they are how a webhook reads a server's credentials. Loopback, private
and other non-public addresses are refused unless ``alert_webhook_allow_private`` is
set (a receiver on the same host or network, and tests). A host name is checked as
written when the rule or endpoint is saved, and again by every address it resolves to
right before each delivery, so a name that later points inward is refused then; the
delivery connects to the address checked, not to a second lookup's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2000
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(ValueError):
    """A URL webhooks may not be delivered to; the message says why."""


def _check_address(address: IPAddress, *, allow_private: bool) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        raise UnsafeUrl("cloud metadata addresses are refused")
    if any(address in network for network in LINK_LOCAL):
        raise UnsafeUrl("link-local addresses are refused")
    if address.is_unspecified or address.is_multicast:
        raise UnsafeUrl(f"{address} is not a destination")
    if not address.is_global and not allow_private:
        raise UnsafeUrl(f"{address} is not a public address (loopback or private)")


def _host(url: str) -> tuple[str, int]:
    if len(url) > MAX_URL:
        raise UnsafeUrl(f"longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are accepted")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("the URL has no host")
    return host, port or (443 if parts.scheme == "https" else 80)


def check_url(url: str, *, allow_private: bool) -> None:
    """Raise UnsafeUrl unless ``url`` may receive webhooks, judged as written."""
    host, _port = _host(url)
    if host in METADATA_HOSTS:
        raise UnsafeUrl("cloud metadata addresses are refused")
    if host == "localhost" or host.endswith(".localhost"):
        _check_address(ipaddress.ip_address("127.0.0.1"), allow_private=allow_private)
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: its addresses are checked before each delivery
    _check_address(address, allow_private=allow_private)


async def resolved_address(url: str, *, allow_private: bool) -> str:
    """``check_url``, then every address the host resolves to now: the first of them, which
    the delivery connects to, so a name cannot resolve elsewhere between the check and the
    connection (DNS rebinding)."""
    check_url(url, allow_private=allow_private)
    host, port = _host(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"{host} does not resolve: {exc}") from None
    if not infos:
        raise UnsafeUrl(f"{host} does not resolve")
    for info in infos:
        _check_address(ipaddress.ip_address(info[4][0]), allow_private=allow_private)
    return str(infos[0][4][0])
