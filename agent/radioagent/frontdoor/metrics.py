"""Prometheus metrics, collected from an agent snapshot at scrape time (no global state)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from radioagent.frontdoor.view import AgentSnapshot, FrontDoorStats


class AgentCollector(Collector):
    def __init__(self, snapshot: AgentSnapshot, door: FrontDoorStats) -> None:
        self.snapshot = snapshot
        self.door = door

    def collect(self) -> Iterator[object]:
        now = self.snapshot
        door = self.door
        node = [now.node_name]
        info = InfoMetricFamily("radio_agent_build", "Agent build information")
        info.add_metric([], {"version": now.version, "node": now.node_name})
        yield info
        for name, help_text, value in (
            ("radio_node_leader", "1 while this node leads (takes sources)", float(now.leading)),
            (
                "radio_leader_epoch",
                "Epoch (fencing token) of the leader this node knows",
                float(now.epoch or 0),
            ),
            (
                "radio_etcd_reachable",
                "1 while the lease keepalive reaches etcd",
                float(now.etcd_reachable),
            ),
            ("radio_icecast_up", "1 while the local Icecast answers", float(now.stats is not None)),
            (
                "radio_loop_duration_seconds",
                "Duration of the last reconcile loop",
                now.last_cycle_seconds,
            ),
            (
                "radio_sources_piped",
                "Source connections being piped to the leader now",
                door.sources_active,
            ),
            ("radio_front_door_connections", "Open front door connections", door.connections),
        ):
            gauge = GaugeMetricFamily(name, help_text, labels=["node"])
            gauge.add_metric(node, value)
            yield gauge
        timing = GaugeMetricFamily(
            "radio_timing_seconds",
            "Timing this agent follows (the cluster's settings, else its own)",
            labels=["node", "setting"],
        )
        for setting, value in asdict(now.timing).items():
            timing.add_metric([*node, setting], value)
        yield timing
        for name, help_text, value in (
            ("radio_loop_cycles", "Reconcile loops run", now.cycles),
            ("radio_etcd_errors", "etcd calls that failed", now.etcd_errors),
            (
                "radio_icecast_errors",
                "Icecast reloads or admin calls that failed",
                now.icecast_errors,
            ),
            ("radio_icecast_reloads", "Icecast configuration reloads", now.icecast_reloads),
            (
                "radio_unexpected_errors",
                "Loop steps that failed unexpectedly (see the log)",
                now.unexpected_errors,
            ),
            ("radio_sources_allowed", "Source connections this node took", now.sources_allowed),
            ("radio_sources_refused", "Source connections this node refused", now.sources_refused),
            (
                "radio_proxied_bytes",
                "Audio bytes the front door wrote to listeners",
                door.bytes_out,
            ),
            (
                "radio_slow_listeners_dropped",
                "Listeners cut off because they did not keep up",
                door.slow_listeners_dropped,
            ),
            (
                "radio_source_connections",
                "Source connections piped to the leader",
                door.sources_opened,
            ),
            (
                "radio_source_connections_failed",
                "Source connections that could not reach the leader",
                door.sources_failed,
            ),
        ):
            counter = CounterMetricFamily(name, help_text, labels=["node"])
            counter.add_metric(node, value)
            yield counter
        listeners = GaugeMetricFamily(
            "radio_listeners", "Listeners on this node, per mount", labels=["node", "mount"]
        )
        mounts = sorted(now.state.mounts) if now.state is not None else []
        for mount in mounts:
            listeners.add_metric([now.node_name, mount], door.listeners.get(mount, 0))
        yield listeners
        redirects = CounterMetricFamily(
            "radio_listener_requests",
            "Listener requests by outcome: here (served), redirect, unavailable (503)",
            labels=["node", "outcome"],
        )
        for outcome in ("here", "redirect", "unavailable"):
            redirects.add_metric([now.node_name, outcome], door.directions.get(outcome, 0))
        yield redirects
        refused = CounterMetricFamily(
            "radio_http_refused",
            "Requests answered with an error, by status",
            labels=["node", "status"],
        )
        for status, count in sorted(door.refused.items()):
            refused.add_metric([now.node_name, str(status)], count)
        yield refused
        running = GaugeMetricFamily(
            "radio_transcoder_running",
            "1 while this node's Liquidsoap for the transcoded mount runs",
            labels=["node", "mount"],
        )
        silent = GaugeMetricFamily(
            "radio_mount_silent",
            "1 while the transcoder's input is dead air (silent or missing parent)",
            labels=["node", "mount"],
        )
        for mount, state in sorted(now.transcoders.items()):
            running.add_metric([now.node_name, mount], float(state.running))
            silent.add_metric([now.node_name, mount], float(bool(state.silent)))
        yield running
        yield silent


def metrics_text(snapshot: AgentSnapshot, door: FrontDoorStats) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(snapshot, door))
    return generate_latest(registry)
