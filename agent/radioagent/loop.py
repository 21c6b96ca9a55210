"""The agent's loop: read state, decide, act. One place, like Patroni's run_cycle.

Three tasks share one event loop:
- the cycle, every loop_wait or at once when the watch sees a change: read everything,
  campaign if nobody leads, reconcile Icecast, publish this node's status;
- the lease keepalive, every retry_timeout / 4: the only proof that etcd (a quorum of
  it) still hears us; serializable reads succeed even on a partitioned member;
- the fence, which steps down a leader cut off from etcd for retry_timeout, whatever the
  cycle is blocked on, so it never holds sources once its lease may have expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from radioagent import __version__
from radioagent.config import AgentConfig, Limits, Timing
from radioagent.coordination.election import (
    Leadership,
    Role,
    leadership_from_state,
    must_hand_over,
    must_stop_leading,
    should_campaign,
)
from radioagent.coordination.keys import KeyLayout
from radioagent.coordination.state import ClusterState
from radioagent.coordination.store import EtcdStore, EtcdUnavailable
from radioagent.deadair import (
    DEFAULT_DEAD_AIR_SECONDS,
    MountAir,
    air_reports,
    live_ages,
    update_air,
)
from radioagent.frontdoor.server import FrontDoor
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.holding.feeder import HoldingFeeds
from radioagent.icecast.control import IcecastControl, IcecastError
from radioagent.icecast.render import IcecastPlan, render_icecast_config
from radioagent.icecast.stats import IcecastStats
from radioagent.localapi import LocalApi, LocalView
from radioagent.model import LIVE_MOUNT_PREFIX, NodeStatus
from radioagent.traffic.prediction import report_window
from radioagent.transcoding.assignment import plan_transcoders
from radioagent.transcoding.script import transcoder_job
from radioagent.transcoding.supervisor import TranscoderSupervisor

log = logging.getLogger(__name__)


@dataclass
class AgentHealth:
    """Counters and facts the metrics and status pages read."""

    etcd_errors: int = 0
    icecast_errors: int = 0
    unexpected_errors: int = 0
    icecast_reloads: int = 0
    cycles: int = 0
    last_cycle_seconds: float = 0.0
    state_problems: tuple[str, ...] = ()


class BandwidthMeter:
    """Outgoing kbit/s from a byte counter, measured between two loops."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.kbps = 0.0
        self._last: tuple[float, int] | None = None

    def measure(self, total_bytes: int) -> None:
        now = self.clock()
        if self._last is not None and now > self._last[0]:
            self.kbps = (total_bytes - self._last[1]) * 8 / 1000 / (now - self._last[0])
        self._last = (now, total_bytes)


def icecast_local_host(bind_address: str) -> str:
    """Where this node's agent reaches its own Icecast."""
    return "127.0.0.1" if bind_address in ("0.0.0.0", "::", "") else bind_address  # noqa: S104


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.layout = KeyLayout(config.etcd.prefix)
        self.state: ClusterState | None = None
        self.store = EtcdStore(config.etcd, self.layout, self.keepalive_interval, self.wake)
        self.icecast = IcecastControl(config.icecast)
        self.holding = HoldingFeeds(
            config.icecast.port, config.icecast.source_password, config.holding
        )
        self.health = AgentHealth()
        self.transcoders = TranscoderSupervisor(
            config.transcoding.liquidsoap_command,
            config.transcoding.user,
            Path(config.transcoding.run_dir),
        )
        self.lease_id: int | None = None
        self.lease_ttl: float | None = None
        self.last_etcd_contact = float("-inf")
        self.leadership = Leadership(Role.DETACHED)
        self.stats: IcecastStats | None = None
        self.air: dict[str, MountAir] = {}
        self._last_leader_status: NodeStatus | None = None
        self._published_status: str | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._icecast_lock = asyncio.Lock()
        self.local_api = LocalApi(config.local_api, self.local_view)
        self.front_door = FrontDoor(
            config.front_door,
            config.node_name,
            self.snapshot,
            (icecast_local_host(config.icecast.bind_address), config.icecast.port),
            prediction_window=report_window(config.timing.loop_wait),
        )
        self._last_cycle_at = self.clock()
        self._bandwidth = BandwidthMeter(clock)

    # --- entry points --------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        await self.local_api.start()
        await self.front_door.start()
        tasks = [
            asyncio.create_task(self._keepalive_forever(), name="keepalive"),
            asyncio.create_task(self._fence_forever(), name="fence"),
        ]
        try:
            while not self._stopping.is_set():
                for task in tasks:
                    if task.done():
                        # Never expected (both loop forever and log their errors); if it
                        # happens, exit and let the service manager start a fresh agent.
                        raise RuntimeError(f"the {task.get_name()} task ended: {task!r}")
                await self.cycle()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.timing.loop_wait)
                self._wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._shut_down()

    # --- settings: the cluster's from etcd, else this agent's own -------------------------

    @property
    def timing(self) -> Timing:
        if self.state is None:
            return self.config.timing
        return self.state.settings.timing_for(self.config.timing)

    @property
    def limits(self) -> Limits:
        if self.state is None:
            return self.config.limits
        return self.state.settings.limits_for(self.config.limits)

    @property
    def keepalive_interval(self) -> float:
        return max(0.1, self.timing.retry_timeout / 4)

    # --- the cycle -----------------------------------------------------------------------

    def cut_off(self) -> bool:
        return must_stop_leading(self.clock(), self.last_etcd_contact, self.timing.retry_timeout)

    async def cycle(self) -> None:
        """One pass. Each step is guarded: a failing step is logged and the others still
        run, so no surprise (a bug, a bad value in etcd) can stop the agent."""
        started = self.clock()
        await self._guarded("coordinate", self._coordinate)
        await self._guarded("reconcile icecast", self._reconcile_icecast)
        if self.state is not None:
            self.holding.update(self.state.mounts.values())
        await self._guarded("reconcile transcoders", self._reconcile_transcoders)
        await self._guarded("read icecast stats", self._read_icecast_stats)
        await self._guarded("drop stray sources", self._drop_sources_unless_leading)
        await self._guarded("publish status", self._publish_status)
        self.front_door.update()
        self.health.cycles += 1
        self.health.last_cycle_seconds = self.clock() - started
        self._last_cycle_at = self.clock()

    async def _guarded(self, step: str, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except EtcdUnavailable as error:
            self.health.etcd_errors += 1
            log.warning("etcd: %s", error)
        except IcecastError as error:
            self.health.icecast_errors += 1
            log.error("icecast: %s", error)
        except Exception:
            self.health.unexpected_errors += 1
            log.exception("%s failed", step)

    async def _coordinate(self) -> None:
        state = await self.store.read_state()
        await self.store.ensure_watch()
        timing = state.settings.timing_for(self.config.timing)
        self.store.request_timeout = max(0.1, timing.retry_timeout / 4)
        if self.lease_id is None:
            sent = self.clock()
            self.lease_id = await self.store.grant_lease(timing.ttl)
            self.lease_ttl = timing.ttl
            self.last_etcd_contact = sent
            self._published_status = None
        elif timing.ttl != self.lease_ttl:
            await self._move_to_new_lease(state, timing.ttl)
            state = await self.store.read_state()
        if state.problems != self.health.state_problems:
            for problem in state.problems:
                log.error("ignored in etcd: %s", problem)
            self.health.state_problems = state.problems
        current = leadership_from_state(state, self.config.node_name, self.lease_id)
        if must_hand_over(state, current):
            await self._hand_over(state, current)
            state = await self.store.read_state()
        if should_campaign(state, self.lease_id, self.config.node_name) and not self.cut_off():
            sent = self.clock()
            epoch = await self.store.campaign(self.config.node_name, self.lease_id)
            self.last_etcd_contact = sent
            if epoch is not None:
                log.info("won the election: leading with epoch %d", epoch)
                if state.handover is not None:
                    await self.store.delete(self.layout.handover)  # the request is done
            state = await self.store.read_state()
        self.state = state
        self._set_leadership(leadership_from_state(state, self.config.node_name, self.lease_id))

    async def _move_to_new_lease(self, state: ClusterState, ttl: float) -> None:
        """The cluster's ttl changed: a lease keeps the ttl it was granted with, so take a
        new one and move what we hold onto it (leadership keeps its epoch, transcoders keep
        running, our node entry never disappears), then revoke the old one."""
        old_lease, name = self.lease_id, self.config.node_name
        sent = self.clock()
        new_lease = await self.store.grant_lease(ttl)
        held = {
            self.layout.transcoder(mount): name
            for mount, owner in state.transcoders.items()
            if owner == name
        }
        if leadership_from_state(state, name, old_lease).role is Role.LEADER:
            held[self.layout.leader] = name
        if self._published_status is not None:
            held[self.layout.node(name)] = self._published_status
        moved = await self.store.move_to_lease(held, new_lease)
        self.lease_id, self.lease_ttl, self.last_etcd_contact = new_lease, ttl, sent
        if old_lease is not None:
            await self.store.revoke_lease(old_lease)
        log.info("ttl now %g s: moved %d keys to a new lease", ttl, len(moved))

    async def _hand_over(self, state: ClusterState, current: Leadership) -> None:
        """An operator asked this leader to step down: stop taking sources and drop them
        first, then delete the leader key (only if still ours) so the target wins at once."""
        self._set_leadership(current)
        target = state.handover.to if state.handover else None
        await self._step_down(f"handover requested (to {target or 'any node'})")
        if current.epoch is not None:
            await self.store.resign(current.epoch)

    def _set_leadership(self, leadership: Leadership) -> None:
        if self.state is not None and leadership.role is Role.REPLICA:
            known = self.state.nodes.get(leadership.leader_name or "")
            self._last_leader_status = known or self._last_leader_status
        if leadership != self.leadership:
            log.info(
                "leadership: %s (leader %s, epoch %s)",
                leadership.role.value,
                leadership.leader_name,
                leadership.epoch,
            )
        self.leadership = leadership

    def effective_leadership(self) -> Leadership:
        """What this node may act as right now: nothing, once cut off from etcd."""
        if self.leadership.role is Role.LEADER and self.cut_off():
            return Leadership(Role.DETACHED, None, self.leadership.epoch)
        return self.leadership

    def leader_status(self) -> NodeStatus | None:
        """The leader's status (ours when we lead); while detached, the last leader we
        knew, so relays keep pulling what still works."""
        leadership = self.effective_leadership()
        if leadership.role is Role.LEADER:
            return self.node_status()
        if self.state is not None and leadership.role is Role.REPLICA:
            return self.state.nodes.get(leadership.leader_name or "")
        if leadership.role is Role.DETACHED:
            return self._last_leader_status
        return None

    def current_leader_status(self) -> NodeStatus | None:
        """The leader as etcd says now; None while this node is detached or cut off from etcd
        (sources must not be piped to a node that may have stepped down)."""
        leadership = self.effective_leadership()
        if leadership.role is Role.DETACHED or self.cut_off():
            return None
        return self.leader_status()

    def snapshot(self) -> AgentSnapshot:
        leadership = self.effective_leadership()
        return AgentSnapshot(
            node_name=self.config.node_name,
            version=__version__,
            leading=leadership.role is Role.LEADER,
            epoch=leadership.epoch,
            etcd_reachable=not self.cut_off(),
            state=self.state,
            stats=self.stats,
            seconds_since_cycle=self.clock() - self._last_cycle_at,
            timing=self.timing,
            cycles=self.health.cycles,
            last_cycle_seconds=self.health.last_cycle_seconds,
            etcd_errors=self.health.etcd_errors,
            icecast_errors=self.health.icecast_errors,
            icecast_reloads=self.health.icecast_reloads,
            unexpected_errors=self.health.unexpected_errors,
            sources_allowed=self.local_api.sources_allowed,
            sources_refused=self.local_api.sources_refused,
            leader=self.current_leader_status(),
            listener_limit=self.limits.max_listeners,
            public_address=self.public_address,
            transcoders=self.transcoders.states(),
            draining=self._draining(),
            air=air_reports(self.air, self.clock(), self.dead_air_seconds),
        )

    @property
    def dead_air_seconds(self) -> int:
        if self.state is None:
            return DEFAULT_DEAD_AIR_SECONDS
        return self.state.settings.dead_air_seconds

    def _draining(self) -> bool:
        return self.state is not None and self.config.node_name in self.state.draining

    @property
    def public_address(self) -> str:
        return self.config.front_door.public_address or self.config.node_address

    def local_view(self) -> LocalView:
        return LocalView(
            leading=self.effective_leadership().role is Role.LEADER,
            mounts=dict(self.state.mounts) if self.state is not None else {},
            leader=self.current_leader_status(),
        )

    def plan_icecast(self) -> IcecastPlan | None:
        if self.state is None:
            return None  # never read etcd: leave Icecast as it is
        mounts = tuple(sorted(self.state.mounts.values(), key=lambda mount: mount.name))
        leading = self.effective_leadership().role is Role.LEADER
        return IcecastPlan(leading=leading, mounts=mounts)

    async def _reconcile_icecast(self) -> None:
        async with self._icecast_lock:
            plan = self.plan_icecast()
            if plan is None:
                return
            text = render_icecast_config(self.config, plan)
            if await self.icecast.apply_config(text):
                self.health.icecast_reloads += 1
                log.info("icecast reloaded as %s", plan.role)

    async def _reconcile_transcoders(self) -> None:
        """Claim, run, release. Nothing runs without a known leader or a live lease: the
        transcoders push to the leader, and a node cut off from etcd stops them before its
        claims can expire and be taken elsewhere."""
        state, lease_id = self.state, self.lease_id
        leader = self.current_leader_status()
        if state is None or lease_id is None or leader is None:
            await self.transcoders.stop_all()
            return
        name = self.config.node_name
        plan = plan_transcoders(
            state.mounts, state.transcoders, state.nodes, state.draining, name, me_eligible=True
        )
        for mount in plan.release:
            await self.store.release_transcoder(mount, name)
        if plan.claim is not None and await self.store.claim_transcoder(plan.claim, name, lease_id):
            log.info("won the transcoder of %s", plan.claim)
            self.wake()
        await self.transcoders.converge(
            {
                mount: transcoder_job(self.config.templates_dir, state.mounts[mount], leader)
                for mount in plan.run
            }
        )

    async def _drop_live_sources(self, paths: list[str]) -> None:
        """Disconnect sources (a reload leaves them connected); they reconnect and find
        the leader. Every path is tried even if one fails."""
        failures = []
        for path in paths:
            try:
                if await self.icecast.kill_source(path):
                    log.info("disconnected the source of %s: this node does not lead", path)
            except IcecastError as error:
                failures.append(str(error))
        if failures:
            raise IcecastError("; ".join(failures))

    async def _drop_sources_unless_leading(self) -> None:
        """Any source on a /_live/ mount of a node that does not lead is stray: left by a
        previous life of this agent, or by a step-down whose disconnect failed."""
        if self.effective_leadership().role is Role.LEADER or self.stats is None:
            return
        await self._drop_live_sources(
            sorted(path for path in self.stats.sources if path.startswith(LIVE_MOUNT_PREFIX))
        )

    async def _step_down(self, reason: str) -> None:
        """Stop acting as leader now: refuse sources (the local API reads the leadership),
        drop connected ones first (no lock: a reload in progress must not delay this),
        then reconcile Icecast."""
        log.warning("stepping down: %s", reason)
        self._set_leadership(Leadership(Role.DETACHED, None, self.leadership.epoch))
        mounts = self.state.mounts.values() if self.state is not None else []
        await self._guarded(
            "drop sources", lambda: self._drop_live_sources([m.live_path for m in mounts])
        )
        await self._guarded("reconcile icecast", self._reconcile_icecast)

    async def _read_icecast_stats(self) -> None:
        try:
            self.stats = await self.icecast.read_stats()
        except IcecastError:
            self.stats = None
            raise
        finally:
            mounts = list(self.state.mounts.values()) if self.state is not None else []
            live = live_ages(mounts, self.stats, time.time())
            self.air = update_air(self.air, [mount.name for mount in mounts], live, self.clock())

    def node_status(self) -> NodeStatus:
        """Listeners and bandwidth are the front door's: Icecast sees one connection per
        mount (the fan-out's upstream)."""
        leadership = self.effective_leadership()
        stats = self.stats
        mounts = self.state.mounts.values() if self.state is not None else ()
        transcoders = self.transcoders.states()
        return NodeStatus(
            name=self.config.node_name,
            address=self.config.node_address,
            icecast_port=self.config.icecast.port,
            icecast_up=stats is not None,
            role=leadership.role.value,
            epoch=leadership.epoch,
            listeners=dict(sorted(self.front_door.listeners_by_mount().items())),
            bandwidth_kbps=round(self._bandwidth.kbps, 1),
            bandwidth_limit_kbps=self.limits.bandwidth_kbps,
            listener_limit=self.limits.max_listeners,
            draining=self._draining(),
            agent_version=__version__,
            public_address=self.config.front_door.public_address,
            front_door_ports=self.config.front_door.ports,
            transcoders=tuple(sorted(transcoders)),
            silent_mounts=tuple(
                sorted(mount for mount, state in transcoders.items() if state.silent)
            ),
            live_mounts=tuple(sorted(name for name, air in self.air.items() if air.live)),
            mounts=tuple(
                sorted(
                    mount.name
                    for mount in mounts
                    if stats is not None
                    and (mount.path in stats.sources or mount.holding_path in stats.sources)
                )
            ),
        )

    async def _publish_status(self) -> None:
        self._bandwidth.measure(self.front_door.passthrough.counters.bytes_out)
        if self.lease_id is None:
            return
        status = self.node_status().to_json()
        if status == self._published_status:
            return
        await self.store.put(self.layout.node(self.config.node_name), status, self.lease_id)
        self._published_status = status

    # --- keepalive and fence -------------------------------------------------------------

    async def _keepalive_forever(self) -> None:
        failing_since: float | None = None
        while True:
            await asyncio.sleep(self.keepalive_interval)
            lease_id = self.lease_id
            if lease_id is None:
                continue
            sent = self.clock()
            try:
                remaining_ttl = await self.store.refresh_lease(lease_id)
            except Exception as error:  # this task must never die
                self.health.etcd_errors += 1
                if failing_since is None:
                    failing_since = sent
                    log.warning("lease keepalive failing: %s", error)
                continue
            if failing_since is not None:
                log.info("lease keepalive back after %.1f s", sent - failing_since)
                failing_since = None
            if lease_id != self.lease_id:
                continue  # moved to a new lease meanwhile: this answer is about the old one
            if remaining_ttl <= 0:
                log.warning("lease %x expired; taking a new one", self.lease_id)
                self.lease_id = None
                if self.leadership.role is Role.LEADER:
                    await self._step_down("our lease expired")
                self._set_leadership(Leadership(Role.DETACHED))
                self.wake()
                continue
            self.last_etcd_contact = sent

    async def _fence_forever(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_interval / 2)
            if self.leadership.role is Role.LEADER and self.cut_off():
                await self._step_down(
                    f"cut off from etcd for {self.clock() - self.last_etcd_contact:.1f} s"
                )
            if self.cut_off() and self.transcoders.states():
                log.warning("cut off from etcd: stopping the transcoders")
                await self.transcoders.stop_all()

    # --- graceful stop -------------------------------------------------------------------

    async def _shut_down(self) -> None:
        """Stop leading first, then revoke the lease: the leader key and this node's
        claims vanish at once and another node takes over well under a second."""
        if self.leadership.role is Role.LEADER:
            await self._step_down("stopping")
        await self.transcoders.stop_all()
        if self.lease_id is not None:
            lease_id, self.lease_id = self.lease_id, None
            await self._guarded("revoke lease", lambda: self.store.revoke_lease(lease_id))
        self.store.close()
        await self.holding.close()
        await self.local_api.stop()
        await self.front_door.stop()
        await self.icecast.close()
