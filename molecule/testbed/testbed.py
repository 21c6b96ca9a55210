#!/usr/bin/python3
"""Testbed of real systemd machines: systemd-nspawn nodes on a private bridge.

Runs as root on a Debian bookworm host without Docker and without systemd as PID 1.
Every node boots the same golden image through its own overlay, in its own network
namespace, cgroup and nspawn process. The bridge lives in a network namespace of its
own, so the host's root namespace never gets a route into the test subnet and the nodes
never get a route out of it (they install from the .debs cached in the image).

CLI: image, up, down, kill, cut, restore, status, exec (see --help). Importable: tests
and Molecule call up(), down(), kill_node(), cut(), restore(), status(), node_pid(),
node_address(), run_in(), run_in_controller().
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HOST_SUITE = "bookworm"  # this machine's Debian: its apt sources name it
SUITES = ("bookworm", "trixie")  # the nodes' Debian, chosen by RADIO_TESTBED_SUITE
SUITE = os.environ.get("RADIO_TESTBED_SUITE") or HOST_SUITE
if SUITE not in SUITES:
    raise SystemExit(f"RADIO_TESTBED_SUITE={SUITE!r}: the testbed builds {' or '.join(SUITES)}")
BASE_DIR = Path("/var/lib/radio-testbed")
# One image per suite; bookworm's keeps the name it always had.
IMAGE_DIR = BASE_DIR / ("image" if SUITE == HOST_SUITE else f"image-{SUITE}")
NODES_DIR = BASE_DIR / "nodes"
# A node's /var: etcd's data (64 MB WAL segments) and the journal fill about 200 MB.
VAR_DISK_MB = 768
LOCK_FILE = BASE_DIR / "lock"
RUN_DIR = Path("/run/radio-testbed")
STATE_FILE = RUN_DIR / "state.json"
IMAGE_STAMP = "etc/radio-testbed-image.json"  # inside the image, so it goes with it
PREFIX = "rtb-"  # every namespace and cgroup we create carries it; down relies on it
# Cgroups of ours that are not machines: the image build's and the ACME CA's (acme_ca.py).
IMAGE_CGROUP, PEBBLE_CGROUP = "image", "pebble"
BRIDGE_NS = PREFIX + "br"
CONTROLLER_NS = PREFIX + "ctl"
BRIDGE = "br0"
# `ip netns exec rtb-ctl` bind-mounts this over /etc/hosts: the controller resolves nodes.
CONTROLLER_ETC = Path("/etc/netns") / CONTROLLER_NS
DEFAULT_NODES = ("node1", "node2", "node3")
DEFAULT_SUBNET = "10.77.0.0/24"
CONTROLLER_HOST = 2  # controller at .2; node i at .(10 + i), as inventory/demo expects
NODE_HOST_OFFSET = 10
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CGROUP_ROOTS_HYBRID = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))

IMAGE_INCLUDE = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "iproute2",
    "iputils-ping",
    "ca-certificates",
    "procps",
    "sudo",  # Ansible become (the default become method)
)
# Everything the roles install, downloaded into the image's apt cache (with Recommends,
# a superset of what roles installing without Recommends need).
CACHED_PACKAGES = (
    "etcd-server",
    "etcd-client",
    "icecast2",
    "liquidsoap",
    "python3-etcd3",
    "python3-aiohttp",
    "python3-jinja2",
    "python3-prometheus-client",
    "python3-yaml",
    "python3-dnslib",
    "python3-systemd",
    "python3-acme",
    "python3-uvloop",  # radio_agent_event_loop: uvloop
    "nftables",
    "curl",
    "ca-certificates",
    "systemd-timesyncd",  # the base role's time daemon (installed, skipped in containers)
    # The monitoring role (the default scenario runs it on node1).
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}[0-9]$")  # veth "v-<name>" fits IFNAMSIZ


class TestbedError(Exception):
    """A failure with a message meant for the user (CLI exit 1)."""


# --- small helpers ----------------------------------------------------------------------


def log(message: str) -> None:
    print(f"testbed: {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str], check: bool = True, timeout: float = 120.0, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, bounded in time; on failure raise with its stderr."""
    result = subprocess.run(
        list(argv),
        check=False,
        timeout=timeout,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-2000:]
        raise TestbedError(f"{shlex.join(argv)} failed ({result.returncode}): {detail}")
    return result


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Serialize testbed commands: two `up`s racing would build the same namespaces."""
    BASE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


# --- the host's apt sources (never hard-code a registry) -------------------------------


def host_apt_sources() -> list[dict[str, list[str]]]:
    """Every enabled `deb` entry for HOST_SUITE* in the host's sources (deb822 and
    one-line)."""
    entries: list[dict[str, list[str]]] = []
    apt_dir = Path("/etc/apt")
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".sources":
            entries += _parse_deb822(path.read_text())
        elif path.suffix == ".list" or path.name == "sources.list":
            entries += _parse_one_line(path.read_text())
    return [
        e
        for e in entries
        if "deb" in e["types"] and any(s.startswith(HOST_SUITE) for s in e["suites"])
    ]


def node_apt_sources() -> list[dict[str, list[str]]]:
    """The host's entries with SUITE for HOST_SUITE (bookworm-security: trixie-security):
    the same mirrors serve every suite."""
    return [
        {**entry, "suites": [SUITE + s.removeprefix(HOST_SUITE) for s in entry["suites"]]}
        for entry in host_apt_sources()
    ]


def _parse_deb822(text: str) -> list[dict[str, list[str]]]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        entries.append(
            {
                "types": fields.get("types", "").split(),
                "uris": fields["uris"].split(),
                "suites": fields.get("suites", "").split(),
                "components": fields.get("components", "").split(),
                "signed_by": fields.get("signed-by", "").split(),
            }
        )
    return entries


def _parse_one_line(text: str) -> list[dict[str, list[str]]]:
    entries = []
    for raw in text.splitlines():
        line = re.sub(r"\[[^\]]*\]", "", raw.split("#", 1)[0]).split()
        if len(line) >= 3 and line[0] in ("deb", "deb-src"):
            entries.append(
                {
                    "types": [line[0]],
                    "uris": [line[1]],
                    "suites": [line[2]],
                    "components": line[3:],
                    "signed_by": [],
                }
            )
    return entries


def host_mirror() -> str:
    """The host's mirror for the plain SUITE (not -security, not -updates)."""
    for entry in node_apt_sources():
        if SUITE in entry["suites"]:
            return entry["uris"][0]
    raise TestbedError(f"no '{SUITE}' deb source in /etc/apt/sources.list(.d)")


def image_sources_text(image: Path) -> str:
    """deb822 sources for the image, from the host's entries at build time."""
    stanzas = []
    for entry in node_apt_sources():
        lines = [
            "Types: deb",
            "URIs: " + " ".join(entry["uris"]),
            "Suites: " + " ".join(entry["suites"]),
            "Components: " + " ".join(entry["components"] or ["main"]),
        ]
        keys = [k for k in entry["signed_by"] if (image / k.lstrip("/")).exists()]
        if keys:
            lines.append("Signed-By: " + " ".join(keys))
        stanzas.append("\n".join(lines))
    return "\n\n".join(stanzas) + "\n"


# --- cgroups ---------------------------------------------------------------------------


def cgroup_roots() -> list[Path]:
    """Hierarchies a node needs its own cgroup in (hybrid here; plain v2 elsewhere)."""
    hybrid = [root for root in CGROUP_ROOTS_HYBRID if (root / "cgroup.procs").exists()]
    return hybrid or [Path("/sys/fs/cgroup")]


def cgroup_dirs(unit: str) -> list[Path]:
    return [root / (PREFIX + unit) for root in cgroup_roots()]


def cgroup_pids(unit: str) -> set[int]:
    """Every process in the unit's cgroups, children cgroups included."""
    pids: set[int] = set()
    for top in cgroup_dirs(unit):
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in (Path(dirpath) / "cgroup.procs").read_text().split()}
    return {pid for pid in pids if is_alive(pid)}


def remove_cgroups(unit: str) -> None:
    """rmdir bottom-up: the container's systemd made sub-cgroups inside ours."""
    for top in cgroup_dirs(unit):
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)
        if top.is_dir():
            log(f"warning: cgroup {top} still busy")


def cgroup_wrapper(unit: str, argv: Sequence[str]) -> list[str]:
    """A shell that joins the unit's cgroups and then execs argv.

    Without a cgroup of its own per node, the nodes' units fail with 219/CGROUP; joining
    before exec also means every process the node ever forks is findable by `down`.
    """
    dirs = cgroup_dirs(unit)
    for directory in dirs:
        directory.mkdir(exist_ok=True)
    joins = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in dirs)
    return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *argv]


# --- processes -------------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, str]:
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def is_alive(pid: int | None) -> bool:
    """Alive and not a zombie (nobody may reap our orphaned nspawns on this host)."""
    if not pid:
        return False
    state = _proc_status(pid).get("State", "")
    return bool(state) and not state.startswith(("Z", "X"))


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def container_init(nspawn_pid: int) -> int | None:
    """The node's PID 1 as the host sees it: nspawn's child that is PID 1 of its own ns."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        status = _proc_status(int(entry.name))
        if status.get("PPid") == str(nspawn_pid) and status.get("NSpid", "").split()[-1:] == ["1"]:
            return int(entry.name)
    return None


def signal_pids(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait (bounded) until the processes are gone; return the ones still alive."""
    deadline = time.monotonic() + timeout
    alive = {p for p in pids if is_alive(p)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {p for p in alive if is_alive(p)}
    return alive


def kill_cgroup(unit: str, timeout: float = 10.0) -> None:
    """SIGKILL everything in the unit's cgroups, re-reading them (forks may race)."""
    deadline = time.monotonic() + timeout
    pids = cgroup_pids(unit)
    while pids and time.monotonic() < deadline:
        signal_pids(pids, signal.SIGKILL)
        wait_gone(pids, 1.0)
        pids = cgroup_pids(unit)
    if pids:
        log(f"warning: processes {sorted(pids)} of {unit} survived SIGKILL")


# --- network namespaces ----------------------------------------------------------------


def netns_list() -> list[str]:
    out = run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ensure_netns(name: str) -> bool:
    """Create the namespace with loopback up; False when it already existed."""
    if name in netns_list():
        return False
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    return True


def ensure_bridge() -> None:
    if ensure_netns(BRIDGE_NS):
        run(["ip", "-n", BRIDGE_NS, "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "-n", BRIDGE_NS, "link", "set", BRIDGE, "up"])


def veth_name(name: str) -> str:
    return f"v-{name}"


def attach(netns: str, port: str, address: str, prefixlen: int) -> None:
    """A veth from the bridge into netns as eth0, with one address and no default route."""
    links = run(["ip", "-n", netns, "-o", "link", "show"]).stdout
    if " eth0@" in links:
        return
    run(
        [
            "ip",
            "-n",
            BRIDGE_NS,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns,
        ]
    )
    run(["ip", "-n", BRIDGE_NS, "link", "set", port, "master", BRIDGE, "up"])
    run(["ip", "-n", netns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])


def set_link(name: str, up_: bool) -> None:
    run(["ip", "-n", BRIDGE_NS, "link", "set", veth_name(name), "up" if up_ else "down"])


# --- image -----------------------------------------------------------------------------


def image_ready(image: Path = IMAGE_DIR) -> bool:
    return (image / IMAGE_STAMP).is_file()


def build_image(rebuild: bool = False, image: Path = IMAGE_DIR) -> dict[str, float]:
    """Build the golden image once; returns timings in seconds per step."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    with locked():
        if rebuild and image.exists():
            if load_state().get("nodes"):
                raise TestbedError("nodes are using the image: run `down` before --rebuild")
            shutil.rmtree(image)
        if image_ready(image):
            stamp = json.loads((image / IMAGE_STAMP).read_text())
            if stamp.get("cached_packages") == list(CACHED_PACKAGES):
                log(f"image ready at {image} (built {stamp.get('built')}); nothing to do")
                return {"total": time.monotonic() - started}
            # Package list grew: refresh the cache only, no new debootstrap.
            if load_state().get("nodes"):
                raise TestbedError("package list changed; run `down`, then `image`")
            timings["download"] = _timed(lambda: download_packages(image))
            _write_stamp(image)
            timings["total"] = time.monotonic() - started
            return timings
        staging = image.with_name(image.name + ".staging")
        if staging.exists():  # a previous build died half-way, maybe with /proc mounted
            _unmount_under(staging)
            shutil.rmtree(staging)
        mirror = host_mirror()
        log(f"debootstrap {SUITE} from {mirror} into {staging}")
        debootstrap = ["debootstrap", "--variant=minbase", "--include=" + ",".join(IMAGE_INCLUDE)]
        try:
            timings["debootstrap"] = _timed(
                lambda: run([*debootstrap, SUITE, str(staging), mirror], timeout=900)
            )
            configure_image(staging)
            timings["download"] = _timed(lambda: download_packages(staging))
            _write_stamp(staging)
        except BaseException:
            _unmount_under(staging)  # a killed debootstrap leaves /proc and /sys mounted
            raise
        staging.rename(image)  # only a complete image ever appears under the final name
    timings["total"] = time.monotonic() - started
    return timings


def _timed(step: Callable[[], object]) -> float:
    started = time.monotonic()
    step()
    return round(time.monotonic() - started, 1)


def _write_stamp(image: Path) -> None:
    stamp = {
        "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "suite": SUITE,
        "include": list(IMAGE_INCLUDE),
        "cached_packages": list(CACHED_PACKAGES),
    }
    write_text(image / IMAGE_STAMP, json.dumps(stamp, indent=2) + "\n")


def configure_image(image: Path) -> None:
    """What every node needs before first boot."""
    write_text(image / "etc/hosts", hosts_text({}))
    write_text(image / "etc/hostname", "localhost\n")  # debootstrap copied the host's
    # Empty machine-id: `up` gives each node its own in the node's overlay.
    write_text(image / "etc/machine-id", "")
    with contextlib.suppress(FileNotFoundError):
        (image / "var/lib/dbus/machine-id").unlink()
    (image / "var/lib/dbus").mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/machine-id", image / "var/lib/dbus/machine-id")
    write_text(image / "etc/apt/sources.list.d/debian.sources", image_sources_text(image))
    with contextlib.suppress(FileNotFoundError):
        (image / "etc/apt/sources.list").unlink()
    # Keep every .deb: the nodes have no route to the registry and install from the cache.
    write_text(
        image / "etc/apt/apt.conf.d/90radio-testbed",
        (
            'APT::Keep-Downloaded-Packages "true";\n'
            'Binary::apt::APT::Keep-Downloaded-Packages "true";\n'
            'APT::Install-Recommends "true";\n'
        ),
    )
    for hook in ("docker-clean", "docker-gzip-indexes", "docker-no-languages"):
        with contextlib.suppress(FileNotFoundError):
            (image / "etc/apt/apt.conf.d" / hook).unlink()
    # apt's timers would hold the dpkg lock against Ansible and try to reach the registry.
    for unit in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        target = image / "etc/systemd/system" / unit
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        os.symlink("/dev/null", target)


def download_packages(image: Path) -> None:
    """apt-get update and --download-only install inside a non-booted nspawn of the image."""
    unit = IMAGE_CGROUP
    try:
        install = ["apt-get", "install", "-q", "-y", "--download-only", *CACHED_PACKAGES]
        for argv in (["apt-get", "update", "-q"], install):
            nspawn = [
                "systemd-nspawn",
                f"--directory={image}",
                "--register=no",
                "--keep-unit",
                "--quiet",
                "--as-pid2",
                "--console=pipe",
                "--resolv-conf=copy-host",
                "--timezone=off",
                "--link-journal=no",
                "--setenv=DEBIAN_FRONTEND=noninteractive",
                "--",
                *argv,
            ]
            run(cgroup_wrapper(unit, nspawn), timeout=900)
    finally:
        kill_cgroup(unit)
        remove_cgroups(unit)
        remove_nspawn_run_dirs([])
    # No resolver inside nodes: they must never look like they could reach a registry.
    write_text(image / "etc/resolv.conf", "")
    debs = list((image / "var/cache/apt/archives").glob("*.deb"))
    if not debs:
        raise TestbedError("no .deb in the image's apt cache after --download-only")
    log(f"apt cache: {len(debs)} packages")


# --- state -----------------------------------------------------------------------------


def load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def save_state(state: dict) -> None:
    write_text(STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def node_index(name: str) -> int:
    """node<i> gets host .(10 + i): the trailing number of the name picks the address."""
    number = re.search(r"(\d+)$", name)
    if not NAME_RE.match(name) or number is None:
        raise TestbedError(
            f"node name {name!r}: want [a-z][a-z0-9-]* ending in a number, "
            "at most 13 characters (e.g. node4)"
        )
    return int(number.group(1))


def address_for(subnet: ipaddress.IPv4Network, host: int) -> str:
    address = subnet.network_address + host
    if address not in subnet or address == subnet.broadcast_address:
        raise TestbedError(f"host .{host} does not fit into {subnet}")
    return str(address)


HOSTS_BEGIN, HOSTS_END = "# BEGIN radio-testbed nodes", "# END radio-testbed nodes"


def hosts_text(nodes: dict[str, str]) -> str:
    """/etc/hosts: localhost (etcd fails without it) and every node by name."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    return "\n".join(lines) + "\n" + hosts_block(nodes)


def hosts_block(nodes: dict[str, str]) -> str:
    entries = [f"{address}\t{name}" for name, address in sorted(nodes.items())]
    return "\n".join([HOSTS_BEGIN, *entries, HOSTS_END]) + "\n"


def machine_id(name: str) -> str:
    """Stable per node name, different between nodes (journald, D-Bus want one each)."""
    return hashlib.sha256(f"radio-testbed:{name}".encode()).hexdigest()[:32]


# --- nodes -----------------------------------------------------------------------------


def node_paths(name: str) -> dict[str, str]:
    base = NODES_DIR / name
    return {
        "dir": str(base),
        "upper": str(base / "upper"),
        "log": str(base / "console.log"),
        "var_image": str(base / "var.img"),
        "var_mount": str(base / "var"),
    }


def var_upper(name: str) -> Path:
    """The node's /var (state and logs: etcd's data, the agent's, the journal) on a
    filesystem of its own, an ext4 image on a loop device: a full-disk fault fills that
    and never the host's disk, and fsync still reaches a disk. No blocks reserved for
    root: full is full for every service. Kept mounted across the node's restarts."""
    paths = node_paths(name)
    mount = Path(paths["var_mount"])
    if not os.path.ismount(mount):
        image = Path(paths["var_image"])
        if not image.exists():  # made under another name: a failed mkfs leaves no image
            mount.parent.mkdir(parents=True, exist_ok=True)
            staging = image.with_name(image.name + ".new")
            with open(staging, "wb") as sparse:
                sparse.truncate(VAR_DISK_MB * 1024 * 1024)
            run(["mkfs.ext4", "-q", "-F", "-m", "0", str(staging)])
            staging.rename(image)
        mount.mkdir(parents=True, exist_ok=True)
        run(["mount", "-o", "loop", str(image), str(mount)])
    upper = mount / "upper"
    upper.mkdir(exist_ok=True)
    return upper


def start_node(name: str, hosts: str) -> int:
    """Boot the node's nspawn in the background, in its own cgroup; returns nspawn's PID."""
    paths = node_paths(name)
    upper = Path(paths["upper"])
    (upper / "etc").mkdir(parents=True, exist_ok=True)
    write_text(upper / "etc/hosts", hosts)
    write_text(upper / "etc/machine-id", machine_id(name) + "\n")
    # The node's systemd sets the hostname from /etc/hostname, overriding --hostname.
    write_text(upper / "etc/hostname", name + "\n")
    nspawn = [
        "systemd-nspawn",
        f"--directory={IMAGE_DIR}",
        f"--overlay={IMAGE_DIR}:{upper}:/",
        f"--overlay={IMAGE_DIR}/var:{var_upper(name)}:/var",
        f"--machine={name}",
        f"--hostname={name}",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--network-namespace-path=/run/netns/{PREFIX}{name}",
        # nspawn drops CAP_NET_ADMIN unless it made the network itself; the namespace is
        # the node's own, and the firewall role needs it for nftables.
        "--capability=CAP_NET_ADMIN",
        "--console=read-only",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
    ]
    kill_cgroup(name)  # leftovers of a crashed run must not share the new node's cgroup
    with open(paths["log"], "ab") as console:
        process = subprocess.Popen(
            cgroup_wrapper(name, nspawn),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is not theirs
        )
    return process.pid


def wait_running(name: str, nspawn_pid: int, timeout: float = BOOT_TIMEOUT) -> int:
    """Wait (bounded) until the node's systemd is up; returns its init PID."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        if not is_alive(nspawn_pid):
            raise TestbedError(
                f"{name}: nspawn exited during boot; see "
                f"{node_paths(name)['log']}:\n{_log_tail(name)}"
            )
        init = container_init(nspawn_pid)
        if init:
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = run(
                    ["nsenter", "-t", str(init), "-a", "systemctl", "is-system-running"],
                    check=False,
                    timeout=5,
                )
                state = result.stdout.strip()
                if state in ("running", "degraded"):
                    return init
        time.sleep(0.2)
    raise TestbedError(f"{name}: not running after {timeout:.0f} s (last state {state!r})")


def _log_tail(name: str, lines: int = 15) -> str:
    try:
        text = Path(node_paths(name)["log"]).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def node_running(entry: dict) -> bool:
    """Running = our nspawn still alive and its init too (PIDs checked against reuse)."""
    pid = entry.get("nspawn_pid")
    return (
        pid is not None
        and is_alive(pid)
        and comm(pid) == "systemd-nspawn"
        and is_alive(entry.get("init_pid"))
    )


def refresh_hosts(state: dict) -> None:
    """Rewrite our block of /etc/hosts in running nodes, so a new node is known by name.

    Written through /proc/PID/root (the overlay as the node sees it); anything Ansible
    put outside our block stays.
    """
    block = hosts_block(_addresses(state))
    pattern = re.compile(re.escape(HOSTS_BEGIN) + r".*?" + re.escape(HOSTS_END) + r"\n?", re.S)
    for entry in state["nodes"].values():
        if not node_running(entry):
            continue
        path = Path(f"/proc/{entry['init_pid']}/root/etc/hosts")
        with contextlib.suppress(OSError):
            current = path.read_text()
            wanted = (
                pattern.sub(lambda _m: block, current)
                if pattern.search(current)
                else current + block
            )
            if wanted != current:
                path.write_text(wanted)


def up(
    nodes: Sequence[str] = DEFAULT_NODES,
    subnet: str = DEFAULT_SUBNET,
    timeout: float = BOOT_TIMEOUT,
) -> dict:
    """Start the named nodes (others keep running); returns the state."""
    started = time.monotonic()
    if not image_ready():
        raise TestbedError(f"no image at {IMAGE_DIR}: run `testbed.py image` first")
    network = ipaddress.ip_network(subnet)
    if not isinstance(network, ipaddress.IPv4Network):
        raise TestbedError(f"subnet {subnet}: the testbed addresses its nodes by IPv4")
    with locked():
        state = load_state() or {"subnet": subnet, "nodes": {}}
        if state["subnet"] != subnet:
            raise TestbedError(f"testbed runs on {state['subnet']}, not {subnet}: `down` first")
        controller = {"netns": CONTROLLER_NS, "address": address_for(network, CONTROLLER_HOST)}
        state.update({"image": str(IMAGE_DIR), "bridge_ns": BRIDGE_NS, "controller": controller})
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        ensure_bridge()
        ensure_netns(CONTROLLER_NS)
        attach(CONTROLLER_NS, "v-ctl", state["controller"]["address"], network.prefixlen)
        for name in nodes:
            state["nodes"].setdefault(
                name,
                {
                    "address": address_for(network, NODE_HOST_OFFSET + node_index(name)),
                    "netns": PREFIX + name,
                    "veth": veth_name(name),
                    "cgroups": [str(d) for d in cgroup_dirs(name)],
                    **node_paths(name),
                },
            )
        save_state(state)  # before booting: a failed `up` still leaves `down` a map
        hosts = hosts_text(_addresses(state))
        booting = {}
        for name in nodes:
            entry = state["nodes"][name]
            if node_running(entry):
                log(f"{name}: already running (init {entry['init_pid']})")
                continue
            ensure_netns(entry["netns"])
            attach(entry["netns"], entry["veth"], entry["address"], network.prefixlen)
            entry.update({"nspawn_pid": start_node(name, hosts), "init_pid": None})
            booting[name] = entry
        save_state(state)
        for name, entry in booting.items():  # all boot in parallel; wait for each in turn
            remaining = max(1.0, timeout - (time.monotonic() - started))
            entry["init_pid"] = wait_running(name, entry["nspawn_pid"], remaining)
            write_text(RUN_DIR / f"{name}.pid", f"{entry['init_pid']}\n")
            save_state(state)
            log(
                f"{name}: running at {entry['address']} (init {entry['init_pid']}) "
                f"after {time.monotonic() - started:.1f} s"
            )
        refresh_hosts(state)
        write_text(CONTROLLER_ETC / "hosts", hosts_text(_addresses(state)))
    return state


def _addresses(state: dict) -> dict[str, str]:
    return {name: entry["address"] for name, entry in state["nodes"].items()}


def stop_nodes(entries: dict[str, dict], names: Sequence[str]) -> None:
    """SIGTERM every nspawn (a clean halt), bounded wait, then SIGKILL what is left."""
    nspawns: set[int] = set()
    for name in names:
        candidates = {entries.get(name, {}).get("nspawn_pid") or 0} | cgroup_pids(name)
        nspawns |= {
            p
            for p in candidates
            if is_alive(p) and comm(p) == "systemd-nspawn" and p in cgroup_pids(name)
        }
    signal_pids(nspawns, signal.SIGTERM)
    left = wait_gone(nspawns, STOP_TIMEOUT)
    if left:
        log(f"nspawn {sorted(left)} ignored SIGTERM for {STOP_TIMEOUT:.0f} s: SIGKILL")
    for name in names:
        kill_cgroup(name)


def known_nodes(state: dict) -> list[str]:
    """Nodes from the state and from what is on disk, in cgroups, in namespaces."""
    names = set(state.get("nodes", {}))
    if NODES_DIR.is_dir():
        names |= {p.name for p in NODES_DIR.iterdir()}
    for root in cgroup_roots():
        names |= {p.name[len(PREFIX) :] for p in root.glob(PREFIX + "*")}
    with contextlib.suppress(TestbedError, subprocess.TimeoutExpired):
        names |= {n[len(PREFIX) :] for n in netns_list() if n.startswith(PREFIX)}
    return sorted(names - {"br", "ctl", IMAGE_CGROUP, PEBBLE_CGROUP})


def remove_nspawn_run_dirs(names: Sequence[str]) -> None:
    """nspawn's runtime dirs: it cleans its own on exit, not after SIGKILL; the empty
    parents it created on this host (no systemd here) go too, but only when empty."""
    nspawn_run = Path("/run/systemd/nspawn")
    leftovers = [nspawn_run / "propagate" / n for n in names]
    for path in [*leftovers, nspawn_run / "propagate", nspawn_run / "locks", nspawn_run]:
        with contextlib.suppress(OSError):
            path.rmdir()


def down() -> None:
    """Stop and remove everything `up` made, whatever state it got to; safe to repeat."""
    with locked():
        state = load_state()
        names = known_nodes(state)
        stop_nodes(state.get("nodes", {}), names)
        for name in [*names, IMAGE_CGROUP, PEBBLE_CGROUP]:
            kill_cgroup(name)
            remove_cgroups(name)
        for netns in netns_list():
            if netns.startswith(PREFIX):
                run(["ip", "netns", "delete", netns])
        remove_nspawn_run_dirs(names)
        _unmount_under(NODES_DIR)
        shutil.rmtree(NODES_DIR, ignore_errors=True)
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        shutil.rmtree(CONTROLLER_ETC, ignore_errors=True)
        with contextlib.suppress(OSError):
            CONTROLLER_ETC.parent.rmdir()  # /etc/netns, only if nobody else uses it
    log(f"down: removed {', '.join(names) or 'nothing'}")


def _unmount_under(path: Path) -> None:
    """Overlays live in nspawn's mount namespace; still, never rm -r through a mount."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    for target in sorted((m.split()[1] for m in mounts), reverse=True):
        if target.startswith(str(path) + "/"):
            run(["umount", "-l", target], check=False)


def _entry(name: str) -> dict:
    entry = load_state().get("nodes", {}).get(name)
    if not entry:
        raise TestbedError(f"no node {name!r} in the testbed")
    return entry


def kill_node(name: str) -> None:
    """A machine crash: SIGKILL its nspawn, then whatever of the node is left."""
    with locked():
        state = load_state()
        entry = _entry(name)
        pid = entry.get("nspawn_pid")
        if (
            pid is not None
            and is_alive(pid)
            and comm(pid) == "systemd-nspawn"
            and pid in cgroup_pids(name)
        ):
            os.kill(pid, signal.SIGKILL)
        kill_cgroup(name)
        # A stale PID file could point Ansible at an unrelated process once PIDs wrap.
        with contextlib.suppress(FileNotFoundError):
            (RUN_DIR / f"{name}.pid").unlink()
        state["nodes"][name].update({"nspawn_pid": None, "init_pid": None})
        save_state(state)


def cut(name: str) -> None:
    """Cut the node off the bridge (its veth down: both ends lose carrier)."""
    _entry(name)
    set_link(name, False)


def restore(name: str) -> None:
    _entry(name)
    set_link(name, True)


def link_up(name: str) -> bool:
    out = run(["ip", "-n", BRIDGE_NS, "-o", "link", "show", veth_name(name)], check=False)
    return "state UP" in out.stdout or ",UP" in out.stdout.split(">")[0]


def node_memory_kb(name: str) -> dict[str, int]:
    """RSS (shared pages counted per process) and PSS (fair share) summed over the node."""
    totals = {"rss_kb": 0, "pss_kb": 0}
    for pid in cgroup_pids(name):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    totals[key.lower() + "_kb"] += int(value.split()[0])
    return totals


def status() -> dict:
    state = load_state()
    nodes = {}
    for name, entry in state.get("nodes", {}).items():
        running = node_running(entry)
        nodes[name] = {
            "address": entry["address"],
            "running": running,
            "link_up": link_up(name),
            "nspawn_pid": entry.get("nspawn_pid") if running else None,
            "init_pid": entry.get("init_pid") if running else None,
            **(node_memory_kb(name) if running else {}),
        }
    return {
        "up": bool(state),
        "subnet": state.get("subnet"),
        "controller": state.get("controller"),
        "nodes": nodes,
    }


# --- for tests and Molecule ------------------------------------------------------------


def node_pid(name: str) -> int:
    """The node's systemd PID on the host (what Ansible's nsenter connection targets)."""
    entry = _entry(name)
    if not node_running(entry):
        raise TestbedError(f"node {name} is not running")
    return int(entry["init_pid"])


def node_address(name: str) -> str:
    return str(_entry(name)["address"])


def nsenter_argv(name: str, argv: Sequence[str]) -> list[str]:
    return ["nsenter", "-t", str(node_pid(name)), "-a", *argv]


def run_in(
    name: str, argv: Sequence[str], timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command inside a node (all its namespaces)."""
    return run(nsenter_argv(name, argv), check=check, timeout=timeout)


def run_in_controller(
    argv: Sequence[str], timeout: float = 60.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a host command in the controller namespace, the only host view of the subnet."""
    return run(["ip", "netns", "exec", CONTROLLER_NS, *argv], check=check, timeout=timeout)


# --- CLI -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="testbed.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("image", help="build the golden image once")
    image.add_argument("--rebuild", action="store_true")
    up_ = sub.add_parser("up", help="start nodes (running ones are left alone)")
    up_.add_argument("--nodes", default=",".join(DEFAULT_NODES))
    up_.add_argument("--subnet", default=DEFAULT_SUBNET)
    sub.add_parser("down", help="stop and remove everything but the image")
    for command, text in (
        ("kill", "SIGKILL a node (a crash)"),
        ("cut", "cut a node off"),
        ("restore", "reconnect a cut node"),
    ):
        sub.add_parser(command, help=text).add_argument("name")
    sub.add_parser("status", help="JSON: nodes, PIDs, running")
    exec_ = sub.add_parser("exec", help="run a command in a node: exec NAME -- CMD...")
    exec_.add_argument("name")
    exec_.add_argument("cmd", nargs=argparse.REMAINDER)
    return parser.parse_args(argv)


def cmd_image(args: argparse.Namespace) -> int:
    timings = build_image(rebuild=args.rebuild)
    size = run(["du", "-sh", str(IMAGE_DIR)]).stdout.split()[0]
    log(f"image: {json.dumps(timings)} size {size}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    names = [n for n in args.nodes.split(",") if n]
    for name in names:
        node_index(name)  # reject bad names before touching anything
    try:
        up(names, args.subnet)
    except BaseException:
        log("up failed: run `testbed.py down` to clean up (the state file is kept for it)")
        raise
    log(f"up: {', '.join(names)} running after {time.monotonic() - started:.1f} s")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("testbed: exec NAME -- CMD...", file=sys.stderr)
        return 2
    os.execvp("nsenter", nsenter_argv(args.name, cmd))  # noqa: S606 (argv, no shell)
    return 0  # not reached


def cmd_status(_args: argparse.Namespace) -> int:
    print(json.dumps(status(), indent=2))
    return 0


def cmd_down(_args: argparse.Namespace) -> int:
    down()
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    kill_node(args.name)
    return 0


def cmd_cut(args: argparse.Namespace) -> int:
    cut(args.name)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    restore(args.name)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "image": cmd_image,
    "up": cmd_up,
    "down": cmd_down,
    "kill": cmd_kill,
    "cut": cmd_cut,
    "restore": cmd_restore,
    "status": cmd_status,
    "exec": cmd_exec,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("testbed: run as root (namespaces, cgroups, nspawn)", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except TestbedError as error:
        print(f"testbed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
