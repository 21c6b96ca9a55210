"""What the Molecule scenarios verify on the testbed, with real clients on the wire: run
from the controller namespace, a studio (ffmpeg, PUT through a front door) and listeners
(HTTP, following redirects, reading audio bytes and measuring their loudness).

    checks.py single NODE     # services up; a source's audio reaches a listener
    checks.py https NODE      # HTTPS with the certificate ordered from the ACME CA by
                              # DNS-01: for the zone and *.zone
    checks.py https-nodes NODE...  # the same on each node, ordered by HTTP-01: for the
                              # zone and each node's name
    checks.py cluster         # one leader; every node answers the zone (dig); redirected
                              # listener, transcoded mount; then
                              # the leader node is killed: new leader, the studio on a
                              # survivor rides through (never cut), the one on the dead
                              # node comes back through another, listeners on the
                              # survivors still connected
    checks.py started NODE... # JSON: when each service of the nodes started, and its PID
    checks.py added NODE      # the node is in the cluster, runs etcd or its gateway, and
                              # a source's audio reaches a listener through it
    checks.py rejoined NODE...# services up on each, and the cluster lists them all
    checks.py restart NODE    # an agent restart drops none of the node's listeners
    checks.py removed NODE    # the others lead and serve without it; etcd is healthy
    checks.py hardened NODE UNIT...  # each unit runs with an exposure of at most 4.5
    checks.py firewall NODE   # the firewall's table has its rules, an operator's table
                              # survived site.yml, a reload and a restart of it
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import acme_ca
import testbed
from demo import SOURCE_PASSWORD, TONE_SECONDS, Studio, enter_controller_namespace, make_tone

# The agent's test harness measures loudness the same way for the integration tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))
from tests.harness.audio import analyse_mp3, strip_icy
from tests.harness.media import loudness_db
from tests.harness.rawstream import RawStream

T = TypeVar("T")
SERVICES = ("etcd", "icecast2", "icecast2-reload.path", "radio-agent", "radio-firewall")
LOUD_DB = -50.0  # a tone is about -25 dB; holding silence is digital silence (-91 dB)
TONE = testbed.BASE_DIR / "demo" / "tone.mp3"
# The agents' default lease (radioagent.config.Timing; a unit test keeps them equal: the
# checks run on the host's own Python, without the agent's dependencies).
TTL_S = 8.0
AGENT = "radio-agent"
AGENT_MAX_EXPOSURE = 3.0  # systemd-analyze security's score of the agent's unit
# ... and of Icecast's, etcd's and the etcd gateway's units (the roles' sandboxes).
SERVICE_MAX_EXPOSURE = 4.5
FIREWALL_TABLE = "radio_cluster"  # the firewall role's only nftables table
# A table of the operator's own, made on the node before the firewall role runs
# (molecule/default/converge.yml): the role must never flush it.
OPERATOR_TABLE = "operator_own"
OPERATOR_RULE = 'comment "the operator\'s own"'
ZONE = "stream.radio.test"  # inventory/demo's radio_dns_zone


class CheckFailed(Exception):
    pass


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `condition` until it returns a truthy value, and return that (None: not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = condition()
        except (
            OSError,
            ValueError,
            TypeError,
            KeyError,
            subprocess.SubprocessError,
            testbed.TestbedError,  # e.g. radioctl while etcd elects a new raft leader
        ):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)  # polling other machines: no event to wait on


def status(node: str) -> dict:
    return json.loads(testbed.run_in(node, ["radioctl", "status", "--json"]).stdout)


def status_listing_itself(node: str) -> dict | None:
    """`node`'s radioctl status, once it lists `node` among the nodes."""
    document = status(node)
    return document if node in document["nodes"] else None


def lists_exactly(node: str, names: Sequence[str]) -> bool:
    """`node`'s radioctl status lists exactly the nodes `names`."""
    return sorted(status(node)["nodes"]) == sorted(names)


def fetch(node: str, path: str, nbytes: int, timeout: float = 10.0) -> bytes:
    """GET from a node's front door (port 80), following its redirects; `nbytes` of body."""
    host, port = testbed.node_address(node), 80
    for _ in range(3):
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request("GET", path, headers={"User-Agent": "radio-check"})
            response = connection.getresponse()
            if response.status == 302:
                target = urlsplit(response.getheader("Location", ""))
                host, port, path = target.hostname or host, target.port or 80, target.path
                continue
            if response.status != 200:
                raise CheckFailed(f"{node}{path}: HTTP {response.status}")
            return response.read(nbytes)
        finally:
            connection.close()
    raise CheckFailed(f"{node}{path}: too many redirects")


def zone_answer(node: str) -> list[str]:
    """The addresses `node`'s agent gives for the cluster's zone (dig, over UDP)."""
    result = subprocess.run(
        ["dig", f"@{testbed.node_address(node)}", "+short", "+time=2", "+tries=1", ZONE, "A"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:  # no answer yet (a node restarting): asked again
        print(f"check: dig at {node}: {result.stdout.strip()} {result.stderr.strip()}")
        return []
    return sorted(result.stdout.split())


def check_zone(nodes: Sequence[str]) -> None:
    """Each of `nodes` answers the zone with exactly their addresses."""
    expected = sorted(testbed.node_address(node) for node in nodes)
    for node in nodes:
        wait_for(
            partial(lambda asked: zone_answer(asked) == expected, node), 30, f"{ZONE} at {node}"
        )


def serves(node: str, path: str) -> bool:
    """The node's front door answers `path` with audio (the holding audio will do)."""
    try:
        return len(fetch(node, path, 1024)) == 1024
    except CheckFailed:
        return False


def plays_sound(node: str, path: str) -> bool:
    """Fresh audio with sound: past the 64 KiB burst of the recent past. An error status
    (a mount not served yet: 503) is "not yet"."""
    try:
        audio = fetch(node, path, 64 * 1024 + 48 * 1024)
    except CheckFailed:
        return False
    return len(audio) == 112 * 1024 and loudness_db(audio[-48 * 1024 :], "mp3") > LOUD_DB


def start_source(node: str, loops: int = 10) -> subprocess.Popen[bytes]:
    """A studio streaming the tone into live.mp3 through `node`'s front door."""
    url = f"icecast://source:{SOURCE_PASSWORD}@{testbed.node_address(node)}:8000/live.mp3"
    return subprocess.Popen(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re"),
            *("-stream_loop", str(loops), "-i", str(TONE), "-c:a", "copy"),
            *("-content_type", "audio/mpeg", "-f", "mp3", url),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Listener:
    """A listener that stays connected and counts bytes, in a thread; stops itself. It
    gives up after `patience` seconds without a byte, as a player would."""

    def __init__(self, node: str, path: str, seconds: float, patience: float = 10.0) -> None:
        self.received = 0
        self.error: Exception | None = None
        self.last_byte_at = time.monotonic()
        self._deadline = time.monotonic() + seconds
        self._connection = http.client.HTTPConnection(
            testbed.node_address(node), 80, timeout=patience
        )
        self._connection.request("GET", path)
        response = self._connection.getresponse()
        if response.status != 200:
            raise CheckFailed(f"listener on {node}{path}: HTTP {response.status}")
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response: http.client.HTTPResponse) -> None:
        try:
            while time.monotonic() < self._deadline and (chunk := response.read1(16384)):
                self.received += len(chunk)
                self.last_byte_at = time.monotonic()
        except OSError as error:
            self.error = error

    def connected(self) -> bool:
        """Still reading: the stream neither ended nor failed (nor ran out its time)."""
        return self._thread.is_alive()

    def receiving(self, within: float = 5.0) -> bool:
        before = self.received
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.received > before:
                return True
            time.sleep(0.2)  # the reader thread counts; nothing else to wait on
        return False

    def close(self) -> None:
        self._deadline = 0
        self._connection.close()


def source_heard_through(
    entry: str, listeners: Sequence[str], made_from_it: Sequence[str] = ()
) -> None:
    """A studio streams through `entry`, reconnecting as an encoder does (ffmpeg alone
    gives up on its first refusal, such as one during an election); a listener on each
    of `listeners` hears it, and the mounts `made_from_it` (a transcoder's, a
    programme's: Liquidsoap runs them). On failure, the agents' journals say why."""
    make_tone(TONE)
    studio = Studio([entry], "live.mp3", SOURCE_PASSWORD, TONE).start(120)
    try:
        for node in listeners:
            wait_for(partial(plays_sound, node, "/live.mp3"), 30, f"audio via {node}")
            for mount in made_from_it:
                wait_for(partial(plays_sound, node, mount), 60, f"{mount} via {node}")
    except CheckFailed:
        print(f"the studio connected {len(studio.connections)} time(s)", file=sys.stderr)
        for node in sorted({entry, *listeners}):
            print(agent_journal(node), file=sys.stderr)
        raise
    finally:
        studio.stop()
    print(
        f"check: a source's audio through {entry} reaches {', '.join(listeners)}"
        + (f", and {', '.join(made_from_it)} made from it" if made_from_it else "")
        + f" (studio connections: {len(studio.connections)})"
    )


def agent_journal(node: str, lines: int = 60) -> str:
    """The last lines of `node`'s agent journal, or why they could not be read."""
    try:
        result = testbed.run_in(
            node, ["journalctl", "-u", "radio-agent", "-n", str(lines), "--no-pager"], check=False
        )
    except (OSError, subprocess.SubprocessError, testbed.TestbedError) as error:
        return f"--- {node}: no journal: {error}"
    return f"--- {node}\n{result.stdout}"


def services_up(node: str) -> bool:
    """Whether every service of `node` is active now (quietly: a booting node is not),
    etcd's member or, on a node that is not one, its gateway."""
    others = [name for name in SERVICES if name != "etcd"]
    result = testbed.run_in(
        node, ["systemctl", "is-active", *others, "etcd", "etcd-gateway"], check=False
    )
    states = result.stdout.split()
    return states[: len(others)] == ["active"] * len(others) and "active" in states[len(others) :]


def services_running(node: str) -> None:
    result = testbed.run_in(node, ["systemctl", "is-active", *SERVICES], check=False)
    states = dict(zip(SERVICES, result.stdout.split(), strict=False))
    down = [name for name in SERVICES if states.get(name) != "active"]
    if down:
        raise CheckFailed(f"{node}: not active: {', '.join(down)}")
    print(f"check: {node}: {', '.join(SERVICES)} active")


def check_package(node: str) -> None:
    """The agent runs from its Debian package (make deb): the version dpkg has installed
    is the one radio-agent --version and /metrics show, the unit is the package's with
    the role's drop-in and systemd-analyze security scores it at most 3.0, and nothing is
    left of the agent as files the role copied."""
    installed = testbed.run_in(
        node, ["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", "radio-agent"], check=False
    ).stdout
    status, _, version = installed.partition("|")
    if status.strip() != "ii" or not version:
        raise CheckFailed(f"{node}: the radio-agent package is not installed ({installed!r})")
    said = testbed.run_in(node, ["radio-agent", "--version"]).stdout.strip()
    if said != f"radio-agent {version}":
        raise CheckFailed(f"{node}: radio-agent --version says {said!r}, the package is {version}")
    metrics = testbed.run_in(node, ["curl", "-sf", "-m", "5", "http://127.0.0.1/metrics"]).stdout
    if f'version="{version}"' not in next(
        (line for line in metrics.splitlines() if line.startswith("radio_agent_build_info{")), ""
    ):
        raise CheckFailed(f"{node}: /metrics' radio_agent_build_info does not name {version}")
    unit = testbed.run_in(
        node, ["systemctl", "show", "-p", "FragmentPath", "-p", "DropInPaths", AGENT]
    ).stdout
    # /lib is /usr/lib on merged-/usr systems: systemd names either.
    if not re.search(
        r"^FragmentPath=(/usr)?/lib/systemd/system/radio-agent\.service$", unit, re.M
    ) or ("radio-agent.service.d/inventory.conf" not in unit):
        raise CheckFailed(f"{node}: the agent's unit is not the package's and drop-in: {unit!r}")
    exposure = testbed.run_in(node, ["systemd-analyze", "security", AGENT]).stdout
    score = re.search(r"Overall exposure level for radio-agent\.service: ([0-9.]+)", exposure)
    if score is None or float(score[1]) > AGENT_MAX_EXPOSURE:
        raise CheckFailed(
            f"{node}: the agent's unit exposure is over {AGENT_MAX_EXPOSURE}: {exposure[-300:]!r}"
        )
    leftovers = testbed.run_in(node, ["ls", "-d", "/usr/lib/radio-agent"], check=False)
    if leftovers.returncode == 0:
        raise CheckFailed(f"{node}: /usr/lib/radio-agent, the copied agent, is still there")
    print(
        f"check: {node}: the agent is the package radio-agent {version},"
        f" systemd-analyze security exposure {score[1]}"
    )


def check_single(node: str) -> None:
    services_running(node)
    check_package(node)
    source_heard_through(node, [node], made_from_it=["/low.mp3", "/show.mp3"])
    check_access_log(node)


def access_lines(node: str) -> list[dict[str, Any]]:
    """The agent's access log, as the journal keeps it (one JSON object a line)."""
    shown = testbed.run_in(
        node, ["journalctl", "-t", "radio-agent-access", "-o", "cat", "--no-pager"]
    ).stdout
    return [json.loads(line) for line in shown.splitlines() if line.startswith("{")]


def check_access_log(node: str) -> None:
    """The studio and the listeners source_heard_through just ran are in the journal's
    access log: the studio's source with the bytes it sent, a listener with the bytes it
    got, from the controller's address."""
    controller = testbed.load_state()["controller"]["address"]

    def logged() -> tuple[dict[str, Any], dict[str, Any]] | None:
        lines = [line for line in access_lines(node) if line.get("client") == controller]
        source = next(
            (x for x in lines if x["kind"] == "source" and x["status"] == 200 and x["bytes"]), None
        )
        heard = next(
            (x for x in lines if x["kind"] == "listener" and x["status"] == 200 and x["bytes"]),
            None,
        )
        return (source, heard) if source and heard else None

    source, heard = wait_for(logged, 15, "the studio and a listener in the access log")
    print(
        f"check: {node}'s access log (journalctl -t radio-agent-access): the studio's"
        f" {source['method']} {source['mount']} ({source['bytes']} bytes in"
        f" {source['seconds']} s) and a listener's GET {heard['mount']} ({heard['bytes']} bytes)"
    )


def check_https(node: str, names: frozenset[str]) -> None:
    """The node serves HTTPS as <node>.<zone> with a certificate for exactly `names`
    that the cluster ordered from the testbed's ACME CA (pebble), valid under the CA's
    root; the status API answers over it. An HTTP-01 cluster may serve a first
    certificate without a node that registered after its order: it is waited out."""
    root = acme_ca.issuing_root(testbed.load_state()["controller"]["address"])
    context = ssl.create_default_context(cadata=root.decode())
    name, address = f"{node}.{ZONE}", testbed.node_address(node)

    def get_status() -> tuple[dict, bytes] | None:
        try:
            with (
                socket.create_connection((address, 443), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                request = f"GET /api/v1/status HTTP/1.1\r\nHost: {name}\r\nConnection: close"
                tls.sendall(f"{request}\r\n\r\n".encode())
                reply = b""
                while chunk := tls.recv(65536):
                    reply += chunk
                peer: dict[str, Any] = dict(tls.getpeercert() or {})
        except (OSError, ssl.SSLError) as error:
            print(f"check: https at {name}: {error}")
            return None
        served = {value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"}
        if served != names:
            print(f"check: {name} serves a certificate for {sorted(served)}")
            return None
        return peer, reply

    peer, reply = wait_for(get_status, 180, f"{name} serving a certificate for {sorted(names)}")
    if not reply.startswith(b"HTTP/1.1 200"):
        raise CheckFailed(f"{name}: /api/v1/status over HTTPS: {reply[:60]!r}")
    print(f"check: {name} serves HTTPS for {sorted(names)}, valid until {peer.get('notAfter')}")


MONITORING_SERVICES = ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter")


def prometheus_api(node: str, path: str) -> dict:
    """Prometheus's API on `node`, asked from inside it (its firewall keeps 9090 closed)."""
    url = f"http://127.0.0.1:9090/api/v1/{path}"
    return json.loads(testbed.run_in(node, ["curl", "-fsS", "--max-time", "5", url]).stdout)


def query_result(node: str, query: str) -> list[dict]:
    """The samples of an instant query to Prometheus on `node` (empty: none yet)."""
    return list(prometheus_api(node, f"query?query={query}")["data"]["result"])


def check_monitoring(node: str) -> None:
    """Prometheus on `node` scrapes its agent, loaded the alert rules, and sees live.mp3."""
    result = testbed.run_in(node, ["systemctl", "is-active", *MONITORING_SERVICES], check=False)
    if result.stdout.split() != ["active"] * len(MONITORING_SERVICES):
        raise CheckFailed(f"{node}: monitoring services: {result.stdout.split()}")

    def agents_up() -> list[dict]:
        targets = prometheus_api(node, "targets")["data"]["activeTargets"]
        agents = [t for t in targets if t["labels"].get("job") == "radio-agent"]
        return agents if agents and all(t["health"] == "up" for t in agents) else []

    agents = wait_for(agents_up, 60, "Prometheus to scrape every agent")
    rules = prometheus_api(node, "rules")["data"]["groups"]
    alerts = {rule["name"] for group in rules for rule in group["rules"]}
    if "RadioDeadAir" not in alerts:
        raise CheckFailed(f"{node}: the alert rules are not loaded: {sorted(alerts)}")
    series = wait_for(
        lambda: prometheus_api(node, "query?query=radio_mount_source_connected")["data"]["result"],
        60,
        "radio_mount_source_connected in Prometheus",
    )
    # The machine's own health, through the agent: its disks and its etcd member's figures.
    machine = {
        name: wait_for(partial(query_result, node, name), 60, f"{name} in Prometheus")
        for name in ("radio_disk_free_bytes", "etcd_mvcc_db_total_size_in_bytes")
    }
    if "RadioEtcdSlowFsync" not in alerts or "RadioDiskFull" not in alerts:
        raise CheckFailed(f"{node}: the machine alerts are not loaded: {sorted(alerts)}")
    database = float(machine["etcd_mvcc_db_total_size_in_bytes"][0]["value"][1])
    paths = sorted(sample["metric"]["path"] for sample in machine["radio_disk_free_bytes"])
    print(
        f"check: {node}: Prometheus scrapes {len(agents)} agent(s), {len(alerts)} alert rules,"
        f" {len(series)} mount series; disks {paths}, etcd database {database / 1024:.0f} KiB"
    )


def check_backed_up(node: str, backup_dir: str) -> None:
    """backup.yml left one export with the mounts and one etcd snapshot that etcdctl reads;
    upgrade.yml left the node undrained."""
    exports = sorted(Path(backup_dir).glob("radio-*.json"))
    snapshots = sorted(Path(backup_dir).glob("radio-*-etcd.db"))
    if len(exports) != 1 or len(snapshots) != 1:
        raise CheckFailed(
            f"{backup_dir}: expected one export and one snapshot: {exports} {snapshots}"
        )
    if exports[0].stat().st_mode & 0o077 or snapshots[0].stat().st_mode & 0o077:
        raise CheckFailed(f"{backup_dir}: the backup is readable by others")
    mounts = [mount["name"] for mount in json.loads(exports[0].read_text())["mounts"]]
    if "live.mp3" not in mounts:
        raise CheckFailed(f"{exports[0]}: mounts {mounts}")
    snapshot = json.loads(
        subprocess.run(
            ["etcdctl", "snapshot", "status", str(snapshots[0]), "-w", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, "ETCDCTL_API": "3"},
        ).stdout
    )
    if snapshot["totalKey"] < 1:
        raise CheckFailed(f"{snapshots[0]}: an empty snapshot: {snapshot}")
    print(f"check: backup: mounts {mounts}, etcd snapshot of {snapshot['totalKey']} keys")
    if status(node)["nodes"][node]["draining"]:
        raise CheckFailed(f"{node} is still draining after upgrade.yml")
    print(f"check: {node} takes listeners after upgrade.yml")


def backup_export(backup_dir: str) -> dict:
    """backup.yml's one export (mounts with their passwords, settings)."""
    (export,) = sorted(Path(backup_dir).glob("radio-*.json"))
    return dict(json.loads(export.read_text()))


def node_backup(node: str) -> dict:
    """What `radioctl backup` on `node` holds now."""
    return dict(json.loads(testbed.run_in(node, ["radioctl", "backup"]).stdout))


def etcd_revision(node: str) -> int:
    """The revision of the etcd store `node`'s member serves. It never goes down in one
    cluster, so a lower one is a new store (the cluster id would not tell: etcd derives
    it from the members' names and addresses, which a rebuilt node keeps)."""
    return int(etcdctl(node, "endpoint", "status", "-w", "json")[0]["Status"]["header"]["revision"])


# The files a converge writes a secret into: a replaced machine has none of them.
SECRET_FILES = (
    "/etc/radio-agent/config.yml",
    "/etc/icecast2/icecast.xml",
    "/etc/etcd/pki/client.key",
    "/etc/etcd/pki/server.key",
)


def check_wipe(node: str, state_file: str) -> None:
    """The node loses its cluster, as a machine that is replaced does: its agent and etcd
    stop, etcd's data, the agent's state and every file holding a secret go. site.yml
    then builds a new cluster there, writing those files anew (the run whose output
    `secrets-hidden` reads)."""
    Path(state_file).write_text(json.dumps({"revision": etcd_revision(node)}))
    testbed.run_in(node, ["systemctl", "stop", AGENT, "etcd"])
    testbed.run_in(
        node,
        [
            "sh",
            "-c",
            f"rm -rf /var/lib/etcd/{node} /var/lib/radio-agent/* {' '.join(SECRET_FILES)}",
        ],
    )
    print(
        f"check: {node}: agent and etcd stopped, etcd's data, the agent's state and"
        f" {len(SECRET_FILES)} files with secrets removed"
    )


def secrets_of(site_dir: Path) -> dict[str, str]:
    """What the controller generated and must never show: each credential (passwords, the
    failsafe key), and each private key of the PKI (a run of its base64 body, enough to
    be unmistakable)."""
    found = {}
    for path in sorted((site_dir / "credentials").glob("*")):
        found[path.name] = path.read_text().split()[0]
    for path in sorted((site_dir / "pki").rglob("*.key")):
        body = "".join(
            line for line in path.read_text().splitlines() if line and not line.startswith("-----")
        )
        found[path.name] = body[8:40]
    return found


def check_secrets_hidden(log_file: str, site_dir: str) -> None:
    """A converge's output at -vv with --diff (which wrote every secret file anew) holds
    none of the secrets the controller generated."""
    output = Path(log_file).read_text(errors="replace")
    secrets = secrets_of(Path(site_dir))
    if len(secrets) < 4 or "PLAY RECAP" not in output:
        raise CheckFailed(f"nothing to check: {len(secrets)} secrets, recap in output: no")
    shown = sorted(
        name for name, secret in secrets.items() if len(secret) >= 16 and secret in output
    )
    if shown:
        raise CheckFailed(f"the converge's -vv --diff output shows these secrets: {shown}")
    diffs = output.count("\n--- before")
    print(
        f"check: the converge's output at -vv --diff ({len(output.splitlines())} lines,"
        f" {diffs} diffs) shows none of {len(secrets)} generated secrets"
        f" ({', '.join(sorted(secrets))})"
    )


def check_new_cluster(node: str, backup_dir: str, state_file: str) -> None:
    """site.yml made a new cluster on the wiped node: a new etcd store (its revision below
    the old one's), no mount, not the backup's settings (restore.yml must bring it all
    back)."""
    before = json.loads(Path(state_file).read_text())["revision"]
    revision = etcd_revision(node)
    if revision >= before:
        raise CheckFailed(f"{node}: etcd at revision {revision}, was {before}: not a new store")
    export = backup_export(backup_dir)
    if not export["mounts"] or not export["settings"]:
        raise CheckFailed(f"{backup_dir}: the backup holds no mounts or settings to restore")
    now = node_backup(node)
    if now["mounts"] or now["settings"] == export["settings"]:
        raise CheckFailed(f"{node}: the new cluster holds the backup's data: {now}")
    print(
        f"check: {node}: a new cluster (etcd at revision {revision}, was {before}), "
        f"no mount, not the backup's settings"
    )


def check_restored(node: str, backup_dir: str) -> None:
    """restore.yml put back every mount of the backup as it was, passwords included, and
    its settings; a studio with the backup's password for live.mp3 is heard again."""
    export, now = backup_export(backup_dir), node_backup(node)
    if now["mounts"] != export["mounts"]:
        names = [mount["name"] for mount in now["mounts"]]
        raise CheckFailed(f"{node}: mounts after the restore differ from the backup's: {names}")
    if now["settings"] != export["settings"]:
        raise CheckFailed(f"{node}: settings {now['settings']}, backed up {export['settings']}")
    (live,) = [mount for mount in export["mounts"] if mount["name"] == "live.mp3"]
    if live["source_password"] != SOURCE_PASSWORD:
        raise CheckFailed(f"{node}: live.mp3's password in the backup is not the studio's")
    print(
        f"check: {node}: restore.yml put back {len(now['mounts'])} mount(s) with their "
        "passwords and the settings"
    )
    # A studio that reconnects as encoders do: the mount is new to Icecast, whose reload
    # may come after the studio's first try.
    source_heard_through(node, [node])


def check_cluster(nodes: Sequence[str]) -> None:
    for node in nodes:
        services_running(node)
    first = status(nodes[0])
    leader = first["leader"]["name"]
    if sorted(first["nodes"]) != sorted(nodes):
        raise CheckFailed(f"nodes in etcd: {sorted(first['nodes'])}")
    print(f"check: one leader, {leader}, epoch {first['leader']['epoch']}")
    check_zone(nodes)
    print(f"check: every node answers {ZONE} with every node's address (dig)")
    make_tone(TONE)
    entry = next(node for node in nodes if node != leader)
    source = start_source(entry)
    try:
        for node in nodes:
            wait_for(partial(plays_sound, node, "/live.mp3"), 30, f"live.mp3 via {node}")
        wait_for(lambda: plays_sound(nodes[-1], "/low.mp3"), 60, "the transcoded low.mp3")
        print("check: live.mp3 plays through every node (redirects followed), low.mp3 too")
    finally:
        stop(source)

    survivors = [node for node in nodes if node != leader]
    # A second mount, for a studio that streams through the node about to die.
    testbed.run_in(
        survivors[0],
        [
            "radioctl",
            "mount",
            "create",
            "second.mp3",
            "--set",
            f"source_password={SOURCE_PASSWORD}",
        ],
    )
    for node in nodes:  # every agent has the new mount (a leader without it refuses it)
        wait_for(partial(serves, node, "/second.mp3"), 30, f"second.mp3 on {node}")
    riding = start_source(survivors[0], loops=int(3 * TTL_S // TONE_SECONDS) + 3)
    returning = Studio([leader, *survivors], "second.mp3", SOURCE_PASSWORD, TONE).start(300)
    listeners = [Listener(node, "/_stream/live.mp3", 120) for node in survivors]
    try:
        wait_for(lambda: plays_sound(survivors[1], "/live.mp3"), 30, "the source before the kill")
        wait_for(lambda: plays_sound(survivors[0], "/second.mp3"), 30, "second.mp3 before")
        killed_at = time.monotonic()
        testbed.kill_node(leader)
        new = wait_for(
            lambda: (name := status(survivors[0])["leader"]["name"]) != leader and name,
            TTL_S + 15,
            "a new leader",
        )
        print(f"check: {leader} killed; {new} leads after {time.monotonic() - killed_at:.1f} s")
        wait_for(lambda: plays_sound(survivors[1], "/live.mp3"), 60, "live.mp3 after the kill")
        if riding.poll() is not None:
            raise CheckFailed(f"the studio through {survivors[0]} was cut")
        print(
            f"check: the studio through {survivors[0]} rode through, never cut; heard again "
            f"{time.monotonic() - killed_at:.1f} s after the kill"
        )
        wait_for(lambda: plays_sound(survivors[0], "/second.mp3"), 60, "second.mp3 after the kill")
        if returning.connections[-1] == leader:
            raise CheckFailed(f"the studio through {leader} never reconnected elsewhere")
        print(
            f"check: the studio through {leader} came back through {returning.connections[-1]} "
            f"{time.monotonic() - killed_at:.1f} s after the kill"
        )
        for listener, node in zip(listeners, survivors, strict=True):
            if not listener.receiving():
                raise CheckFailed(f"the listener on {node} stopped ({listener.error})")
        print(f"check: listeners on {', '.join(survivors)} stayed connected")
        check_zone(survivors)
        print(
            f"check: {ZONE} without {leader}, {time.monotonic() - killed_at:.1f} s after the kill"
        )
    finally:
        stop(riding)
        returning.stop()
        for listener in listeners:
            listener.close()


def check_rejoined(nodes: Sequence[str]) -> None:
    """Every node's services run and the cluster lists them all again (a machine that
    was killed and booted again)."""
    for node in nodes:
        wait_for(partial(services_up, node), 90, f"{node}'s services")
    wait_for(partial(lists_exactly, nodes[0], nodes), 60, f"{', '.join(nodes)} in the cluster")
    print(f"check: {', '.join(nodes)} all in the cluster again")


RESTART_WATCHED = ("etcd", "etcd-gateway", "icecast2", "radio-agent", "radio-firewall")


def started(nodes: Sequence[str]) -> dict[str, dict[str, str]]:
    """Per node and service, when it last started and its main PID: any restart shows."""
    found = {}
    for node in nodes:
        for service in RESTART_WATCHED:
            shown = testbed.run_in(
                node, ["systemctl", "show", "-p", "ActiveEnterTimestamp,MainPID", service]
            ).stdout
            found[f"{node}/{service}"] = dict(
                line.split("=", 1) for line in shown.splitlines() if "=" in line
            )
    return found


def check_watchdog(node: str) -> None:
    """A frozen agent (SIGSTOP: its loop makes no progress) is killed and started again
    by systemd's watchdog (4.25 s with the default timing), and the node serves again."""

    def agent(prop: str) -> str:
        shown = testbed.run_in(node, ["systemctl", "show", "-p", prop, "--value", "radio-agent"])
        return shown.stdout.strip()

    frozen_pid, restarts = agent("MainPID"), int(agent("NRestarts"))
    testbed.run_in(node, ["kill", "-STOP", frozen_pid])
    frozen_at = time.monotonic()
    wait_for(
        lambda: agent("MainPID") not in ("0", frozen_pid) and services_up(node),
        75,
        f"systemd restarting {node}'s frozen agent",
    )
    took = time.monotonic() - frozen_at
    if int(agent("NRestarts")) <= restarts:
        raise CheckFailed(f"{node}: the agent has a new PID but NRestarts did not grow")
    wait_for(partial(serves, node, "/live.mp3"), 30, f"{node} serving after the restart")
    print(f"check: {node}: the frozen agent was restarted by the watchdog after {took:.0f} s")


class RecordingListener:
    """A player on `node`'s /_stream/<mount> (served there, never redirected) that keeps
    every byte and when it came, in a thread; stops itself after `seconds`."""

    def __init__(self, node: str, mount: str, icy: bool, seconds: float) -> None:
        self.icy = icy
        self.chunks: list[tuple[float, bytes]] = []
        self._stream = RawStream(
            testbed.node_address(node),
            80,
            f"/_stream/{mount}",
            icy=icy,
            user_agent="check",
            seconds=seconds,
            on_piece=lambda piece: self.chunks.append((time.monotonic(), piece)),
        )

    @property
    def ended(self) -> str | None:
        """Why the stream ended before we stopped it."""
        return self._stream.ended

    def received_since(self, moment: float) -> int:
        return sum(len(chunk) for at, chunk in list(self.chunks) if at >= moment)

    def longest_gap(self) -> float:
        times = [at for at, _ in self.chunks]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def stop(self) -> None:
        self._stream.stop()

    def stream_problems(self) -> tuple[list[str], int]:
        """What a player would stumble on (an ICY block out of step, an answer that is not
        200), and how often the MP3 frame chain broke."""
        data = b"".join(chunk for _, chunk in self.chunks)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if " 200 " not in f"{lines[0]} ":
            return [f"answered {lines[0]!r}"], 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        problems: list[str] = []
        if self.icy:
            body, problems = strip_icy(body, int(headers.get("icy-metaint", "0")))
        report = analyse_mp3(body)
        return problems + [p for p in report.problems(100) if "broke" not in p], report.resyncs


def check_restart(node: str) -> None:
    """`systemctl restart radio-agent` (what an upgrade does) drops none of the node's
    listeners: plain and ICY ones stay connected, in step, and hear the stream go on."""

    def main_pid() -> str:
        shown = testbed.run_in(node, ["systemctl", "show", "-p", "MainPID", "--value", AGENT])
        return shown.stdout.strip()

    make_tone(TONE)
    studio = Studio([node], "live.mp3", SOURCE_PASSWORD, TONE).start(180)
    listeners: list[RecordingListener] = []
    try:
        wait_for(partial(plays_sound, node, "/live.mp3"), 30, f"audio via {node}")
        listeners = [
            RecordingListener(node, "live.mp3", icy, 90) for icy in (False, True) for _ in range(3)
        ]
        wait_for(lambda: all(ls.received_since(0) > 96 * 1024 for ls in listeners), 30, "listeners")
        old_pid = main_pid()
        restarted_at = time.monotonic()
        testbed.run_in(node, ["systemctl", "restart", AGENT])
        wait_for(lambda: main_pid() not in ("0", old_pid), 30, f"{node}'s agent restarted")
        took = time.monotonic() - restarted_at
        # 10 s of a 128 kbps stream after the restart, or the reason they have not.
        wait_for(
            lambda: all(ls.received_since(restarted_at) > 160_000 or ls.ended for ls in listeners),
            40,
            "audio after the restart",
        )
    finally:
        for listener in listeners:
            listener.stop()
        studio.stop()
    failures = []
    gaps, resyncs = [], []
    for number, listener in enumerate(listeners):
        kind = "ICY" if listener.icy else "plain"
        problems, broke = listener.stream_problems()
        if listener.ended:
            problems.append(f"dropped: {listener.ended}")
        failures += [f"{kind} listener {number}: {problem}" for problem in problems]
        gaps.append(listener.longest_gap())
        resyncs.append(broke)
    # The new process says so itself: every one taken over, where it was or after a gap.
    resumed = resumed_listeners(node)
    if sum(resumed.values()) != len(listeners):
        failures.append(f"radio_listeners_resumed_total says {resumed}, not {len(listeners)}")
    if failures:
        print(agent_journal(node), file=sys.stderr)
        raise CheckFailed("; ".join(failures))
    print(
        f"check: {node}: 0 of {len(listeners)} listeners (3 ICY) dropped by an agent restart "
        f"({took:.1f} s); longest wait for a byte {max(gaps):.2f} s; MP3 frame chain "
        f"broken {sum(resyncs)} times in all; taken over {resumed}"
    )


def resumed_listeners(node: str) -> dict[str, float]:
    """radio_listeners_resumed_total by `how`, from the node's own /metrics."""
    text = testbed.run_in(node, ["curl", "-sf", "-m", "5", "http://127.0.0.1/metrics"]).stdout
    return {
        how: float(value)
        for how, value in re.findall(
            r'^radio_listeners_resumed_total\{[^}]*how="([a-z_]+)"[^}]*\} (\S+)$', text, re.M
        )
    }


def check_added(node: str) -> None:
    active = testbed.run_in(
        node, ["systemctl", "is-active", "etcd", "etcd-gateway"], check=False
    ).stdout.split()
    if "active" not in active:
        raise CheckFailed(f"{node}: neither etcd nor the etcd gateway runs ({active})")
    role = "an etcd member" if active[0] == "active" else "an etcd gateway"
    document = wait_for(partial(status_listing_itself, node), 30, "the node")
    print(f"check: {node} is {role}, in radioctl status, led by {document['leader']['name']}")
    source_heard_through(node, [node])


ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/client.crt"
    " --key=/etc/etcd/pki/client.key --endpoints=https://127.0.0.1:2379 "
)


def etcdctl(node: str, *arguments: str) -> Any:
    """etcdctl on `node` against its own 127.0.0.1:2379; its JSON output, decoded."""
    return json.loads(testbed.run_in(node, ["sh", "-c", ETCDCTL + " ".join(arguments)]).stdout)


def make_etcd_leader(target: str) -> None:
    """Move etcd's raft leadership to `target` (run on the current raft leader, whose own
    127.0.0.1 is the leader's endpoint)."""
    ids = {m["name"]: m["ID"] for m in etcdctl(target, "member list -w json")["members"]}

    def raft_leader() -> int:
        return etcdctl(target, "endpoint status -w json")[0]["Status"]["leader"]

    leader_id = raft_leader()
    if leader_id != ids[target]:
        leader = next(name for name, member_id in ids.items() if member_id == leader_id)
        # etcd answers a move only once it sees the target lead; the radio leader's own
        # agent moves raft leadership off its member again within 5 s (the raft guard), so
        # asking afterwards could miss it.
        testbed.run_in(leader, ["sh", "-c", f"{ETCDCTL} move-leader {ids[target]:x}"])
    print(f"check: {target} leads etcd's raft")


def check_removed(removed: str, members: Sequence[str]) -> None:
    """The others serve without `removed`: etcd healthy with exactly `members`, every
    other node's agent in the status (gateways reach the members), one of them leads."""
    remaining = [node for node in testbed.known_nodes(testbed.load_state()) if node != removed]
    names = sorted(
        member["name"] for member in etcdctl(remaining[0], "member list -w json")["members"]
    )
    health = etcdctl(remaining[0], "endpoint health --cluster -w json")
    if names != sorted(members) or not all(endpoint["health"] for endpoint in health):
        raise CheckFailed(f"etcd after the removal: members {names}, health {health}")
    print(f"check: etcd healthy with member(s) {', '.join(names)}")
    for node in remaining:
        wait_for(
            partial(lists_exactly, node, remaining),
            30,
            f"{node}'s radioctl to list exactly {', '.join(remaining)}",
        )
    print(f"check: radioctl on {', '.join(remaining)} lists just them")
    down = status(remaining[0]).get("down_nodes", {})
    if removed in down:
        raise CheckFailed(f"{removed} is still listed as down after its removal: {down}")
    print(f"check: {removed} is not listed as down (forgotten)")
    leader = wait_for(
        lambda: (name := status(remaining[0])["leader"]["name"]) in remaining and name,
        30,
        "a leader among the remaining nodes",
    )
    print(f"check: {leader} leads; {removed} is gone from the leadership")
    source_heard_through(remaining[0], remaining)
    check_identity_revoked(removed, remaining[0])


def check_identity_revoked(removed: str, member: str) -> None:
    """The removed node's own etcd client certificate and key, as its disk still holds
    them, open nothing on a member (the CA's revocation list), while the member's own
    do, the same way."""
    copies = {}
    for part in ("crt", "key"):
        copies[part] = testbed.run_in(removed, ["cat", f"/etc/etcd/pki/client.{part}"]).stdout
    script = (
        "umask 077; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT;"
        ' printf %s "$1" > "$d/c.crt"; printf %s "$2" > "$d/c.key";'
        " ETCDCTL_API=3 etcdctl --cacert=/etc/etcd/pki/ca.crt"
        ' --cert="$d/c.crt" --key="$d/c.key" --endpoints=https://127.0.0.1:2379'
        " --dial-timeout=3s --command-timeout=5s get /radio --prefix --keys-only --limit=1"
    )
    refused = testbed.run_in(
        member, ["sh", "-c", script, "sh", copies["crt"], copies["key"]], check=False
    )
    if refused.returncode == 0:
        raise CheckFailed(f"{removed}'s etcd certificate still opens etcd on {member}")
    own = testbed.run_in(
        member, ["sh", "-c", ETCDCTL + "get /radio --prefix --keys-only --limit=1"]
    )
    if own.returncode != 0:
        raise CheckFailed(f"{member}'s own etcd certificate does not open etcd: {own.stderr!r}")
    print(
        f"check: {removed}'s etcd identity (its client certificate and key) is refused on"
        f" {member} ({refused.stderr.strip().splitlines()[-1:]}); {member}'s own opens it"
    )


def check_https_nodes(nodes: Sequence[str]) -> None:
    """Every node serves the one certificate an HTTP-01 cluster orders: for the zone and
    each node's name."""
    names = frozenset({ZONE, *(f"{node}.{ZONE}" for node in nodes)})
    for node in nodes:
        check_https(node, names)


def exposure(node: str, unit: str) -> float:
    """systemd-analyze security's overall exposure of `unit` on `node`."""
    shown = testbed.run_in(node, ["systemd-analyze", "security", unit]).stdout
    name = unit if "." in unit else f"{unit}.service"
    score = re.search(rf"Overall exposure level for {re.escape(name)}: ([0-9.]+)", shown)
    if score is None:
        raise CheckFailed(f"{node}: no exposure level for {name}: {shown[-300:]!r}")
    return float(score[1])


def check_hardened(node: str, units: Sequence[str]) -> None:
    """Each unit runs, and systemd-analyze security scores it at most 4.5 (the roles'
    sandboxes: Icecast, etcd, the etcd gateway)."""
    scores = {}
    for unit in units:
        state = testbed.run_in(node, ["systemctl", "is-active", unit], check=False).stdout.strip()
        if state != "active":
            raise CheckFailed(f"{node}: {unit} is {state}")
        scores[unit] = exposure(node, unit)
    over = {unit: score for unit, score in scores.items() if score > SERVICE_MAX_EXPOSURE}
    if over:
        raise CheckFailed(f"{node}: exposure over {SERVICE_MAX_EXPOSURE}: {over}")
    shown = ", ".join(f"{unit} {score}" for unit, score in scores.items())
    print(f"check: {node}: systemd-analyze security exposure {shown}")


def nft_tables(node: str) -> list[str]:
    listed = testbed.run_in(node, ["nft", "list", "tables"]).stdout
    return [line.split()[-1] for line in listed.splitlines() if line.startswith("table inet ")]


def firewall_intact(node: str, after: str) -> None:
    """The operator's table is there with its rule, and the cluster's table once, with
    the role's rules (drop by default, the front door open, etcd for the cluster only)."""
    tables = nft_tables(node)
    if tables.count(FIREWALL_TABLE) != 1 or OPERATOR_TABLE not in tables:
        raise CheckFailed(f"{node}: after {after}, the inet tables are {tables}")
    operator = testbed.run_in(node, ["nft", "list", "table", "inet", OPERATOR_TABLE]).stdout
    if OPERATOR_RULE not in operator:
        raise CheckFailed(f"{node}: after {after}, the operator's rule is gone: {operator!r}")
    ours = testbed.run_in(node, ["nft", "list", "table", "inet", FIREWALL_TABLE]).stdout
    expected = ("policy drop;", "tcp dport { 80, 443, 8000 } accept", "@cluster_nodes tcp dport")
    missing = [rule for rule in expected if rule not in ours]
    if missing:
        raise CheckFailed(f"{node}: after {after}, the cluster's table lacks {missing}: {ours!r}")


def check_firewall(node: str) -> None:
    """The firewall keeps to its table: after site.yml (which found the rules an earlier
    version of the role wrote into /etc/nftables.conf, with a flush ruleset, and an
    operator's table made after them), and after a reload and a restart of
    radio-firewall.service, the operator's table is still there and the cluster's has
    its rules; Debian's nftables.conf is back and nftables.service is no longer enabled."""
    firewall_intact(node, "site.yml")
    for action in ("reload", "restart"):
        testbed.run_in(node, ["systemctl", action, "radio-firewall.service"])
        firewall_intact(node, f"systemctl {action} radio-firewall")
    legacy = testbed.run_in(node, ["cat", "/etc/nftables.conf"]).stdout
    if FIREWALL_TABLE in legacy:
        raise CheckFailed(f"{node}: /etc/nftables.conf still holds the cluster's rules")
    enabled = testbed.run_in(node, ["systemctl", "is-enabled", "nftables.service"], check=False)
    if enabled.stdout.strip() != "disabled":
        raise CheckFailed(f"{node}: nftables.service is {enabled.stdout.strip()!r}, not disabled")
    print(
        f"check: {node}: the firewall's table inet {FIREWALL_TABLE} has its rules; the"
        f" operator's table inet {OPERATOR_TABLE} survived site.yml, a reload and a restart;"
        " Debian's nftables.conf is back, nftables.service disabled"
    )


# command -> (how many arguments: exactly, or at least with a "+"; what it runs)
COMMANDS: dict[str, tuple[str, Callable[..., object]]] = {
    "single": ("1", check_single),
    "backed-up": ("2", check_backed_up),
    "wipe": ("2", check_wipe),
    "new-cluster": ("3", check_new_cluster),
    "restored": ("2", check_restored),
    "https": ("1", lambda node: check_https(node, frozenset({ZONE, f"*.{ZONE}"}))),
    "https-nodes": ("1+", lambda *nodes: check_https_nodes(nodes)),
    "monitoring": ("1", check_monitoring),
    "watchdog": ("1", check_watchdog),
    "restart": ("1", check_restart),
    "cluster": ("0", lambda: check_cluster(testbed.known_nodes(testbed.load_state()))),
    "started": ("1+", lambda *nodes: print(json.dumps(started(nodes), sort_keys=True))),
    "rejoined": ("1+", lambda *nodes: check_rejoined(nodes)),
    "added": ("1", check_added),
    "etcd-leader": ("1", make_etcd_leader),
    "removed": ("2+", lambda removed, *remaining: check_removed(removed, remaining)),
    "hardened": ("2+", lambda node, *units: check_hardened(node, units)),
    "firewall": ("1", check_firewall),
    "secrets-hidden": ("2", check_secrets_hidden),
}


def main(argv: Sequence[str]) -> int:
    command = COMMANDS.get(argv[0]) if argv else None
    arguments = argv[1:]
    if command is None or not (
        len(arguments) >= int(command[0][:-1])
        if command[0].endswith("+")
        else len(arguments) == int(command[0])
    ):
        print(__doc__, file=sys.stderr)
        return 2
    enter_controller_namespace()
    try:
        command[1](*arguments)
    except (CheckFailed, testbed.TestbedError) as error:
        print(f"check failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main(sys.argv[1:]))
