"""systemd's file descriptor store (the unit's FileDescriptorStoreMax): sockets kept by the
service manager while the agent restarts, and passed to the next process (LISTEN_FDS).

systemd keeps them through a restart (`systemctl restart`, Restart=) and closes them when
the unit stops for good; it drops one by itself when its peer hangs up.
"""

from __future__ import annotations

import logging
import os

from systemd import daemon

log = logging.getLogger(__name__)
MAX_FDS_PER_MESSAGE = 250  # the kernel passes at most 253 (SCM_MAX_FD) in one message


def available() -> bool:
    """Whether a service manager listens (NOTIFY_SOCKET); one that keeps no store for the
    unit ignores what it is sent, and the sockets close with this process as before."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def store(name: str, fds: list[int]) -> bool:
    sent = True
    for start in range(0, len(fds), MAX_FDS_PER_MESSAGE):
        batch = fds[start : start + MAX_FDS_PER_MESSAGE]
        sent = daemon.notify(f"FDSTORE=1\nFDNAME={name}", fds=batch) and sent
    return sent


def forget(name: str) -> None:
    """Out of the store (every descriptor of that name): this process owns them now."""
    daemon.notify(f"FDSTOREREMOVE=1\nFDNAME={name}")


def inherited() -> dict[int, str]:
    """The descriptors the service manager passed to this process, by number. Once read,
    the environment no longer names them, and none is passed on to a child."""
    fds: dict[int, str] = daemon.listen_fds_with_names(unset_environment=True)
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds
