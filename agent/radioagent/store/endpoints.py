"""Which etcd endpoints a client may use: the configured ones first (the node's own member
or gateway), then the members etcd itself lists, so an agent whose own member died moves
on to the others, and members added or removed later are followed without a new config.
Pure."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def endpoint_from_url(url: str) -> str | None:
    """`https://10.0.0.2:2379` -> `10.0.0.2:2379` (IPv6 stays bracketed); None for a URL
    without a host or port, or a Unix socket."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def merged_endpoints(configured: Iterable[str], member_urls: Iterable[str]) -> tuple[str, ...]:
    """The configured endpoints in their order, then each member's client URLs not
    already among them."""
    merged = list(dict.fromkeys(configured))
    for url in member_urls:
        endpoint = endpoint_from_url(url)
        if endpoint is not None and endpoint not in merged:
            merged.append(endpoint)
    return tuple(merged)


def index_after_change(current: str, endpoints: tuple[str, ...]) -> int | None:
    """Where the current endpoint sits in a new list; None: it is gone (start over from
    the first, with a new client)."""
    return endpoints.index(current) if current in endpoints else None
