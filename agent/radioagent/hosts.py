"""Hosts as they are written in URLs. Pure.

An IPv6 address goes in brackets in a URL's authority (RFC 3986 3.2.2): `http://::1:8000/`
is not a URL, `http://[::1]:8000/` is. Programs that take a bare host (a socket address,
Liquidsoap's `output.icecast(host=...)`) get the address as it is, not this.
"""

from __future__ import annotations

import re

# What a Host header may hold for it to be copied into a playlist: a name or IPv4
# address, or a bracketed IPv6 address, each with an optional port.
_HOST_HEADER = re.compile(
    r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)


def url_host(host: str) -> str:
    """`host` for a URL: an IPv6 address in brackets; a name, an IPv4 address or an
    address already in brackets as it is."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def host_port(host: str, port: int) -> str:
    """The authority of a URL: `192.0.2.1:8000`, `[2001:db8::1]:8000`."""
    return f"{url_host(host)}:{port}"


def valid_host(host: str) -> str | None:
    """A Host header if it is a plain host[:port] (it goes into a playlist), else None."""
    return host if host and _HOST_HEADER.fullmatch(host) else None
