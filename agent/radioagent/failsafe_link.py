"""Failsafe on quorum loss, carried: a leader's rounds of pings to every other node's
front door, and a node's answers to them. The rules are coordination/failsafe.py's."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from radioagent.config import Timing
from radioagent.coordination.election import Leadership, Role
from radioagent.coordination.failsafe import (
    FailsafeRefused,
    Peer,
    Ping,
    acknowledged,
    answer_body,
    parse_ping,
    ping_target,
    refusal,
    round_holds,
    still_held,
)
from radioagent.hosts import host_port

log = logging.getLogger(__name__)
RECORD_BYTES = 32  # the state file's one record: a wall-clock time, padded, and a newline


@dataclass(frozen=True)
class Followed:
    """The last ping this node acknowledged from a leader that held."""

    leader: str
    epoch: int
    at: float  # the agent's clock
    at_ms: int  # the ping's own time (the leader's wall clock): older ones are replays


class FailsafeLink:
    def __init__(
        self,
        key: str,
        node_name: str,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
        state_file: Path | None = None,
    ) -> None:
        """`state_file`: where the last acknowledgement's time is kept across restarts;
        None: nowhere (tests of the protocol alone)."""
        self._key = key.encode()
        self._state_file = state_file
        self._me = node_name
        self._clock = clock
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None
        self.held_since: float | None = None  # the leader's last complete round, sent at
        self.followed: Followed | None = None
        self.rounds: Counter[str] = Counter()  # by result: held, failed
        self.answers: Counter[str] = Counter()  # by result: acknowledged, refused, invalid
        self._last_missing: tuple[str, ...] | None = None
        # The newest ping acknowledged (leader, its at_ms): anything not newer is a replay.
        self._newest: tuple[str, int] | None = None
        # When this node last acknowledged a ping (the agent's clock), this life or the
        # one before: nothing is taken for a while after (coordination/failsafe.py).
        self.acknowledged_at: float | None = self._previous_life()

    # --- the acknowledgement kept on disk ---------------------------------------------------

    def _previous_life(self) -> float | None:
        """The previous life's last acknowledgement on our clock. Unknown (unreadable, or
        the file cannot be written this life): as if acknowledged now, so nothing is
        taken before any hold resting on it has run out."""
        if self._state_file is None:
            return None
        try:
            stored: float | None = float(self._state_file.read_text())
        except FileNotFoundError:
            stored = None
        except (OSError, ValueError) as error:
            log.warning(
                "failsafe: %s unreadable (%s): waiting as if just acknowledged",
                self._state_file,
                error,
            )
            return self._clock()
        if not self._record(stored or 0.0):
            return self._clock()
        if stored is None:
            return None
        return self._clock() - max(0.0, self._wall_clock() - stored)

    def _record(self, wall: float) -> bool:
        """Keep `wall` (the wall clock of an acknowledgement) in the state file, rewritten
        in place at a fixed width: a full /var (the journal, etcd's data) must not stop
        this node from acknowledging, and bytes the file already has need no free block.
        One short write at offset 0 is whole or absent to a reader after a process death;
        a torn or unreadable one reads as "just acknowledged" (`_previous_life`)."""
        assert self._state_file is not None  # noqa: S101 - called only with one
        record = f"{wall:.3f}".rjust(RECORD_BYTES - 1).encode() + b"\n"
        try:
            descriptor = os.open(self._state_file, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                if os.pwrite(descriptor, record, 0) != len(record):
                    raise OSError("short write")
                if os.fstat(descriptor).st_size > len(record):  # an older, longer record
                    os.ftruncate(descriptor, len(record))
            finally:
                os.close(descriptor)
        except OSError as error:
            log.warning("failsafe: cannot keep acknowledgements in %s: %s", self._state_file, error)
            return False
        return True

    # --- the leader's side ----------------------------------------------------------------

    def leader_held(self, now: float, timing: Timing) -> bool:
        return still_held(now, self.held_since, timing)

    async def ask_round(
        self, peers: tuple[Peer, ...], epoch: int, timeout: float, timing: Timing
    ) -> bool:
        """Ask every peer at once; True (and held from the round's start) when all
        acknowledged. Each ping says whether this leader holds now, so a replica follows
        only a leader whose rounds are complete."""
        sent = self._clock()
        at_ms = int(self._wall_clock() * 1000)
        held = self.leader_held(sent, timing)
        answers = await asyncio.gather(
            *(
                self._ask(peer, Ping(self._me, epoch, peer.name, at_ms, held), timeout)
                for peer in peers
            )
        )
        results = dict(zip((peer.name for peer in peers), answers, strict=True))
        missing = tuple(name for name, ok in results.items() if not ok)
        holds = round_holds(results, peers)
        if holds:
            if self.held_since is None or self._last_missing != ():
                log.warning(
                    "failsafe: cut off from etcd, and every other node (%s) acknowledged: "
                    "keeping the leadership",
                    ", ".join(results) or "none",
                )
            self.held_since = sent
            self.rounds["held"] += 1
        else:
            if missing != self._last_missing:
                log.warning("failsafe: no acknowledgement from %s", ", ".join(missing) or "anyone")
            self.rounds["failed"] += 1
        self._last_missing = missing
        return holds

    def end_round(self) -> None:
        """Etcd answers again (or we no longer lead): rounds start afresh next time."""
        self.held_since = None
        self._last_missing = None

    async def _ask(self, peer: Peer, ping: Ping, timeout: float) -> bool:
        if not peer.port:
            return False  # known to the cluster but down: it cannot acknowledge
        url = f"http://{host_port(peer.host, peer.port)}{ping_target(self._key, ping)}"
        try:
            async with self._http().get(
                url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
            ) as reply:
                body = await reply.content.read(4096)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
        return reply.status == 200 and acknowledged(self._key, peer.name, ping, body)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- every node's side ------------------------------------------------------------------

    def answer(self, query: str, leadership: Leadership, cut_off: bool) -> tuple[int, bytes]:
        """The HTTP status and JSON body for a ping in `query`."""
        try:
            ping = parse_ping(query, self._key, self._me, self._wall_clock())
        except FailsafeRefused as refused:
            self.answers["invalid"] += 1  # counted, not logged: anyone can send them
            log.debug("failsafe: refused a ping: %s", refused.reason)
            return refused.status, json.dumps({"error": refused.reason}).encode()
        newest = self._newest
        why_not = refusal(
            ping, leadership, cut_off, newest[1] if newest and newest[0] == ping.leader else None
        )
        if (
            why_not is None
            and self._state_file is not None
            and not self._record(self._wall_clock())
        ):
            why_not = "this node cannot keep its acknowledgement on disk"
        if why_not is None:
            now = self._clock()
            self._newest = (ping.leader, ping.at_ms)
            self.acknowledged_at = now
            if ping.held:
                followed = self.followed
                if followed is None or followed.leader != ping.leader:
                    log.warning(
                        "failsafe: cut off from etcd; following %s on its word", ping.leader
                    )
                self.followed = Followed(ping.leader, ping.epoch, now, ping.at_ms)
            self.answers["acknowledged"] += 1
        else:
            self.answers["refused"] += 1
        return 200, answer_body(self._key, self._me, ping, why_not)

    def replica_held(self, now: float, leadership: Leadership, timing: Timing) -> bool:
        """This replica acknowledged its own leader lately: it goes on following it."""
        followed = self.followed
        return (
            followed is not None
            and leadership.role is Role.REPLICA
            and leadership.leader_name == followed.leader
            and leadership.epoch in (None, followed.epoch)
            and still_held(now, followed.at, timing)
        )
