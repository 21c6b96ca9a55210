"""Per-address bounds of the front door: connections, listeners and sources open at once
from one address, and failed source authentications in a window. Pure bookkeeping with
the clock passed in; the door asks before it acts and tells when things end.

One address is one IPv4 address, or one IPv6 /64 (what one home or one machine gets:
counting single IPv6 addresses would let one client open a connection from each).
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

IPV6_PREFIX = 64
# Addresses whose failures are remembered at once; past it the oldest are forgotten, so a
# flood from many addresses costs bounded memory (and gains each of them its window back).
MAX_REMEMBERED_ADDRESSES = 10_000


class Kind(Enum):
    CONNECTION = "connection"  # any connection, counted from its accept
    LISTENER = "listener"
    SOURCE = "source"


@dataclass(frozen=True)
class AddressLimits:
    connections: int = 256
    listeners: int = 128  # a school or a mobile carrier's NAT puts many behind one address
    sources: int = 16  # a studio feeds a few mounts
    failed_authentications: int = 10  # within the window; then refused until it passes
    failure_window_seconds: float = 60.0
    unlimited: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # CIDRs no bound applies to

    def bound(self, kind: Kind) -> int:
        match kind:
            case Kind.CONNECTION:
                return self.connections
            case Kind.LISTENER:
                return self.listeners
            case Kind.SOURCE:
                return self.sources


def address_key(address: str) -> str:
    """What one client counts as: its IPv4 address, or its IPv6 /64 ("" unknown)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return ""
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def networks(cidrs: Iterable[str]) -> Networks:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_within(address: str, allowed: Networks) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in allowed)


class AddressBook:
    """What each address has open now, and its recent failed authentications."""

    def __init__(self, limits: AddressLimits) -> None:
        self.limits = limits
        self._unlimited = networks(limits.unlimited)
        self._open: dict[Kind, Counter[str]] = {kind: Counter() for kind in Kind}
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused: Counter[Kind] = Counter()  # over a bound, by kind
        self.locked_out = 0  # requests refused for failed authentications

    def key(self, address: str) -> str | None:
        """The address's key, or None when no bound applies to it."""
        return None if is_within(address, self._unlimited) else address_key(address)

    def take(self, key: str | None, kind: Kind, *, force: bool = False) -> bool:
        """Count one more `kind` for `key`; False (nothing counted) when at its bound,
        unless `force` (a listener the last process handed over is kept)."""
        if key is None:
            return True
        counts = self._open[kind]
        if counts[key] >= self.limits.bound(kind) and not force:
            self.refused[kind] += 1
            return False
        counts[key] += 1
        return True

    def give_back(self, key: str | None, kind: Kind) -> None:
        if key is None:
            return
        counts = self._open[kind]
        counts[key] -= 1
        if counts[key] <= 0:
            del counts[key]

    def open_count(self, key: str, kind: Kind) -> int:
        return self._open[kind][key]

    def failed(self, key: str | None, now: float) -> None:
        """A failed source authentication (a source or title request) from `key`."""
        if key is None:
            return
        times = self._failures.pop(key, None) or deque(maxlen=self.limits.failed_authentications)
        times.append(now)
        self._failures[key] = times  # the most recent at the end
        while len(self._failures) > MAX_REMEMBERED_ADDRESSES:
            self._failures.popitem(last=False)

    def locked_for(self, key: str | None, now: float) -> float:
        """Seconds until `key` may try credentials again (0: it may now). Locked once it
        has failed `failed_authentications` times within the window."""
        if key is None:
            return 0.0
        times = self._failures.get(key)
        if times is None:
            return 0.0
        window = self.limits.failure_window_seconds
        while times and times[0] + window <= now:
            times.popleft()
        if not times:
            del self._failures[key]
        if len(times) < self.limits.failed_authentications:
            return 0.0
        self.locked_out += 1
        return times[0] + window - now
