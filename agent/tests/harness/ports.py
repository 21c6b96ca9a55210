"""Free TCP ports on loopback for services the harness starts.

Ports come from below the kernel's ephemeral range (32768-60999 on Debian): a port taken
from that range can be grabbed between our probe and the service's bind by any outgoing
connection, such as etcd members dialling each other while the cluster starts.
"""

from __future__ import annotations

import os
import random
import socket
from collections import deque

LOOPBACK = "127.0.0.1"
ALL_SERVICE_PORTS = (20000, 32767)
ATTEMPTS = 200


def worker_port_range(
    environment: dict[str, str], ports: tuple[int, int] = ALL_SERVICE_PORTS
) -> tuple[int, int]:
    """Under pytest-xdist, this worker's own slice of the range: a port handed out is
    bound only seconds later (a config written before its service starts), and another
    worker's probe in between would find it free."""
    worker, count = (
        environment.get("PYTEST_XDIST_WORKER", ""),
        environment.get("PYTEST_XDIST_WORKER_COUNT", ""),
    )
    if not (worker.removeprefix("gw").isdigit() and count.isdigit() and int(count) > 1):
        return ports
    index, size = int(worker.removeprefix("gw")), (ports[1] - ports[0] + 1) // int(count)
    return ports[0] + index * size, ports[0] + (index + 1) * size - 1


SERVICE_PORT_RANGE = worker_port_range(dict(os.environ))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


# Ports handed out recently: a service configured now may bind only later (an agent's
# config is written before its cluster starts), so the same port must not go twice.
_recent: deque[int] = deque(maxlen=4000)


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that nothing on loopback is bound to right now, and that were
    not handed out recently."""
    chosen: list[int] = []
    for _ in range(ATTEMPTS):
        port = random.randint(*SERVICE_PORT_RANGE)
        if port not in chosen and port not in _recent and _bindable(port):
            chosen.append(port)
            if len(chosen) == count:
                _recent.extend(chosen)
                return chosen
    raise RuntimeError(f"no {count} free ports in {SERVICE_PORT_RANGE} after {ATTEMPTS} tries")


def free_port() -> int:
    return free_ports(1)[0]
