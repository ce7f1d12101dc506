"""Which URLs the server may call out to, and whether it listens beyond this machine."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class UrlRefused(ValueError):
    """The sentence says why, for the 422 or the delivery's last error."""


def is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_private(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_http_url(url: str, *, allow_private: bool, what: str = "URL") -> None:
    """Only http(s); hosts that resolve to loopback, private, link-local or reserved addresses only
    when `allow_private` (otherwise a webhook could be aimed at the router or a local service).
    Every resolved address is checked, so a name that also points inward is refused."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise UrlRefused(f"The {what} {url!r} is not a valid URL ({err}).") from err
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(f"The {what} must start with http:// or https:// (got {url!r}).")
    if not host:
        raise UrlRefused(f"The {what} {url!r} names no host.")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as err:
        raise UrlRefused(f"The {what}'s host {host!r} cannot be resolved.") from err
    for info in infos:
        addr = str(info[4][0])
        if _is_private(addr):
            raise UrlRefused(
                f"The {what}'s host {host!r} is on this machine or a private network ({addr}); "
                "allow private-network webhooks in the settings (api_allow_private_webhooks) "
                "to use it.")
