"""The agent's loop: read, plan, execute. The decisions are `coordination/cycle.py`'s
(pure); this module only gathers facts, runs the plan and keeps the agent's memory.

Three tasks share one event loop:
- the cycle, every loop_wait or at once when the watch sees a change;
- the lease keepalive, every retry_timeout / 4: the only proof that etcd (a quorum of
  it) still hears us; serializable reads succeed even on a partitioned member;
- the fence, which steps down a leader cut off from etcd for retry_timeout, whatever the
  cycle is blocked on, so it never holds sources once its lease may have expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from radioagent import __version__, watchdog
from radioagent.acme.keeper import CertificateKeeper
from radioagent.config import AgentConfig, Limits, Timing, ip_version, keepalive_interval
from radioagent.coordination.cycle import (
    CyclePlan,
    LeaseStep,
    LocalFacts,
    NodeIdentity,
    cluster_limits,
    cluster_timing,
    current_leader_status,
    effective_leadership,
    icecast_plan,
    node_status,
    plan_cycle,
)
from radioagent.coordination.election import (
    Leadership,
    LeaseLoss,
    Role,
    must_stop_leading,
    settle_seconds,
)
from radioagent.coordination.failsafe import cut_off_for_failsafe, peers, should_ping
from radioagent.coordination.raft import raft_move_targets
from radioagent.coordination.state import ClusterState
from radioagent.deadair import (
    DEFAULT_DEAD_AIR_SECONDS,
    MountAir,
    air_changes,
    air_reports,
    live_ages,
    update_air,
)
from radioagent.diskspace import DiskSpace, disk_space
from radioagent.dns.zone import ZoneView, zone_view
from radioagent.etcd_identity import EtcdIdentity
from radioagent.etcd_member_metrics import MemberMetrics, read_forever
from radioagent.failsafe_link import FailsafeLink
from radioagent.frontdoor.server import FrontDoor
from radioagent.frontdoor.view import AgentSnapshot
from radioagent.heap import TRIM_EVERY_SECONDS, release_free_memory
from radioagent.holding.feeder import HoldingFeeds
from radioagent.icecast.control import IcecastControl, IcecastError, IcecastUnresponsive
from radioagent.icecast.hang import restart_due
from radioagent.icecast.render import render_icecast_config
from radioagent.icecast.stats import IcecastStats
from radioagent.liquidsoap import OLDEST_LIQUIDSOAP, LiquidsoapVersion
from radioagent.listenerhistory import ListenerHistory
from radioagent.localapi import RELAY_HOLD_S, LocalApi, LocalView
from radioagent.looplag import LagHistogram, measure_forever
from radioagent.model import MountSpec, NodeStatus
from radioagent.programmes.script import programme_job
from radioagent.programmes.spec import preferred_inputs
from radioagent.settings import ClusterSettings
from radioagent.status import listeners_by_mount
from radioagent.store.agent_store import AgentStore
from radioagent.store.errors import Conflict, EtcdUnavailable
from radioagent.traffic.bandwidth import BandwidthMeter
from radioagent.transcoding.assignment import (
    GIVE_UP_AFTER_FAILURES,
    GIVE_UP_SECONDS,
    awaited_sources,
    free_since,
    unclaimed,
)
from radioagent.transcoding.script import TranscoderJob, transcoder_job
from radioagent.transcoding.supervisor import TranscoderSupervisor

log = logging.getLogger(__name__)
# A cycle's moves in etcd come one kind at a time (lease, handover, campaign), each
# followed by a fresh read; more than this in one cycle means something else is moving.
MAX_MOVES_PER_CYCLE = 4
# How often the agent asks etcd for its members: an agent whose own member dies moves on
# to the others (store/endpoints.py), and members added later are followed.
LEARN_MEMBERS_EVERY_S = 30.0
# How often an agent on another node's etcd endpoint asks its own whether it may go back
# (store/client.py) once its member serves a quorum again.
GO_HOME_EVERY_S = 5.0
# How often the radio leader checks that its own etcd member does not lead raft.
RAFT_CHECK_EVERY_S = 5.0


@dataclass
class AgentHealth:
    """Counters and facts the metrics and status pages read."""

    etcd_errors: int = 0
    icecast_errors: int = 0
    unexpected_errors: int = 0
    icecast_reloads: int = 0
    icecast_restarts_asked: int = 0
    cycles: int = 0
    last_cycle_seconds: float = 0.0
    state_problems: tuple[str, ...] = ()
    # Lease keepalives that failed, and those sent over two intervals after the last one
    # that got through (a busy loop, or etcd slow to answer).
    keepalives_failed: int = 0
    keepalives_late: int = 0
    loop_lag: LagHistogram = dataclasses.field(default_factory=LagHistogram)


@dataclass
class Adapters:
    """The agent's ways to the world: etcd, its Icecast, the processes it supervises, and
    its own servers. The daemon builds them (daemon.py); tests may build others."""

    store: AgentStore
    icecast: IcecastControl
    holding: HoldingFeeds
    transcoders: TranscoderSupervisor
    local_api: LocalApi
    front_door: FrontDoor
    dns: ZoneServer | None = None  # only on nodes that answer for the cluster's zone
    certificates: CertificateKeeper | None = None  # only with ACME
    failsafe: FailsafeLink | None = None  # only with a failsafe key


class ZoneServer(Protocol):
    """dns/server.py's DnsServer, named here without importing it: nodes that answer no
    DNS never load the DNS library."""

    answered: Counter[str]  # replies by rcode name
    dropped: int  # packets that got no reply

    def update(self, view: ZoneView) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def request_timeout(timing: Timing) -> float:
    """How long one etcd request may take: as long as a keepalive interval, so a hung
    request cannot hold the fence's proof of contact past retry_timeout."""
    return keepalive_interval(timing)


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        adapters: Adapters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = adapters.store
        self.icecast = adapters.icecast
        self.holding = adapters.holding
        self.transcoders = adapters.transcoders
        self.local_api = adapters.local_api
        self.front_door = adapters.front_door
        self.dns = adapters.dns
        self.certificates = adapters.certificates
        self.failsafe = adapters.failsafe
        self.identity = NodeIdentity(
            name=config.node_name,
            address=config.node_address,
            icecast_port=config.icecast.port,
            public_address=config.front_door.public_address,
            front_door_ports=config.front_door.ports,
            https_name=config.front_door.https_name,
        )
        self.health = AgentHealth()
        # The agent's memory between cycles: what it holds in etcd and what it last knew.
        self.state: ClusterState | None = None
        self.lease_id: int | None = None
        self.lease_ttl: float | None = None
        self.last_etcd_contact = float("-inf")
        self.lease_lost: LeaseLoss | None = None
        # The lease this node led on, until it sees another node lead: a revocation deletes
        # the leader key, and a read may show that (detached) before the keepalive says the
        # lease itself is gone; the node still was the last leader.
        self._led_on_lease: int | None = None
        self.leadership = Leadership(Role.DETACHED)
        self.leading_since: float | None = None  # wall clock: when this node began to lead
        # Wall clock: when each mount's live audio here last came or went (not its first
        # look, which changes nothing).
        self.air_changed: dict[str, float] = {}
        self.stats: IcecastStats | None = None
        self.air: dict[str, MountAir] = {}
        self._published_status: str | None = None
        self.icecast_answered_at: float | None = None
        self.icecast_unresponsive_since: float | None = None  # the run of timed-out reads
        self.icecast_restart_asked_at: float | None = None
        self.unclaimed_since: dict[str, float] = {}
        self.given_up: dict[str, float] = {}  # mount -> when (self.clock) its claim was given up
        self._members_asked_at: float | None = None
        self._raft_checked_at: float | None = None
        self._home_asked_at: float | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._icecast_lock = asyncio.Lock()
        self._last_cycle_at = self.clock()
        self._heap_trimmed_at: float | None = None
        self._bandwidth = BandwidthMeter(clock)
        self.listener_history = ListenerHistory()
        self.etcd_member_metrics = MemberMetrics()
        cert_file = self.config.etcd.cert_file
        self.etcd_identity = EtcdIdentity(cert_file) if cert_file else None
        self.disks: tuple[DiskSpace, ...] = ()

    # --- entry points --------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        await self.local_api.start()
        await self.front_door.start()
        await self._start_dns()
        tasks = [
            asyncio.create_task(self._keepalive_forever(), name="keepalive"),
            asyncio.create_task(self._fence_forever(), name="fence"),
            asyncio.create_task(measure_forever(self.health.loop_lag), name="loop lag"),
        ]
        if self.etcd_identity is not None:
            watching = self.etcd_identity.watch_forever()
            tasks.append(asyncio.create_task(watching, name="etcd certificate"))
        if self.failsafe is not None:
            tasks.append(asyncio.create_task(self._failsafe_forever(), name="failsafe"))
        if self.config.etcd.metrics_url is not None:
            url, kept = self.config.etcd.metrics_url, self.etcd_member_metrics
            reading = read_forever(url, kept, self.clock)
            tasks.append(asyncio.create_task(reading, name="etcd member metrics"))
        interval = watchdog.feeding_interval(dict(os.environ))
        if interval is not None:
            tasks.append(
                asyncio.create_task(
                    watchdog.feed_forever(interval, self._seconds_since_cycle, lambda: self.timing),
                    name="watchdog",
                )
            )
        ready = False
        try:
            while not self._stopping.is_set():
                for task in tasks:
                    if task.done():
                        # Never expected (they loop forever and log their errors); if it
                        # happens, exit and let the service manager start a fresh agent.
                        raise RuntimeError(f"the {task.get_name()} task ended: {task!r}")
                await self.cycle()
                if not ready:  # systemd's start (Type=notify) ends with the first cycle
                    watchdog.notify("READY=1")
                    ready = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.timing.loop_wait)
                self._wake.clear()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            watchdog.notify("STOPPING=1")
            await self._shut_down()

    def _seconds_since_cycle(self) -> float:
        return self.clock() - self._last_cycle_at

    # --- settings: the cluster's from etcd, else this agent's own -------------------------

    @property
    def timing(self) -> Timing:
        return cluster_timing(self.state, self.config.timing)

    @property
    def limits(self) -> Limits:
        return cluster_limits(self.state, self.config.limits)

    @property
    def keepalive_interval(self) -> float:
        return keepalive_interval(self.timing)

    # --- the cycle -----------------------------------------------------------------------

    def cut_off(self) -> bool:
        """Cut off from etcd for retry_timeout, and not held by the failsafe."""
        return self.etcd_lost() and not self.failsafe_held()

    def _heard_from_etcd(self, sent: float) -> None:
        """etcd (a quorum of it) answered a request sent at `sent`: contact as of then."""
        self.last_etcd_contact = max(self.last_etcd_contact, sent)

    def etcd_lost(self) -> bool:
        return must_stop_leading(self.clock(), self.last_etcd_contact, self.timing.retry_timeout)

    def failsafe_held(self) -> bool:
        if self.failsafe is None:
            return False
        now, timing = self.clock(), self.timing
        if self.leadership.role is Role.LEADER:
            return self.failsafe.leader_held(now, timing)
        return self.failsafe.replica_held(now, self.leadership, timing)

    def answer_failsafe(self, query: str) -> tuple[int, bytes]:
        """A leader's failsafe ping, answered (the front door carries it)."""
        if self.failsafe is None:
            return 404, b'{"error": "this node has no failsafe key"}'
        cut_off = cut_off_for_failsafe(self.clock(), self.last_etcd_contact, self.timing)
        return self.failsafe.answer(query, self.leadership, cut_off)

    def _given_up_lately(self) -> dict[str, float]:
        now = self.clock()
        self.given_up = {
            mount: at for mount, at in self.given_up.items() if now - at < GIVE_UP_SECONDS
        }
        return dict(self.given_up)

    def facts(self) -> LocalFacts:
        return LocalFacts(
            now=self.clock(),
            lease_id=self.lease_id,
            lease_ttl=self.lease_ttl,
            last_etcd_contact=self.last_etcd_contact,
            own_timing=self.config.timing,
            own_limits=self.config.limits,
            stats=self.stats,
            listeners=self.front_door.listeners_by_mount(),
            counted_at=time.time(),
            bandwidth_kbps=self._bandwidth.kbps,
            transcoders=self.transcoders.states(),
            given_up=self._given_up_lately(),
            standbys=self.transcoders.standbys(),
            programme_leaders=self.transcoders.programme_leaders(),
            unclaimed_since=self.unclaimed_since,
            icecast_answered_at=self.icecast_answered_at,
            live_mounts=tuple(name for name, air in self.air.items() if air.live),
            hls_mounts=tuple(self.front_door.hls.sessions_by_mount()),
            hls_numbers=self.front_door.hls.numbers(),
            leading_since=self.leading_since,
            air_changed=self.air_changed,
            published_status=self._published_status,
            leadership=self.leadership,
            tls_ports=self.front_door.open_tls_ports,
            failsafe_held=self.failsafe_held(),
            failsafe_on=self.failsafe is not None,
            acknowledged_at=None if self.failsafe is None else self.failsafe.acknowledged_at,
            lease_lost=self.lease_lost,
        )

    async def cycle(self) -> None:
        """One pass: read, plan, execute. Each step is guarded: a failing step is logged
        and the others still run, so no surprise (a bug, a bad value in etcd) can stop the
        agent."""
        started = self.clock()
        state = await self._read_state()
        plan = self._plan(state)
        for _ in range(MAX_MOVES_PER_CYCLE):
            if state is None or not plan.moves.any:
                break
            moved = await self._guarded("coordinate", functools.partial(self._move, plan))
            state = await self._read_state() if moved else None
            plan = self._plan(state)
        else:
            if plan.moves.any:
                log.warning("still moving in etcd after %d moves; next cycle", MAX_MOVES_PER_CYCLE)
        if state is not None:
            self.state = state
        # Icecast after etcd: an Icecast slow to answer must not delay a campaign.
        await self._guarded("read icecast stats", self._read_icecast_stats)
        self._bandwidth.measure(self.front_door.bytes_out)
        self.disks = disk_space(self.config.disk_paths)  # once a loop, not per snapshot
        plan = self._plan(state)
        # No await between the plan's facts and this: the keepalive may have seen our lease
        # expire meanwhile, and a stale leadership must not overwrite that.
        self._set_leadership(plan.leadership)
        await self._execute(plan)
        self.front_door.update()
        self._update_views()
        if self.certificates is not None and self.state is not None:
            keeper, state = self.certificates, self.state
            await self._guarded(
                "keep the certificate", functools.partial(self._keep_certificate, keeper, state)
            )
        if state is not None and (
            self._members_asked_at is None
            or self.clock() - self._members_asked_at >= LEARN_MEMBERS_EVERY_S
        ):
            self._members_asked_at = self.clock()
            await self._guarded(
                "learn etcd members",
                functools.partial(self.store.learn_members, self.config.etcd.member_name),
            )
        if self.store.away and (
            self._home_asked_at is None or self.clock() - self._home_asked_at >= GO_HOME_EVERY_S
        ):
            self._home_asked_at = self.clock()
            await self._guarded("go back to the own etcd endpoint", self.store.go_home)
        if (
            plan.acting.role is Role.LEADER
            and self.config.etcd.member_name is not None
            and (
                self._raft_checked_at is None
                or self.clock() - self._raft_checked_at >= RAFT_CHECK_EVERY_S
            )
        ):
            self._raft_checked_at = self.clock()
            await self._guarded("keep raft leadership elsewhere", self._keep_raft_elsewhere)
        self.health.cycles += 1
        self.health.last_cycle_seconds = self.clock() - started
        self._last_cycle_at = self.clock()
        if (
            self._heap_trimmed_at is None
            or self._last_cycle_at - self._heap_trimmed_at >= TRIM_EVERY_SECONDS
        ):
            release_free_memory()
            self._heap_trimmed_at = self._last_cycle_at

    def _plan(self, fresh_state: ClusterState | None) -> CyclePlan:
        """The plan from a state read just now, or (None) from the last one known."""
        state = fresh_state if fresh_state is not None else self.state
        if state is not None:
            self.unclaimed_since = free_since(
                self.unclaimed_since, unclaimed(state.mounts, state.transcoders), self.clock()
            )
        return plan_cycle(self.identity, state, self.facts(), fresh=fresh_state is not None)

    async def _guarded(self, step: str, action: Callable[[], Awaitable[object]]) -> bool:
        """Whether `action` ran without an error."""
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
        else:
            return True
        return False

    async def _read_state(self) -> ClusterState | None:
        """The state now, or None when etcd does not answer."""
        read: list[ClusterState] = []

        async def read_and_watch() -> None:
            read.append(await self.store.read_state())
            await self.store.ensure_watch()

        await self._guarded("read state", read_and_watch)
        if not read:
            return None
        state = read[0]
        self.store.set_request_timeout(request_timeout(cluster_timing(state, self.config.timing)))
        if state.problems != self.health.state_problems:
            for problem in state.problems:
                log.error("ignored in etcd: %s", problem)
            self.health.state_problems = state.problems
        return state

    async def _move(self, plan: CyclePlan) -> None:
        """The plan's move in etcd: a lease, a handover or a campaign."""
        name = self.identity.name
        if plan.moves.lease is LeaseStep.GRANT:
            sent = self.clock()
            self.lease_id = await self.store.grant_lease(plan.timing.ttl)
            self.lease_ttl = plan.timing.ttl
            self._heard_from_etcd(sent)
            self._published_status = None
        elif plan.moves.lease is LeaseStep.MOVE:
            await self._move_to_new_lease(plan)
        elif plan.moves.hand_over is not None:
            await self._hand_over(plan)
        elif plan.moves.step_down is not None:
            await self._step_down(plan.moves.step_down, plan.leadership.epoch)
            if plan.leadership.epoch is not None:
                await self.store.resign(plan.leadership.epoch)
        elif plan.moves.resign_previous_life is not None:
            if await self.store.resign(plan.moves.resign_previous_life):
                log.info(
                    "resigned the leadership of this node's previous life (epoch %d): "
                    "no node waits for its lease to expire",
                    plan.moves.resign_previous_life,
                )
        elif plan.moves.campaign and self.lease_id is not None:
            sent = self.clock()
            epoch = await self.store.campaign(name, self.lease_id)
            self._heard_from_etcd(sent)
            if epoch is not None:
                log.info("won the election: leading with epoch %d", epoch)

    async def _move_to_new_lease(self, plan: CyclePlan) -> None:
        """The cluster's ttl changed: a lease keeps the ttl it was granted with, so take a
        new one and move what we hold onto it (leadership keeps its epoch, transcoders keep
        running, our node entry never disappears), then revoke the old one."""
        old_lease, ttl = self.lease_id, plan.timing.ttl
        sent = self.clock()
        new_lease = await self.store.grant_lease(ttl)
        moved = await self.store.move_to_lease(
            new_lease,
            self.identity.name,
            leader=plan.leadership.role is Role.LEADER,
            transcoders=plan.moves.move_transcoders,
            status=self._published_status,
        )
        self.lease_id, self.lease_ttl = new_lease, ttl
        self._heard_from_etcd(sent)
        if old_lease is not None:
            await self.store.revoke_lease(old_lease)
        log.info("ttl now %g s: moved %d keys to a new lease", ttl, moved)

    async def _hand_over(self, plan: CyclePlan) -> None:
        """An operator asked this leader to step down: stop taking sources and drop them
        first, then delete the leader key (only if still ours) so the target wins at once."""
        target = plan.moves.hand_over.to if plan.moves.hand_over else None
        await self._step_down(
            f"handover requested (to {target or 'any node'})", plan.leadership.epoch
        )
        if plan.leadership.epoch is not None:
            await self.store.resign(plan.leadership.epoch)

    async def _execute(self, plan: CyclePlan) -> None:
        await self._guarded("reconcile icecast", self._reconcile_icecast)
        if self.state is not None:
            self.holding.update(self.state.mounts.values())
        await self._guarded("reconcile transcoders", lambda: self._reconcile_transcoders(plan))
        if plan.drop_sources:
            await self._guarded(
                "drop stray sources", lambda: self._drop_live_sources(list(plan.drop_sources))
            )
        for mount, title in plan.relay_titles.items():
            await self._guarded(
                "keep a relayed title", functools.partial(self._keep_relayed_title, mount, title)
            )
        handover = plan.finish_handover
        if handover is not None:
            await self._guarded("finish handover", lambda: self.store.finish_handover(handover))
        status = plan.publish
        if status is not None and self.effective_leadership() == plan.acting:
            await self._guarded("publish status", lambda: self._publish(status))
        if plan.register:
            await self._guarded(
                "register the node", functools.partial(self.store.register_node, self.identity.name)
            )
        for name in plan.mark_down:
            await self._guarded("mark a node down", functools.partial(self._mark_down, name))

    async def _keep_raft_elsewhere(self) -> None:
        raft_leader, members = await self.store.raft_view()
        my_member = self.config.etcd.member_name
        if my_member is None:
            return
        leading = self.effective_leadership().role is Role.LEADER
        targets = raft_move_targets(leading, my_member, raft_leader, members)
        if not targets or raft_leader is None:
            return
        target = await self.store.move_raft_leader(raft_leader, targets)
        if target is None:
            log.warning("etcd's raft leadership stays on %s: no other member is ready", my_member)
        else:
            log.info("moved etcd's raft leadership from %s to %s", my_member, members[target])

    async def _mark_down(self, name: str) -> None:
        if await self.store.mark_down(name, time.time()):
            log.warning("node %s is down: its status expired", name)

    async def _keep_relayed_title(self, mount: str, title: str) -> None:
        try:
            if await self.store.set_title(mount, title, time.time()):
                log.info("title of %s (relayed): %r", mount, title)
        except Conflict as error:  # the mount went meanwhile, or another write came first
            log.info("relayed title of %s not kept: %s", mount, error)

    async def _publish(self, status: str) -> None:
        if self.lease_id is None:
            return
        await self.store.publish_status(self.identity.name, status, self.lease_id)
        self._published_status = status

    def _set_leadership(self, leadership: Leadership) -> None:
        if leadership.role is Role.LEADER:
            self._led_on_lease = self.lease_id
        elif leadership.role is Role.REPLICA:  # another node led after us
            self._led_on_lease = None
        if leadership.role is not Role.LEADER:
            self.leading_since = None
        elif leadership != self.leadership:  # a new term, ours
            self.leading_since = time.time()
        if leadership != self.leadership:
            log.info(
                "leadership: %s (leader %s, epoch %s)",
                leadership.role.value,
                leadership.leader_name,
                leadership.epoch,
            )
        self.leadership = leadership

    # --- views for the servers, read between cycles --------------------------------------

    def zone_view(self, state: ClusterState | None) -> ZoneView:
        """Ready once the state was read, and while this node is not cut off from etcd."""
        dns = self.config.dns
        nameservers = dict(dns.nameservers or [(self.identity.name, self.public_address)])
        return zone_view(
            dns.zone or "",
            state or ClusterState(revision=0, leader=None),
            {name: address for name, address in nameservers.items() if ip_version(address)},
            ttl=(state.settings if state else ClusterSettings()).dns_ttl_seconds,
            max_records=dns.max_records,
            now=time.time(),
            ready=state is not None and not self.cut_off(),
        )

    def _update_views(self) -> None:
        """The DNS answers and the listener history from this cycle's state. A failure
        here is logged: it must not end the loop that keeps the lease."""
        try:
            if self.dns is not None:
                self.dns.update(self.zone_view(self.state))
            if self.state is not None:
                self.listener_history.record(
                    time.time(), listeners_by_mount(self.state), list(self.state.mounts)
                )
        except Exception:
            self.health.unexpected_errors += 1
            log.exception("updating the DNS answers or the listener history failed")

    async def _keep_certificate(self, keeper: CertificateKeeper, state: ClusterState) -> None:
        """Install the cluster's certificate when it changed; order one when it is due."""
        facts = await keeper.install(state, time.time())
        if facts is not None:
            await self.front_door.open_tls(facts)
            release_free_memory()  # what reading and checking it freed
        keeper.consider(state, None if self.cut_off() else self.lease_id, time.time())

    async def _start_dns(self) -> None:
        """A zone that cannot be served (port 53 taken) is logged, and the node goes on
        serving listeners without it."""
        if self.dns is None:
            return
        self.dns.update(self.zone_view(None))
        try:
            await self.dns.start()
        except OSError as error:
            log.error("dns: cannot serve the zone: %s; going on without DNS", error)
            self.health.unexpected_errors += 1
            self.dns = None

    def effective_leadership(self) -> Leadership:
        return effective_leadership(self.leadership, self.cut_off())

    def node_status(self) -> NodeStatus:
        return node_status(self.identity, self.effective_leadership(), self.state, self.facts())

    def current_leader_status(self) -> NodeStatus | None:
        return current_leader_status(
            self.effective_leadership(), self.cut_off(), self.state, self.node_status
        )

    def snapshot(self) -> AgentSnapshot:
        leadership = self.effective_leadership()
        return AgentSnapshot(
            node_name=self.config.node_name,
            version=__version__,
            leading=leadership.role is Role.LEADER,
            epoch=leadership.epoch,
            etcd_reachable=not self.etcd_lost(),
            state=self.state,
            stats=self.stats,
            seconds_since_cycle=self._seconds_since_cycle(),
            timing=self.timing,
            cycles=self.health.cycles,
            last_cycle_seconds=self.health.last_cycle_seconds,
            etcd_errors=self.health.etcd_errors,
            keepalives_missed={
                "failed": self.health.keepalives_failed,
                "late": self.health.keepalives_late,
            },
            loop_lag=self.health.loop_lag,
            etcd_endpoints=len(self.store.store.clients.endpoints),
            etcd_away=self.store.away,
            icecast_errors=self.health.icecast_errors,
            icecast_reloads=self.health.icecast_reloads,
            icecast_restarts_asked=self.health.icecast_restarts_asked,
            unexpected_errors=self.health.unexpected_errors,
            sources_allowed=self.local_api.sources_allowed,
            sources_refused=self.local_api.sources_refused,
            leader=self.current_leader_status(),
            listener_limit=self.limits.max_listeners,
            public_address=self.public_address,
            transcoders=self.transcoders.states(),
            given_up=tuple(sorted(self._given_up_lately())),
            draining=self.state is not None and self.config.node_name in self.state.draining,
            air=air_reports(self.air, self.clock(), self.dead_air_seconds),
            dns_answers=None if self.dns is None else dict(self.dns.answered),
            dns_dropped=0 if self.dns is None else self.dns.dropped,
            certificate_orders=None
            if self.certificates is None
            else dict(self.certificates.orders),
            failsafe_held=None
            if self.failsafe is None
            else self.etcd_lost() and self.failsafe_held(),
            failsafe_rounds={} if self.failsafe is None else dict(self.failsafe.rounds),
            failsafe_answers={} if self.failsafe is None else dict(self.failsafe.answers),
            disks=self.disks,
            etcd_member_metrics=self.etcd_member_metrics.fresh(self.clock()),
            etcd_certificate_expiry=None
            if self.etcd_identity is None
            else self.etcd_identity.not_after,
            listeners_last_hour={
                mount: self.listener_history.series(mount, time.time())
                for mount in (self.state.mounts if self.state is not None else ())
            },
        )

    @property
    def dead_air_seconds(self) -> int:
        if self.state is None:
            return DEFAULT_DEAD_AIR_SECONDS
        return self.state.settings.dead_air_seconds

    @property
    def public_address(self) -> str:
        return self.config.front_door.public_address or self.config.node_address

    def local_view(self) -> LocalView:
        return LocalView(
            leading=self.effective_leadership().role is Role.LEADER,
            mounts=dict(self.state.mounts) if self.state is not None else {},
            leader=self.current_leader_status(),
            awaited=self._awaited_sources(),
        )

    def _awaited_sources(self) -> frozenset[str]:
        if self.state is None:
            return frozenset()
        return awaited_sources(
            self.state.transcoders, self.unclaimed_since, self.clock(), RELAY_HOLD_S
        )

    # --- executing ------------------------------------------------------------------------

    async def _reconcile_icecast(self) -> None:
        """From the leadership at this moment: a step-down between the plan and now must
        not render a leader's config."""
        async with self._icecast_lock:
            plan = icecast_plan(self.state, self.effective_leadership().role is Role.LEADER)
            if plan is None:
                return
            text = render_icecast_config(self.config, plan)
            if await self.icecast.apply_config(text):
                self.health.icecast_reloads += 1
                log.info("icecast reloaded as %s", plan.role)

    async def _reconcile_transcoders(self, plan: CyclePlan) -> None:
        """Claim, run, release. Nothing runs without a known leader or a live lease: the
        transcoders push to the leader, and a node cut off from etcd stops them before its
        claims can expire and be taken elsewhere."""
        lease_id, leader, state = self.lease_id, plan.transcoder_leader, self.state
        cut_off = self.cut_off()  # since the plan: the Icecast reload may have been slow
        transcoders = None if cut_off else plan.transcoders
        if transcoders is None or lease_id is None or leader is None or state is None:
            await self.transcoders.stop_all()
            return
        name = self.identity.name
        for mount in transcoders.release:
            await self.store.release_transcoder(mount, name)
        claim = transcoders.claim
        run = transcoders.run
        if claim is not None and await self.store.claim_transcoder(claim, name, lease_id):
            log.info("won the transcoder of %s", claim)
            run += (claim,)  # now: a standby of it goes on air in this cycle
            self.wake()
        programmes = {
            mount_name: mount.programme
            for mount_name, mount in state.mounts.items()
            if mount.programme is not None
        }
        # First: a programme started now must start with the preferred input.
        self.transcoders.set_preferences(preferred_inputs(programmes, state.preferences))
        standbys = set(transcoders.standby) - set(run)
        # Asked once per cycle, and only when a script is to be written (a path lookup
        # and a stat; the command itself only when the binary changed).
        version = (
            await self.transcoders.liquidsoap_version.current()
            if run or standbys
            else OLDEST_LIQUIDSOAP
        )
        jobs = {mount: self._job(state, state.mounts[mount], leader, version) for mount in run}
        for mount in standbys:
            jobs[mount] = dataclasses.replace(
                self._job(state, state.mounts[mount], leader, version), standby=True
            )
        await self.transcoders.converge(jobs, allowed=lambda: not self.cut_off())
        # A standby that keeps failing here: another node stands by (and takes over).
        for mount in self.transcoders.failing_standbys(GIVE_UP_AFTER_FAILURES):
            self._leave_to_others(mount, "standby")
        # After the converge has stopped its Liquidsoap: never two running.
        for mount in transcoders.give_up:
            self._leave_to_others(mount, "transcoder")
            await self.store.release_transcoder(mount, name)
        for mount in transcoders.hand_over:
            log.info("programme %s: left to another node (this node leads)", mount)
            await self.store.release_transcoder(mount, name)

    def _leave_to_others(self, mount: str, kind: str) -> None:
        """Its Liquidsoap keeps failing here: the mount is avoided for GIVE_UP_SECONDS
        (logged once, when that starts)."""
        if mount not in self.given_up:
            log.error(
                "%s %s: Liquidsoap failed %d times in a row here: left to the other nodes for %g s",
                kind,
                mount,
                GIVE_UP_AFTER_FAILURES,
                GIVE_UP_SECONDS,
            )
            self.given_up[mount] = self.clock()

    def _job(
        self,
        state: ClusterState,
        mount: MountSpec,
        leader: NodeStatus,
        version: LiquidsoapVersion,
    ) -> TranscoderJob:
        templates = self.config.templates_dir
        if mount.programme is not None:
            run_dir = self.transcoders.run_dir
            return programme_job(
                templates, mount, leader, run_dir, state.mounts, liquidsoap_version=version
            )
        parent = state.mounts.get(mount.transcode.parent) if mount.transcode is not None else None
        parent_format = parent.format if parent else None
        return transcoder_job(templates, mount, leader, parent_format, liquidsoap_version=version)

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

    async def _step_down(self, reason: str, epoch: int | None = None) -> None:
        """Stop acting as leader (of `epoch`, by default the one we know) now: refuse
        sources (the local API reads the leadership), drop connected ones first (no lock:
        a reload in progress must not delay this), then reconcile Icecast."""
        log.warning("stepping down: %s", reason)
        epoch = self.leadership.epoch if epoch is None else epoch
        self._set_leadership(Leadership(Role.DETACHED, None, epoch))
        mounts = self.state.mounts.values() if self.state is not None else []
        await self._guarded(
            "drop sources", lambda: self._drop_live_sources([m.live_path for m in mounts])
        )
        await self._guarded("reconcile icecast", self._reconcile_icecast)

    async def _read_icecast_stats(self) -> None:
        try:
            self.stats = await self.icecast.read_stats()
            self.icecast_answered_at = self.clock()
            self.icecast_unresponsive_since = None
            self.icecast_restart_asked_at = None  # a hang after this is a new one
        except IcecastUnresponsive:
            self.stats = None
            if self.icecast_unresponsive_since is None:
                self.icecast_unresponsive_since = self.clock()
            self._restart_icecast_if_hung()
            raise
        except IcecastError:
            self.stats = None
            self.icecast_unresponsive_since = None
            raise
        finally:
            mounts = list(self.state.mounts.values()) if self.state is not None else []
            live = live_ages(mounts, self.stats, time.time())
            before = self.air
            self.air = update_air(before, [mount.name for mount in mounts], live, self.clock())
            self.air_changed = air_changes(
                self.air_changed, before, self.air, self.clock(), time.time()
            )

    def _restart_icecast_if_hung(self) -> None:
        since, asked = self.icecast_unresponsive_since, self.icecast_restart_asked_at
        hung_after = self.config.icecast.hung_restart_seconds
        if restart_due(since, asked, self.clock(), hung_after) and self.icecast.request_restart():
            self.icecast_restart_asked_at = self.clock()
            self.health.icecast_restarts_asked += 1
            log.error(
                "icecast: no answer for %.0f s, every read timing out: asked for its restart",
                self.clock() - (since or 0.0),
            )

    # --- keepalive and fence -------------------------------------------------------------

    async def _keepalive_forever(self) -> None:
        failing_since: float | None = None
        last_through: float | None = None
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
                self.health.keepalives_failed += 1
                if failing_since is None:
                    failing_since = sent
                    log.warning("lease keepalive failing: %s", error)
                continue
            if failing_since is not None:
                log.info("lease keepalive back after %.1f s", sent - failing_since)
                failing_since = None
            elif last_through is not None and sent - last_through > 2 * self.keepalive_interval:
                self.health.keepalives_late += 1
            last_through = sent
            # An answer, even "no such lease", is etcd's: a node that hears it no longer
            # acknowledges a failsafe leader.
            self._heard_from_etcd(sent)
            if lease_id != self.lease_id:
                continue  # moved to a new lease meanwhile: this answer is about the old one
            if remaining_ttl <= 0:
                led = self._led_on_lease == lease_id  # set while leading, so leading counts
                log.warning(
                    "lease %x expired; taking a new one, and no transcoder%s for %.1f s "
                    "(other nodes' leases may have gone with it)",
                    lease_id,
                    "" if led else " nor leadership",
                    settle_seconds(self.timing),
                )
                self.lease_id = None
                self.lease_lost = LeaseLoss(sent, led=led)
                if self.leadership.role is Role.LEADER:
                    await self._step_down("our lease expired")
                self._set_leadership(Leadership(Role.DETACHED))
                self.wake()

    async def _fence_forever(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_interval / 2)
            if self.leadership.role is Role.LEADER and self.cut_off():
                await self._step_down(
                    f"cut off from etcd for {self.clock() - self.last_etcd_contact:.1f} s"
                )
            if self.cut_off() and self.transcoders.running_any():
                log.warning("cut off from etcd: stopping the transcoders")
                await self.transcoders.stop_all()

    async def _failsafe_forever(self) -> None:
        """While this node leads and etcd does not answer, ask every other node, twice a
        keepalive interval, whether it is cut off too (coordination/failsafe.py)."""
        failsafe = self.failsafe
        assert failsafe is not None  # noqa: S101 - started only with one
        while True:
            await asyncio.sleep(self.keepalive_interval / 2)
            leadership = self.leadership
            if (
                leadership.role is not Role.LEADER
                or leadership.epoch is None
                or not should_ping(self.clock(), self.last_etcd_contact, self.timing)
            ):
                failsafe.end_round()
                continue
            try:
                await failsafe.ask_round(
                    peers(self.state, self.config.node_name),
                    leadership.epoch,
                    timeout=self.keepalive_interval,
                    timing=self.timing,
                )
            except Exception:  # this task must never die
                log.exception("failsafe round failed")
                self.health.unexpected_errors += 1

    # --- graceful stop -------------------------------------------------------------------

    async def _shut_down(self) -> None:
        """Listeners to the next process first (a restart drops none); then stop leading,
        then revoke the lease: the leader key and this node's claims vanish at once and
        another node takes over well under a second."""
        await self.front_door.hand_over()
        if self.leadership.role is Role.LEADER:
            await self._step_down("stopping")
        await self.transcoders.stop_all()
        if self.certificates is not None:
            await self.certificates.stop()
        if self.lease_id is not None:
            lease_id, self.lease_id = self.lease_id, None
            await self._guarded("revoke lease", lambda: self.store.revoke_lease(lease_id))
        self.store.close()
        await self.holding.close()
        await self.local_api.stop()
        await self.front_door.stop()
        if self.dns is not None:
            await self.dns.stop()
        await self.icecast.close()
        if self.failsafe is not None:
            await self.failsafe.close()
