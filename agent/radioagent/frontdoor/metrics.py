"""Prometheus metrics, collected from an agent snapshot at scrape time (no global state)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from radioagent.etcd_member_metrics import labelled
from radioagent.frontdoor.view import AgentSnapshot, FrontDoorStats
from radioagent.nowplaying import mount_now_playing
from radioagent.status import listeners_by_mount, programme_reports


class AgentCollector(Collector):
    def __init__(self, snapshot: AgentSnapshot, door: FrontDoorStats) -> None:
        self.snapshot = snapshot
        self.door = door

    def collect(self) -> Iterator[Metric]:
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
            (
                "radio_etcd_endpoints",
                "etcd endpoints this agent may use: its configured ones and etcd's members",
                float(now.etcd_endpoints),
            ),
            (
                "radio_etcd_own_endpoint",
                "1 while the agent talks to its own (first configured) etcd endpoint, 0 while "
                "to another node's member",
                float(not now.etcd_away),
            ),
            ("radio_icecast_up", "1 while the local Icecast answers", float(now.stats is not None)),
            (
                "radio_loop_duration_seconds",
                "Duration of the last reconcile loop",
                now.last_cycle_seconds,
            ),
            (
                "radio_sources_piped",
                "Source connections (studios) held now, piped to the leader or waiting for one",
                door.sources_active,
            ),
            ("radio_front_door_connections", "Open front door connections", door.connections),
            (
                "radio_hls_held_bytes",
                "Bytes of HLS segments this node keeps in memory, every mount",
                door.hls_held_bytes,
            ),
            ("radio_node_draining", "1 while the node is drained", float(now.draining)),
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
        if now.listener_limit is not None:
            limit = GaugeMetricFamily(
                "radio_node_max_listeners", "The node's listener limit", labels=["node"]
            )
            limit.add_metric(node, now.listener_limit)
            yield limit
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
                "radio_icecast_restarts_asked",
                "Restarts of a hung Icecast asked of systemd (no answer, every read timing out)",
                now.icecast_restarts_asked,
            ),
            (
                "radio_unexpected_errors",
                "Loop steps that failed unexpectedly (see the log)",
                now.unexpected_errors,
            ),
            ("radio_sources_allowed", "Source connections this node took", now.sources_allowed),
            ("radio_sources_refused", "Source connections this node refused", now.sources_refused),
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
            (
                "radio_sources_repiped",
                "Times a studio went on with a new leader without being disconnected",
                door.sources_repiped,
            ),
            (
                "radio_sources_overflowed",
                "Studios cut because no leader took their audio before their backlog filled",
                door.sources_overflowed,
            ),
            (
                "radio_sources_stalled",
                "Studios cut because they sent nothing when the leader dropped their source",
                door.sources_stalled,
            ),
        ):
            counter = CounterMetricFamily(name, help_text, labels=["node"])
            counter.add_metric(node, value)
            yield counter
        redirects = CounterMetricFamily(
            "radio_listener_requests",
            "Listener requests by outcome: here (served), redirect, unavailable (503)",
            labels=["node", "outcome"],
        )
        for outcome in ("here", "redirect", "unavailable"):
            redirects.add_metric([now.node_name, outcome], door.directions.get(outcome, 0))
        yield redirects
        resumed = CounterMetricFamily(
            "radio_listeners_resumed",
            "Listeners taken over from the agent's previous process (a restart): in_place "
            "(on at the next byte) or after_gap (its place was no longer in the burst)",
            labels=["node", "how"],
        )
        resumed.add_metric([now.node_name, "in_place"], door.resumed_in_place)
        resumed.add_metric([now.node_name, "after_gap"], door.resumed_after_gap)
        yield resumed
        refused = CounterMetricFamily(
            "radio_http_refused",
            "Requests answered with an error, by status",
            labels=["node", "status"],
        )
        for status, count in sorted(door.refused.items()):
            refused.add_metric([now.node_name, str(status)], count)
        yield refused
        yield from bounds_and_lag(now, door)
        if now.dns_answers is not None:
            answers = CounterMetricFamily(
                "radio_dns_answers",
                "DNS replies this node sent for the cluster's zone, by response code",
                labels=["node", "rcode"],
            )
            for rcode, count in sorted(now.dns_answers.items()):
                answers.add_metric([now.node_name, rcode], count)
            yield answers
            dropped = CounterMetricFamily(
                "radio_dns_packets_dropped",
                "DNS packets that got no reply (not a query, or unreadable)",
                labels=["node"],
            )
            dropped.add_metric(node, now.dns_dropped)
            yield dropped
        yield from _failsafe_families(now)
        yield from _certificate_families(now, door)
        yield from _host_families(now)
        yield from _mount_families(now, door)
        yield from _programme_families(now)


def _failsafe_families(now: AgentSnapshot) -> Iterator[Metric]:
    if now.failsafe_held is None:
        return
    held = GaugeMetricFamily(
        "radio_failsafe_held",
        "1 while this node is cut off from etcd and acts on the failsafe (its leader "
        "acknowledged by every node, or acknowledging its leader)",
        labels=["node"],
    )
    held.add_metric([now.node_name], float(now.failsafe_held))
    yield held
    for name, help_text, counts, results in (
        (
            "radio_failsafe_rounds",
            "The leader's rounds of failsafe pings while cut off from etcd, by result",
            now.failsafe_rounds,
            ("held", "failed"),
        ),
        (
            "radio_failsafe_answers",
            "Failsafe pings this node answered, by result",
            now.failsafe_answers,
            ("acknowledged", "refused", "invalid"),
        ),
    ):
        counter = CounterMetricFamily(name, help_text, labels=["node", "result"])
        for result in results:
            counter.add_metric([now.node_name, result], counts.get(result, 0))
        yield counter


def _host_families(now: AgentSnapshot) -> Iterator[Metric]:
    """Free space where the node keeps what it cannot lose, and the local etcd member's
    own families (etcd_*, relabelled with the node), for the disk and etcd alerts."""
    free = GaugeMetricFamily(
        "radio_disk_free_bytes",
        "Space an unprivileged writer may still use on the filesystem holding the path",
        labels=["node", "path"],
    )
    size = GaugeMetricFamily(
        "radio_disk_size_bytes", "Size of the filesystem holding the path", labels=["node", "path"]
    )
    for disk in now.disks:
        free.add_metric([now.node_name, disk.path], disk.free_bytes)
        size.add_metric([now.node_name, disk.path], disk.size_bytes)
    yield free
    yield size
    yield from labelled(now.etcd_member_metrics, now.node_name)


def _certificate_families(now: AgentSnapshot, door: FrontDoorStats) -> Iterator[Metric]:
    node = [now.node_name]
    if door.certificate is not None:
        expiry = GaugeMetricFamily(
            "radio_tls_certificate_expiry_timestamp_seconds",
            "When the certificate this node's HTTPS serves expires (Unix time)",
            labels=["node"],
        )
        expiry.add_metric(node, door.certificate.not_after)
        yield expiry
        for name, help_text, value in (
            (
                "radio_tls_certificate_reloads",
                "Certificates loaded again",
                door.certificate.reloads,
            ),
            (
                "radio_tls_certificate_reload_failures",
                "New certificates refused (the one in use kept)",
                door.certificate.reload_failures,
            ),
        ):
            counter = CounterMetricFamily(name, help_text, labels=["node"])
            counter.add_metric(node, value)
            yield counter
    if now.certificate_orders is not None:
        orders = CounterMetricFamily(
            "radio_acme_orders",
            "Certificate orders this node made, by result (issued, failed)",
            labels=["node", "result"],
        )
        for result in ("issued", "failed"):
            orders.add_metric([now.node_name, result], now.certificate_orders.get(result, 0))
        yield orders


def _mount_families(now: AgentSnapshot, door: FrontDoorStats) -> Iterator[Metric]:
    """Per mount, for every mount in the cluster: what this node's Icecast, front door and
    transcoders see of it."""
    labels = ["node", "mount"]
    families = {
        name: (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(
            name, help_text, labels=labels
        )
        for name, kind, help_text in _MOUNT_FAMILIES
    }
    mounts = now.state.mounts if now.state is not None else {}
    cluster_listeners = listeners_by_mount(now.state) if now.state is not None else {}
    stats = now.stats
    programme_inputs = {
        entry
        for mount in mounts.values()
        if mount.programme is not None
        for entry in mount.programme.input_names
    }
    for name, mount in sorted(mounts.items()):
        key = [now.node_name, name]
        air = now.air.get(name)
        families["radio_mount_programme_input"].add_metric(key, float(name in programme_inputs))
        families["radio_mount_listeners"].add_metric(key, door.listeners.get(name, 0))
        families["radio_cluster_mount_listeners"].add_metric(key, cluster_listeners.get(name, 0))
        families["radio_mount_sent_bytes"].add_metric(key, door.bytes_by_mount.get(name, 0))
        families["radio_mount_hls_sessions"].add_metric(key, door.hls_sessions.get(name, 0))
        families["radio_mount_hls_sent_bytes"].add_metric(key, door.hls_bytes_by_mount.get(name, 0))
        if stats is not None and mount.path in stats.bytes_read:
            families["radio_mount_received_bytes"].add_metric(key, stats.bytes_read[mount.path])
        if air is not None:
            families["radio_mount_source_connected"].add_metric(key, float(air.live))
            families["radio_mount_source_connected_seconds"].add_metric(key, air.live_seconds)
            families["radio_mount_dead_air_seconds"].add_metric(key, air.dead_air_seconds)
            families["radio_mount_dead_air"].add_metric(key, float(air.dead_air))
        if now.state is not None:
            playing = mount_now_playing(name, now.state.mounts, now.state.titles)
            if playing is not None:
                families["radio_mount_title_changes"].add_metric(key, playing.changes)
        if mount.produced:
            state = now.transcoders.get(name)
            families["radio_transcoder_running"].add_metric(
                key, float(state is not None and state.running)
            )
            families["radio_transcoder_given_up"].add_metric(key, float(name in now.given_up))
            if state is not None and mount.transcode is not None:  # a programme: its own
                families["radio_mount_silent"].add_metric(key, float(bool(state.silent)))
    yield from families.values()


_MOUNT_FAMILIES = (
    (
        "radio_mount_programme_input",
        "gauge",
        "1 if the mount is an input of a programme (its dead air is the programme's matter)",
    ),
    ("radio_mount_listeners", "gauge", "Listeners of the mount on this node (HLS included)"),
    (
        "radio_mount_hls_sessions",
        "gauge",
        "HLS players of the mount on this node (each a session: a token, or address and agent)",
    ),
    (
        "radio_mount_hls_sent_bytes",
        "counter",
        "HLS segment bytes this node sent for the mount",
    ),
    (
        "radio_cluster_mount_listeners",
        "gauge",
        "Listeners of the mount on all nodes, as this node reads etcd (aggregate with max)",
    ),
    (
        "radio_mount_source_connected",
        "gauge",
        "1 while the mount's live audio reaches this node's Icecast (else: holding audio)",
    ),
    (
        "radio_mount_source_connected_seconds",
        "gauge",
        "How long the mount's live audio has been reaching this node; 0 when it does not",
    ),
    (
        "radio_mount_dead_air_seconds",
        "gauge",
        "How long this node has been without the mount's live audio; 0 while it has it",
    ),
    (
        "radio_mount_dead_air",
        "gauge",
        "1 once the mount's dead air here lasts the cluster's dead_air_seconds",
    ),
    (
        "radio_mount_received_bytes",
        "counter",
        "Audio bytes this node's Icecast received for the mount (resets on reconnect)",
    ),
    (
        "radio_mount_sent_bytes",
        "counter",
        "Audio bytes the front door wrote to the mount's listeners on this node",
    ),
    (
        "radio_mount_title_changes",
        "counter",
        "Title changes of the mount (the cluster's count, kept in etcd with the titles)",
    ),
    (
        "radio_transcoder_running",
        "gauge",
        "1 on the node whose Liquidsoap runs the transcoded mount or programme, 0 elsewhere",
    ),
    (
        "radio_mount_silent",
        "gauge",
        "1 while the transcoder's input is dead air (silent or missing parent)",
    ),
    (
        "radio_transcoder_given_up",
        "gauge",
        "1 while this node leaves the transcoded mount or programme to the other nodes"
        " (its Liquidsoap failed here several times in a row)",
    ),
)


def _programme_families(now: AgentSnapshot) -> Iterator[Metric]:
    """Per programme, from its owner's report in etcd: every agent exports the same
    values (labelled with its own node; aggregate with max), so one scrape of any node
    tells which input is on air."""
    programme_labels, input_labels = ["node", "programme"], ["node", "programme", "input"]
    families = {
        name: GaugeMetricFamily(
            name, help_text, labels=input_labels if per_input else programme_labels
        )
        for name, per_input, help_text in _PROGRAMME_FAMILIES
    }
    state = now.state
    for name, report in sorted((programme_reports(state) if state is not None else {}).items()):
        programme = state.mounts[name].programme if state is not None else None
        if programme is None:
            continue
        key = [now.node_name, name]
        families["radio_programme_loudness_min_lufs"].add_metric(key, programme.loudness.min_lufs)
        families["radio_programme_loudness_max_lufs"].add_metric(key, programme.loudness.max_lufs)
        for entry in report["inputs"]:
            input_key = [*key, entry["mount"]]
            families["radio_programme_input_preferred"].add_metric(
                input_key, float(entry["mount"] == report["preferred"])
            )
            families["radio_programme_input_automatic"].add_metric(
                input_key, float(entry["automatic"])
            )
        if report["owner"] is None or report["is_output_blank"] is None:
            continue  # no Liquidsoap reports it now: no state to tell
        on_air = report["real_output"]
        families["radio_programme_blank"].add_metric(key, float(report["is_output_blank"]))
        families["radio_programme_fallback"].add_metric(
            key, float(on_air != programme.first_choice(report["preferred"]))
        )
        families["radio_programme_output_loudness_lufs"].add_metric(key, report["lufs"])
        for entry in report["inputs"]:
            input_key = [*key, entry["mount"]]
            families["radio_programme_input_on_air"].add_metric(
                input_key, float(entry["mount"] == on_air)
            )
            if "connected" in entry:
                families["radio_programme_input_connected"].add_metric(
                    input_key, float(entry["connected"])
                )
                families["radio_programme_input_silent"].add_metric(
                    input_key, float(entry["silent"])
                )
                families["radio_programme_input_loudness_lufs"].add_metric(input_key, entry["lufs"])
    yield from families.values()


_PROGRAMME_FAMILIES = (
    ("radio_programme_input_on_air", True, "1 for the programme's input on air, 0 for the others"),
    ("radio_programme_input_preferred", True, "1 for the input an operator prefers (none: 0s)"),
    (
        "radio_programme_input_automatic",
        True,
        "1 for an automatic input, 0 for a manual-only one (on air only when preferred)",
    ),
    ("radio_programme_blank", False, "1 while the programme plays its safe blank (no input)"),
    (
        "radio_programme_fallback",
        False,
        "1 while the input on air is not the first choice (the preferred input, else the "
        "first automatic one): a backup, or the blank",
    ),
    ("radio_programme_input_connected", True, "1 while the input's stream reaches the programme"),
    (
        "radio_programme_input_silent",
        True,
        "1 while the input is below the silence threshold for the silence time",
    ),
    (
        "radio_programme_output_loudness_lufs",
        False,
        "Short-term loudness of the programme's output (EBU R128, 3 s; -120: digital silence)",
    ),
    (
        "radio_programme_input_loudness_lufs",
        True,
        "Short-term loudness of each input (EBU R128, 3 s; -120: digital silence)",
    ),
    ("radio_programme_loudness_min_lufs", False, "The programme's loudness range: its low end"),
    ("radio_programme_loudness_max_lufs", False, "The programme's loudness range: its high end"),
)


def metrics_text(snapshot: AgentSnapshot, door: FrontDoorStats) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(snapshot, door))
    return generate_latest(registry)


def bounds_and_lag(now: AgentSnapshot, door: FrontDoorStats) -> Iterator[Metric]:
    """The front door's per-address refusals, the lease keepalives missed, the loop's lag."""
    node = [now.node_name]
    limited = CounterMetricFamily(
        "radio_front_door_address_limited",
        "Connections, listeners and sources refused because their client address had "
        "its bound open already (429), by kind",
        labels=["node", "kind"],
    )
    for kind in ("connection", "listener", "source"):
        limited.add_metric([now.node_name, kind], door.address_limited.get(kind, 0))
    yield limited
    locked = CounterMetricFamily(
        "radio_front_door_locked_out",
        "Source and title requests refused (429) because their address failed to log in "
        "too often lately",
        labels=["node"],
    )
    locked.add_metric(node, door.locked_out)
    yield locked
    missed = CounterMetricFamily(
        "radio_lease_keepalives_missed",
        "Lease keepalives that failed, or went out over two intervals after the last one "
        "that got through (late)",
        labels=["node", "reason"],
    )
    for reason in ("failed", "late"):
        missed.add_metric([now.node_name, reason], now.keepalives_missed.get(reason, 0))
    yield missed
    if now.etcd_certificate_expiry is not None:
        expiry = GaugeMetricFamily(
            "radio_etcd_certificate_expiry_timestamp_seconds",
            "When this node's etcd client certificate (its identity in the cluster) expires "
            "(Unix time)",
            labels=["node"],
        )
        expiry.add_metric(node, now.etcd_certificate_expiry)
        yield expiry
    lag = HistogramMetricFamily(
        "radio_event_loop_lag_seconds",
        "How late the agent's event loop ran a timer due every 0.1 s",
        labels=["node"],
    )
    lag.add_metric(node, now.loop_lag.cumulative(), now.loop_lag.total_seconds)
    yield lag
