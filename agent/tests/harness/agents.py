"""Real radio-agent processes, each with its own Icecast and its own etcd member, on
loopback: a whole cluster on one machine."""

from __future__ import annotations

import contextlib
import http.client
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import etcd3
import yaml
from prometheus_client.parser import text_string_to_metric_families

from radioagent.config import EtcdSettings
from radioagent.model import NodeStatus, node_status_from_json
from radioagent.settings import ClusterSettings
from radioagent.store.cluster import ClusterStore
from radioagent.store.keys import KeyLayout
from radioagent.store.records import decode_known_node

from .clients import SourceClient, connect_and_stream, is_slice_of, listen
from .etcd import EtcdCluster, EtcdMember
from .icecast import REPO_DIR, IcecastServer, IcecastSettings
from .media import AudioSample
from .pki import TlsFiles, ZoneCertificate
from .ports import LOOPBACK, free_port, free_ports
from .processes import ManagedProcess, ServiceDirectory
from .waiting import StopWaiting, wait_for

# The agent runs on Debian's Python and packages, as on a node: the dev virtualenv's own
# cryptography (ansible-lint needs a newer one) breaks Debian's python3-acme.
AGENT_COMMAND = ("/usr/bin/python3", "-m", "radioagent.daemon")
AGENT_ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO_DIR / "agent")}
# Short, to keep failover tests short; loop_wait + 2 * retry_timeout <= ttl.
TEST_TIMING = {"ttl": 4, "loop_wait": 1, "retry_timeout": 1.5}
FRONT_DOOR_HEADER_TIMEOUT = 2.0
ICECAST_HUNG_RESTART_S = 5.0  # the agents ask for a hung Icecast's restart after this


def etcd_tls_config(tls: TlsFiles | None) -> dict[str, str]:
    """The etcd section's TLS keys, as the radio_agent role writes them on a node."""
    if tls is None:
        return {}
    return {
        "ca_file": str(tls.ca),
        "cert_file": str(tls.client_cert),
        "key_file": str(tls.client_key),
    }


class AgentNode:
    def __init__(
        self,
        name: str,
        icecast: IcecastServer,
        etcd_members: list[EtcdMember],
        prefix: str,
        *,
        timing: dict[str, float] | None = None,
        holding_cache_dir: Path | None = None,
        limits: dict[str, int] | None = None,
        listen_address: str = LOOPBACK,
        dns: dict[str, Any] | None = None,
        https: dict[str, Any] | None = None,
        front_door_ports: list[int] | None = None,
        acme: dict[str, Any] | None = None,
        keep_raft_elsewhere: bool = False,
        failsafe_key: str | None = None,
    ) -> None:
        """`listen_address`: the front door's own loopback address (127.0.0.x), also its
        public address, so that the nodes are told apart (DNS answers); `dns`: the
        config's dns section; `keep_raft_elsewhere`: its config names its local member
        (`etcd.member_name`), which it then keeps from leading raft while it leads."""
        self.name = name
        self.icecast = icecast
        self.listen_address = listen_address
        self.etcd_member = etcd_members[0]  # its local member; the others are fallbacks
        self.directory = ServiceDirectory(f"agent-{name}")
        self.restart_request_file = self.directory.path / "icecast-restart"
        self.front_door_ports = front_door_ports or free_ports(2)
        self.config = {
            # Its own directory's filesystem, and one every machine has.
            "node": {
                "name": name,
                "address": LOOPBACK,
                "disk_paths": [str(self.directory.path), "/var/log"],
            },
            "etcd": {
                "endpoints": [f"{LOOPBACK}:{member.client_port}" for member in etcd_members],
                "prefix": prefix,
                # Without --listen-metrics-urls etcd serves /metrics on its client URL
                # (which asks for a client certificate under TLS: then none is read).
                **(
                    {"metrics_url": f"{etcd_members[0].client_url}/metrics"}
                    if etcd_members[0].tls is None
                    else {}
                ),
                **({"member_name": etcd_members[0].name} if keep_raft_elsewhere else {}),
                **etcd_tls_config(etcd_members[0].tls),
            },
            "icecast": {
                "port": icecast.port,
                "bind_address": LOOPBACK,
                "admin_password": icecast.settings.admin_password,
                "source_password": icecast.settings.source_password,
                "config_path": str(icecast.config_path),
                "reload_command": ["kill", "-HUP", str(icecast.process.pid)],
                "log_dir": str(icecast.directory.path),
                # What systemd's path unit watches on a node; here only written.
                "restart_request_file": str(self.restart_request_file),
                "hung_restart_seconds": ICECAST_HUNG_RESTART_S,
            },
            "local_api": {"port": free_port(), "bind_address": LOOPBACK},
            "front_door": {
                "ports": self.front_door_ports,
                "bind_address": listen_address,
                "header_timeout": FRONT_DOOR_HEADER_TIMEOUT,
                **({"public_address": listen_address} if listen_address != LOOPBACK else {}),
                **(https or {}),
            },
            **({"dns": dns} if dns is not None else {}),
            **({"acme": acme} if acme is not None else {}),
            **(
                {
                    "failsafe": {
                        "key": failsafe_key,
                        "state_file": str(self.directory.path / "failsafe-acknowledged"),
                    }
                }
                if failsafe_key is not None
                else {}
            ),
            "limits": dict(limits or {}),
            "transcoding": {
                "user": "liquidsoap",
                "run_dir": str(self.directory.path / "transcoders"),
            },
            "holding": {
                "cache_dir": str(holding_cache_dir or self.directory.path / "holding-cache"),
                # The agent runs as root here, and Liquidsoap refuses root.
                "liquidsoap_command": ["runuser", "-u", "liquidsoap", "--", "liquidsoap"],
            },
            "timing": dict(timing or TEST_TIMING),
            "templates_dir": str(REPO_DIR / "templates"),
        }
        self.config_path = self.directory.path / "config.yml"
        self.process: ManagedProcess | None = None
        self.environment = dict(AGENT_ENVIRONMENT)  # what the next start runs with

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    def start(self) -> None:
        door = self.config["front_door"]
        if "acme" in self.config and isinstance(door, dict):  # the cluster's, kept here
            door["tls_cert_file"] = str(self.directory.path / "tls" / "fullchain.pem")
            door["tls_key_file"] = str(self.directory.path / "tls" / "key.pem")
        self.write_config()
        self.process = ManagedProcess(
            f"radio-agent {self.name}",
            [*AGENT_COMMAND, "--config", str(self.config_path), "--log-level", "DEBUG"],
            self.directory.path / "agent.log",
            env=self.environment,
        )
        self.process.start()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def crash(self) -> None:
        """The whole node dies: its agent and its Icecast, with no goodbye."""
        self.kill()
        self.icecast.process.kill()

    def restore(self) -> None:
        """The machine back after a crash: its Icecast, then its agent, which reloads
        the new Icecast process."""
        self.icecast.start()
        icecast = self.config["icecast"]
        assert isinstance(icecast, dict)
        icecast["reload_command"] = ["kill", "-HUP", str(self.icecast.process.pid)]
        self.start()

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    @property
    def https_url(self) -> str:
        """This node's HTTPS front door, by the name its certificate covers."""
        door = self.config["front_door"]
        assert isinstance(door, dict)
        return f"https://{door['https_name']}:{door['tls_ports'][0]}"

    @property
    def dns_port(self) -> int:
        dns = self.config["dns"]
        assert isinstance(dns, dict)
        return int(dns["port"])

    def log_tail(self, lines: int = 60) -> str:
        return "" if self.process is None else self.process.log_tail(lines)

    @property
    def front_door_port(self) -> int:
        return self.front_door_ports[0]

    @property
    def front_door_url(self) -> str:
        return f"http://{self.listen_address}:{self.front_door_port}"

    def front_door_source(
        self, make: Callable[..., SourceClient], mount: str, password: str, **options: object
    ) -> SourceClient:
        """A source client for `mount` on this node's public port (piped to the leader)."""
        return make(self.listen_address, self.front_door_port, mount, password=password, **options)

    def source_client(self, mount: str, password: str, method: str = "SOURCE") -> SourceClient:
        return SourceClient(LOOPBACK, self.icecast.port, mount, password=password, method=method)

    def wait_accepting_source(self, mount: str, password: str, timeout: float = 5.0) -> float:
        """Seconds until this node's Icecast takes a source on `mount`."""
        started = time.monotonic()
        wait_for(
            lambda: self.accepts_source(mount, password),
            timeout=timeout,
            what=f"{self.name} to accept sources on {mount}",
            interval=0.02,
            explain=self.log_tail,
        )
        return time.monotonic() - started

    def wait_serving(self, mount: str, timeout: float = 10.0) -> None:
        """Until a listener of `mount` here gets a 200 (holding silence at least)."""
        wait_for(
            lambda: listen(f"{self.icecast.base_url}{mount}", 1024, timeout=2).status == 200,
            timeout=timeout,
            what=f"{mount} on {self.name}",
            explain=self.log_tail,
        )

    def wait_front_door_serving(self, mount: str, timeout: float = 10.0) -> None:
        """Until a listener asking this node's front door for `mount` gets audio (the
        nodes' reports name the mount once their Icecast serves it)."""
        wait_for(
            lambda: (
                listen(
                    f"{self.front_door_url}{mount}", 1024, timeout=2, follow_redirects=True
                ).status
                == 200
            ),
            timeout=timeout,
            what=f"{mount} through {self.name}'s front door",
            explain=self.log_tail,
        )

    def head_requests(self, path: str, count: int, user_agent: str) -> Counter[str]:
        """`count` HEAD requests on one keep-alive connection to this front door: where
        each one went ("200" when served here, else the port it was redirected to)."""
        outcomes: Counter[str] = Counter()
        connection = http.client.HTTPConnection(
            self.listen_address, self.front_door_port, timeout=5
        )
        try:
            for _ in range(count):
                connection.request("HEAD", path, headers={"User-Agent": user_agent})
                response = connection.getresponse()
                response.read()
                if response.status == 302:
                    location = urlparse(response.getheader("Location", ""))
                    outcomes[str(location.port)] += 1
                else:
                    outcomes[str(response.status)] += 1
        finally:
            connection.close()
        return outcomes

    def plays_source_audio(self, mount: str, audio: bytes) -> bool:
        """Do listeners of `mount` here get the source's own bytes (not holding silence)?"""
        received = listen(f"{self.icecast.base_url}{mount}", 8192, timeout=3)
        return received.status == 200 and is_slice_of(received.body[-4096:], audio)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """This agent's /metrics, parsed by prometheus_client: (name, labels) -> value."""
        text = listen(f"{self.front_door_url}/metrics", 1 << 22, timeout=3).body.decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of this node's metrics (its `node` label added), None if absent."""
        key = frozenset({"node": self.name, **labels}.items())
        return self.metrics().get((name, key))

    def accepts_source(self, mount: str, password: str) -> bool:
        """Would this node's Icecast take a source on `mount` right now? (Probe, then hang up.)"""
        client = self.source_client(mount, password)
        try:
            return client.connect(timeout=2).status == 200
        except OSError:
            return False
        finally:
            client.stop()


def start_live_source(
    make: Callable[..., SourceClient],
    node: AgentNode,
    audio: AudioSample,
    mount: str = "/_live/live.mp3",
    *,
    password: str = "dj-secret",
    method: str = "SOURCE",
    port: int | None = None,
) -> SourceClient:
    """A studio streaming `audio` into `node`'s Icecast (or into `port`, a front door).
    `make` builds the client: the tests' source_client_factory (which closes it at
    teardown) or SourceClient itself."""
    source = make(
        LOOPBACK,
        port or node.icecast.port,
        mount,
        password=password,
        method=method,
        content_type=audio.content_type,
    )
    return connect_and_stream(source, audio)


def connect_source(
    node: AgentNode,
    make: Callable[..., SourceClient],
    mount: str,
    password: str,
    audio: AudioSample,
) -> SourceClient | None:
    """A studio streaming `audio` into `mount` through `node`'s front door, or None if
    refused now (no leader yet)."""
    source = node.front_door_source(make, mount, password)
    if source.connect(timeout=2).status != 200:
        source.stop()
        return None
    source.start_streaming(audio.data, audio.bytes_per_second)
    return source


class RadioCluster:
    """N agents, each with its own Icecast and etcd member, sharing a fresh key prefix."""

    def __init__(
        self,
        etcd: EtcdCluster,
        icecasts: list[IcecastServer],
        timing: dict[str, float] | None = None,
        holding_cache_dir: Path | None = None,
        limits: dict[str, int] | None = None,
        *,
        zone: str | None = None,
        certificate: ZoneCertificate | None = None,
        acme: dict[str, Any] | None = None,
        own_member_only: bool = False,
        keep_raft_elsewhere: bool = False,
        failsafe_key: str | None = None,
    ) -> None:
        """`own_member_only`: each agent's config names its own member alone (the agents
        learn the others from etcd); `keep_raft_elsewhere`: see AgentNode. With `zone`,
        node N is at 127.0.0.N, as on real machines: its front door and its DNS on ports
        that every node shares, all of them named as nameservers; with
        `certificate` too (one for the zone and *.zone), node N also serves HTTPS as
        nodeN.<zone>; with `acme` instead (the config's acme section), the cluster orders
        its own certificate."""
        self.etcd = etcd
        self.prefix = f"/radio-test-{uuid.uuid4().hex[:8]}"
        self.layout = KeyLayout(self.prefix)
        members = etcd.members
        addresses = [f"127.0.0.{index + 1}" if zone else LOOPBACK for index in range(len(icecasts))]
        # A zone's nodes share port numbers, each on its own address: the CA (and DNS
        # clients) reach every node the same way, by name.
        http_ports, dns_port, https_port = (
            (free_ports(2), free_port(), free_port()) if zone else (None, 0, 0)
        )
        nameservers = {f"node{index + 1}": address for index, address in enumerate(addresses)}
        self.nodes = [
            AgentNode(
                f"node{index + 1}",
                icecast,
                # Its "local" member first, as on a real node, then the others.
                (members[index % len(members) :] + members[: index % len(members)])[
                    : 1 if own_member_only else None
                ],
                self.prefix,
                timing=timing,
                holding_cache_dir=holding_cache_dir,
                limits=limits,
                listen_address=addresses[index],
                dns={
                    "zone": zone,
                    "port": dns_port,
                    "bind_address": addresses[index],
                    "nameservers": nameservers,
                }
                if zone
                else None,
                https=None
                if zone is None or (certificate is None and acme is None)
                else {
                    "tls_ports": [https_port],
                    "tls_cert_file": str(certificate.cert) if certificate else "",
                    "tls_key_file": str(certificate.key) if certificate else "",
                    "https_name": f"node{index + 1}.{zone}",
                },
                front_door_ports=http_ports,
                acme=acme,
                keep_raft_elsewhere=keep_raft_elsewhere,
                failsafe_key=failsafe_key,
            )
            for index, icecast in enumerate(icecasts)
        ]
        self._stores: list[ClusterStore] = []

    def node(self, name: str) -> AgentNode:
        return next(node for node in self.nodes if node.name == name)

    def node_at(self, address: str) -> AgentNode:
        return next(node for node in self.nodes if node.listen_address == address)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.wait_all_present()

    def stop(self) -> None:
        for store in self._stores:
            store.close()
        for node in self.nodes:
            node.stop()
        for node in self.nodes:
            node.directory.remove()

    def client(self) -> etcd3.Etcd3Client:
        """A client of the first live member (tests kill members)."""
        for member in self.etcd.members:
            if member.process is not None and member.process.is_running():
                return member.client()
        raise AssertionError("no etcd member is running")

    def create_served_mount(self, fields: dict[str, Any], timeout: float = 30.0) -> None:
        """Create a mount and wait until a leader is known and every node's Icecast serves
        the mount (its holding audio at least)."""
        self.store().create_mount(fields)
        self.wait_leader()
        for node in self.nodes:
            node.wait_serving(f"/{fields['name']}", timeout=timeout)

    def store(self) -> ClusterStore:
        """The cluster store, as radioctl uses it, on the members still running."""
        running = [
            f"127.0.0.1:{member.client_port}"
            for member in self.etcd.members
            if member.process is not None and member.process.is_running()
        ]
        store = ClusterStore(
            EtcdSettings(endpoints=tuple(running), prefix=self.prefix), 5, every_endpoint=True
        )
        self._stores.append(store)
        return store

    def set_settings(self, settings: ClusterSettings) -> None:
        """Cluster settings in etcd, as `radioctl config set` writes them."""
        self.store().update_settings(lambda _: settings)

    def drain(self, name: str) -> None:
        """As `radioctl node drain` marks a node."""
        self.store().drain(name, since=int(time.time()))

    def leader_name(self) -> str | None:
        value, _ = self.client().get(self.layout.leader)
        return value.decode() if value is not None else None

    def statuses(self) -> dict[str, NodeStatus]:
        return {
            metadata.key.decode().removeprefix(self.layout.nodes): node_status_from_json(value)
            for value, metadata in self.client().get_prefix(self.layout.nodes)
        }

    def known_up(self) -> set[str]:
        """Nodes whose `known` record says up (registered, not marked down)."""
        return {
            metadata.key.decode().removeprefix(self.layout.known_nodes)
            for value, metadata in self.client().get_prefix(self.layout.known_nodes)
            if decode_known_node(value) is None
        }

    def _check_agents_alive(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.exit_code() not in (None, 0, -9, -15):
                raise StopWaiting(node.process.describe_exit())

    def leader_taking_sources(self, mount: str, password: str) -> AgentNode:
        """The leader, once its Icecast takes sources on `mount`."""
        leader = self.node(self.wait_leader())
        leader.wait_accepting_source(mount, password)
        return leader

    def accepting_nodes(self, mount: str, password: str) -> list[str]:
        """Nodes whose Icecast takes a source on `mount` now; a node whose agent is dead
        is probed too (it must refuse)."""
        return [
            node.name
            for node in self.nodes
            if node.icecast.process.is_running() and node.accepts_source(mount, password)
        ]

    def crash_leader(self, leader: AgentNode, timeout: float) -> AgentNode:
        """Crash the leader's whole node; the node that leads next."""
        leader.crash()
        return self.node(self.wait_leader(timeout=timeout, other_than=leader.name))

    def wait_leader(self, timeout: float = 10.0, other_than: str | None = None) -> str:
        def leader() -> str | None:
            self._check_agents_alive()
            name = self.leader_name()
            return name if name is not None and name != other_than else None

        return wait_for(leader, timeout=timeout, what="a leader", explain=self.log_tails)

    def wait_all_present(self, timeout: float = 15.0) -> None:
        def present() -> bool:
            self._check_agents_alive()
            running = {node.name for node in self.nodes if node.is_running()}
            statuses = self.statuses()
            return (
                running <= set(statuses)
                and any(status.role == "leader" for status in statuses.values())
                and running <= self.known_up()
            )

        wait_for(
            present,
            timeout=timeout,
            what="every agent to publish its status and register",
            explain=self.log_tails,
        )

    def log_tails(self, lines: int = 60) -> str:
        return "\n".join(f"--- {node.name}\n{node.log_tail(lines)}" for node in self.nodes)


def icecast_settings_for_agents() -> IcecastSettings:
    return IcecastSettings(source_password="source-secret-node", admin_password="admin-secret")


def start_radio_cluster(stack: contextlib.ExitStack, holding_cache_dir: Path) -> RadioCluster:
    """Three agents, each with its own Icecast and etcd member, started now and stopped by
    `stack` (in reverse, however it ends): for modules that share one cluster. The
    Icecasts start while etcd elects its leader."""
    icecasts = [IcecastServer(icecast_settings_for_agents()) for _ in range(3)]
    for icecast in icecasts:
        stack.callback(icecast.stop)
        icecast.launch()
    etcd = EtcdCluster(3)
    stack.callback(etcd.stop)
    etcd.start()
    for icecast in icecasts:
        icecast.wait_started()
    cluster = RadioCluster(etcd, icecasts, holding_cache_dir=holding_cache_dir)
    stack.callback(cluster.stop)
    cluster.start()
    return cluster
