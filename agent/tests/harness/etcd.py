"""Real etcd on loopback: a single member or a cluster, with crash, hang and restart."""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import etcd3

from .pki import TlsFiles
from .ports import LOOPBACK, free_ports
from .processes import ManagedProcess, ServiceDirectory
from .waiting import StopWaiting, wait_for

START_TIMEOUT_SECONDS = 15.0
# Faster than etcd's defaults (100 ms / 1000 ms) so failover tests stay short on loopback.
HEARTBEAT_INTERVAL_MS = 50
ELECTION_TIMEOUT_MS = 500


class EtcdMember:
    """With `tls`, clients must present a certificate of its CA, as on a real node."""

    def __init__(
        self,
        name: str,
        client_port: int,
        peer_port: int,
        data_dir: Path,
        tls: TlsFiles | None = None,
    ) -> None:
        self.name = name
        self.client_port = client_port
        self.peer_port = peer_port
        self.data_dir = data_dir
        self.tls = tls
        self.process: ManagedProcess | None = None
        self._clients: list[etcd3.Etcd3Client] = []

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.client_port}"

    def _tls_arguments(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            f"--cert-file={self.tls.server_cert}",
            f"--key-file={self.tls.server_key}",
            f"--trusted-ca-file={self.tls.ca}",
            "--client-cert-auth",
        ]

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context

    @property
    def started_process(self) -> ManagedProcess:
        """The etcd process of this member, once `start()` made one."""
        if self.process is None:
            raise RuntimeError(f"etcd member {self.name} was never started")
        return self.process

    @property
    def peer_url(self) -> str:
        return f"http://{LOOPBACK}:{self.peer_port}"

    def start(self, initial_cluster: str, cluster_token: str, log_path: Path) -> None:
        # On a restart the data directory exists and etcd ignores the initial-cluster flags.
        argv = [
            "etcd",
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-token={cluster_token}",
            "--initial-cluster-state=new",
            f"--heartbeat-interval={HEARTBEAT_INTERVAL_MS}",
            f"--election-timeout={ELECTION_TIMEOUT_MS}",
            "--logger=zap",
            "--log-outputs=stderr",
            *self._tls_arguments(),
        ]
        self.process = ManagedProcess(f"etcd {self.name}", argv, log_path)
        self.process.start()

    def is_healthy(self) -> bool:
        with urllib.request.urlopen(
            f"{self.client_url}/health", timeout=1, context=self._ssl_context()
        ) as response:
            return json.load(response).get("health") == "true"

    def status(self) -> dict:
        """Maintenance status through etcd's JSON gateway: member id, leader id, raft term."""
        request = urllib.request.Request(
            f"{self.client_url}/v3/maintenance/status", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request, timeout=1, context=self._ssl_context()) as response:
            return json.load(response)

    def client(self) -> etcd3.Etcd3Client:
        """A client of this member; closed when the cluster stops."""
        tls = self.tls
        client = etcd3.client(
            host=LOOPBACK,
            port=self.client_port,
            timeout=5,
            ca_cert=str(tls.ca) if tls else None,
            cert_cert=str(tls.client_cert) if tls else None,
            cert_key=str(tls.client_key) if tls else None,
        )
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


class EtcdCluster:
    """N members on loopback, started together; index members by position."""

    def __init__(self, size: int, tls: TlsFiles | None = None) -> None:
        self.directory = ServiceDirectory(f"etcd{size}")
        self.token = f"radio-test-{uuid.uuid4().hex[:12]}"
        ports = free_ports(2 * size)
        self.members = [
            EtcdMember(
                f"m{index}",
                ports[2 * index],
                ports[2 * index + 1],
                self.directory.path / f"m{index}.data",
                tls,
            )
            for index in range(size)
        ]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{member.name}={member.peer_url}" for member in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [member.client_url for member in self.members]

    def _log_path(self, member: EtcdMember) -> Path:
        return self.directory.path / f"{member.name}.log"

    def start(self) -> None:
        for member in self.members:
            member.start(self.initial_cluster, self.token, self._log_path(member))
        for member in self.members:
            self.wait_healthy(member)

    def wait_healthy(self, member: EtcdMember, timeout: float = START_TIMEOUT_SECONDS) -> None:
        def healthy() -> bool:
            process = member.started_process
            if not process.is_running():
                raise StopWaiting(process.describe_exit())
            return member.is_healthy()

        wait_for(
            healthy,
            timeout=timeout,
            what=f"etcd member {member.name} to be healthy",
            explain=self.log_tails,
        )

    def leader_index(self, among: Sequence[int] | None = None) -> int:
        """Position of the raft leader: the member whose own id is the leader it reports."""
        candidates = range(len(self.members)) if among is None else among
        for index in candidates:
            status = self.members[index].status()
            if status["header"]["member_id"] == status["leader"]:
                return index
        raise AssertionError(f"no leader among etcd members {list(candidates)}")

    def move_leader(self, to: int, timeout: float = 5.0) -> None:
        """etcd's MoveLeader, asked of the raft leader through its JSON gateway. etcd answers
        only once it sees `to` lead: a transfer it aborts, or a leadership that moves on again
        within one tick, leaves the call to time out (TimeoutError)."""
        leader = self.members[self.leader_index()]
        target = self.members[to].status()["header"]["member_id"]
        request = urllib.request.Request(
            f"{leader.client_url}/v3/maintenance/transfer-leadership",
            data=json.dumps({"targetID": target}).encode(),
            method="POST",
        )
        context = leader._ssl_context()
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            answer.read()

    def raft_term(self, index: int) -> int:
        return int(self.members[index].status()["header"]["raft_term"])

    def wait_leader(self, among: Sequence[int], timeout: float = 10.0) -> int:
        """Wait until one of `among` leads. Write after this when a member was lost: a
        proposal forwarded to a dead leader hangs until etcd's request timeout (5 s+)."""
        (leader,) = wait_for(
            lambda: (self.leader_index(among),),
            timeout=timeout,
            what=f"an etcd leader among members {list(among)}",
        )
        return leader

    def kill(self, index: int) -> None:
        self.members[index].started_process.kill()

    def pause(self, index: int) -> None:
        self.members[index].started_process.pause()

    def resume(self, index: int) -> None:
        self.members[index].started_process.resume()

    @contextlib.contextmanager
    def unreachable(self) -> Iterator[None]:
        """Every member paused (SIGSTOP): no agent reaches etcd; resumed on the way out."""
        paused = []
        try:
            for index in range(len(self.members)):
                self.pause(index)
                paused.append(index)
            yield
        finally:
            for index in paused:
                self.resume(index)

    def restart(self, index: int) -> None:
        member = self.members[index]
        member.started_process.stop()
        member.start(self.initial_cluster, self.token, self._log_path(member))
        self.wait_healthy(member)

    def stop(self) -> None:
        # SIGKILL: a stopping etcd leader without quorum waits seconds to hand over, and the
        # data is thrown away anyway.
        for member in self.members:
            member.close_clients()
            if member.process is not None:
                member.process.kill()
        self.directory.remove()

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {member.name}\n{member.process.log_tail()}"
            for member in self.members
            if member.process is not None
        )
