"""The agent's YAML configuration: load, validate, and say exactly what is wrong.

The schema is stated once. Each section's dataclass below names its keys and holds their
defaults; `SECTIONS` gives each key its check and each section the rules between its keys.
`parse_config` is pure; `file_problems` looks at the disk, and the entry points
(`load_config`, `load_etcd_settings`) run both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radioagent.acme.state import CHALLENGE_TYPES
from radioagent.validation import (
    ValidationError,
    check_int,
    check_number,
    check_string,
    unknown_keys,
)
from radioagent.yamlfile import load_yaml_text

NODE_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
HOST_PATTERN = r"[A-Za-z0-9.:-]{1,253}"
PREFIX_PATTERN = r"/[A-Za-z0-9_/-]*[A-Za-z0-9_-]"
NODE_CREDENTIAL_PATTERN = r"[A-Za-z0-9._~!@#$%^&*+=,;?-]{8,128}"
NODE_CREDENTIAL_DESCRIPTION = "8-128 printable characters without spaces, quotes, ':', '<' or '>'"
ENDPOINT_PATTERN = r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}|\[[0-9A-Fa-f:]{2,45}\]:[0-9]{1,5}"
USER_PATTERN = r"[a-z_][a-z0-9_-]{0,31}"
DEFAULT_TEMPLATES_DIR = "/usr/share/radio-agent/templates"
ICECAST_TEMPLATE = "icecast.xml.j2"


# The filesystems whose free space the agent publishes (radio_disk_*): its own state,
# etcd's data, the logs. A path that does not exist (a gateway's etcd) is left out.
DEFAULT_DISK_PATHS = ("/var/lib/radio-agent", "/var/lib/etcd", "/var/log")


@dataclass(frozen=True)
class _NodeSettings:
    """The `node` section; AgentConfig holds its values as node_name, node_address and
    disk_paths."""

    name: str
    address: str
    disk_paths: tuple[str, ...] = DEFAULT_DISK_PATHS


@dataclass(frozen=True)
class EtcdSettings:
    # host:port, the local member (or gateway) first; the agent moves to the next one
    # when the current one stops answering, so losing one member changes no leadership.
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    prefix: str = "/radio"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # The etcd member on this machine (its --name). Set, the radio leader keeps etcd's
    # raft leadership off it (coordination/raft.py); None (the default): it does not.
    # Off by default: a CI run saw a write stall for its whole 5 s deadline right after
    # such a move, and that needs understanding before every cluster does it.
    member_name: str | None = None
    # The local member's metrics page (etcd's --listen-metrics-urls plus /metrics): the
    # agent reads it every 15 s and passes the alert rules' families on in its /metrics.
    # None (a gateway node, or not wanted): it does not.
    metrics_url: str | None = None


@dataclass(frozen=True)
class IcecastSettings:
    """The node's own Icecast, on an internal port that only cluster nodes reach."""

    port: int
    admin_password: str
    source_password: str  # node-internal: the agent's holding feeds and relays use it
    config_path: str
    reload_command: tuple[str, ...]
    admin_user: str = "admin"
    bind_address: str = "0.0.0.0"  # noqa: S104 - other nodes relay from this port
    log_dir: str = "/var/log/icecast2"
    max_clients: int = 2000
    # Written when Icecast has not answered for hung_restart_seconds, every read timing
    # out (icecast/hang.py): a path unit restarts it. None: no restart is asked for.
    restart_request_file: str | None = None
    hung_restart_seconds: float = 15.0


@dataclass(frozen=True)
class LocalApiSettings:
    """The agent's loopback HTTP port: Icecast asks it whether to take a source, and
    relays ask it where the leader is."""

    port: int = 8090
    bind_address: str = "127.0.0.1"


@dataclass(frozen=True)
class FrontDoorSettings:
    """The agent's public HTTP ports (listeners, sources, status, health, metrics)."""

    ports: tuple[int, ...] = (80, 8000)
    bind_address: str = "0.0.0.0"  # noqa: S104 - the public side
    public_address: str | None = None  # where other nodes send listeners; None: node.address
    public_name: str | None = None  # the cluster's name in playlists; None: the Host header
    header_timeout: float = 10.0  # seconds to receive a request head (and keep-alive idle)
    max_connections: int = 20000
    # Bounds per client address (an IPv4 address, an IPv6 /64): connections open at once
    # (of any kind: the bound a flood of idle ones meets), listeners, sources; and failed
    # source authentications (sources and title updates) within a window, after which
    # that address is refused (429) until the window has passed.
    per_address_connections: int = 256
    per_address_listeners: int = 128
    per_address_sources: int = 16
    failed_logins: int = 10
    failed_login_window: float = 60.0
    unlimited_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # no bound applies
    # Who may read /metrics and the nodes' internal addresses and ports in the status
    # (the others get 403 and a status without them): monitoring and the cluster's nodes.
    internal_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    access_log: bool = True  # JSON lines for listeners and sources (frontdoor/access.py)
    # Audio held for a studio while no leader takes it (a leader change); None: the
    # cluster's ttl + retry_timeout + 5 s, at least 10 s; 0: studios are cut instead.
    studio_backlog_seconds: float | None = None
    # HTTPS: the ports, the certificate chain and key (PEM files, reloaded when they
    # change), and the name the certificate covers, where other nodes send HTTPS listeners.
    tls_ports: tuple[int, ...] = ()
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    https_name: str | None = None


@dataclass(frozen=True)
class FailsafeSettings:
    """Failsafe on quorum loss (coordination/failsafe.py): the same key on every node.
    None (the default): a leader cut off from etcd steps down at retry_timeout."""

    key: str | None = dataclasses.field(default=None, repr=False)
    # When this node last acknowledged a ping, kept across restarts: a new life must not
    # take anything while a hold may still rest on its previous life's word.
    state_file: str = "/var/lib/radio-agent/failsafe-acknowledged"


@dataclass(frozen=True)
class DnsSettings:
    """The cluster's zone, answered by this node when `zone` is set (the nodes the
    inventory names: by default the etcd members)."""

    zone: str | None = None  # e.g. stream.example.org; None: this node answers no DNS
    port: int = 53
    bind_address: str = "0.0.0.0"  # noqa: S104 - the public side
    # The nodes that answer for the zone, with their public addresses: NS and glue.
    # None: this node alone, at its public address.
    nameservers: tuple[tuple[str, str], ...] | None = None
    max_records: int = 4  # addresses in one answer for the zone's name


@dataclass(frozen=True)
class AcmeSettings:
    """The cluster orders its certificate from an ACME CA when `directory_url` is set;
    front_door.tls_cert_file and tls_key_file are then where this node keeps it."""

    directory_url: str | None = None  # e.g. Let's Encrypt's, https://.../directory
    email: str | None = None  # the CA's contact for expiry warnings
    challenge: str = "dns-01"  # dns-01 (the cluster's own zone) or http-01
    name: str | None = None  # the cluster's name the certificate is for; None: dns.zone
    ca_file: str | None = None  # the CA bundle for the ACME server's HTTPS; None: the system's
    retry_seconds: float = 900  # after a failed order (CAs rate-limit failed validations)
    validation_timeout: float = 120  # for the CA to validate and issue


@dataclass(frozen=True)
class TranscodingSettings:
    """Transcoders run Liquidsoap directly (no wrapper), as `user` when the agent is root,
    so the kernel can kill them with the agent."""

    liquidsoap_command: tuple[str, ...] = ("liquidsoap",)
    user: str | None = "liquidsoap"
    run_dir: str = "/run/radio-agent"


@dataclass(frozen=True)
class HoldingSettings:
    """Holding silence for codecs other than MP3 is encoded once by Liquidsoap and cached."""

    cache_dir: str = "/var/cache/radio-agent"
    liquidsoap_command: tuple[str, ...] = ("liquidsoap",)


@dataclass(frozen=True)
class Timing:
    """Seconds. loop_wait + 2 * retry_timeout <= ttl, so a node that loses etcd demotes
    itself before its lease can expire and another node takes over.

    The defaults are sized for a crash failover within 10 s (the leader's lease, then a
    campaign and Icecast's 1 s reload cycle), with the etcd role's WAN settings
    (heartbeat 250 ms, election timeout 2.5 s): a keepalive every 0.75 s gets four tries
    at a link with a few hundred ms of round trip before retry_timeout; etcd's floor for
    a lease (3.75 s with those settings) is far below the ttl. The cost: a raft election
    (2.5 to 5 s) outlasts retry_timeout, and when it follows a member's death the failsafe
    cannot hold (the dead node never acknowledges), so the leader pauses for the rest of
    it (2 to 3.6 s measured on the testbed)."""

    ttl: float = 8
    loop_wait: float = 2
    retry_timeout: float = 3


def keepalive_interval(timing: Timing) -> float:
    """How often the lease is refreshed: four tries before retry_timeout runs out."""
    return max(0.1, timing.retry_timeout / 4)


@dataclass(frozen=True)
class Limits:
    max_listeners: int | None = None
    bandwidth_kbps: int | None = None


@dataclass(frozen=True)
class AgentConfig:
    node_name: str
    node_address: str
    etcd: EtcdSettings
    icecast: IcecastSettings
    timing: Timing
    limits: Limits
    local_api: LocalApiSettings = LocalApiSettings()
    holding: HoldingSettings = HoldingSettings()
    front_door: FrontDoorSettings = FrontDoorSettings()
    transcoding: TranscodingSettings = TranscodingSettings()
    dns: DnsSettings = DnsSettings()
    acme: AcmeSettings = AcmeSettings()
    failsafe: FailsafeSettings = FailsafeSettings()
    templates_dir: str = DEFAULT_TEMPLATES_DIR
    event_loop: str = "asyncio"  # or "uvloop" (Debian's python3-uvloop): bench/eventloop
    disk_paths: tuple[str, ...] = DEFAULT_DISK_PATHS


# --- Checks: each takes the field's dotted name and the given value, and returns a problem
# or None. Only given values are checked: a default is valid by construction (a unit test
# runs every default through its check).

Check = Callable[[str, Any], str | None]


def boolean(field: str, value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{field}: {value!r} is not true or false"


def integer(minimum: int, maximum: int) -> Check:
    return lambda field, value: check_int(field, value, minimum, maximum)


def number(minimum: float, maximum: float) -> Check:
    return lambda field, value: check_number(field, value, minimum, maximum)


def text(pattern: str, description: str, max_length: int = 255, *, secret: bool = False) -> Check:
    return lambda field, value: check_string(
        field, value, pattern, description, max_length, secret=secret
    )


def or_null(check: Check) -> Check:
    """The check, or null: the key may be given as null (YAML `~`) to mean none."""
    return lambda field, value: None if value is None else check(field, value)


def absolute_path(field: str, value: Any) -> str | None:
    if not isinstance(value, str) or not Path(value).is_absolute():
        return f"{field}: {value!r} is not an absolute path"
    return None


def absolute_paths(field: str, value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > 16:
        return f"{field}: {value!r} is not a list of at most 16 absolute paths"
    for index, path in enumerate(value):
        if problem := absolute_path(f"{field}[{index}]", path):
            return problem
    return None


def file_name(field: str, value: Any) -> str | None:
    """A file name; whether the file is there is `file_problems`' question, not parsing's."""
    if not isinstance(value, str) or not value or "\0" in value:
        return f"{field}: {value!r} is not a file name"
    return None


def command(example: str) -> Check:
    def check(field: str, value: Any) -> str | None:
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(part, str) and part for part in value)
        ):
            return f"{field}: {value!r} is not a non-empty list of strings (e.g. {example})"
        return None

    return check


def endpoints(field: str, value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or not value
        or len(value) > 16
        or not all(isinstance(endpoint, str) for endpoint in value)
    ):
        return f"{field}: {value!r} is not a list of 1-16 host:port strings"
    for endpoint in value:
        if (
            not re.fullmatch(ENDPOINT_PATTERN, endpoint)
            or not 0 < int(endpoint.rpartition(":")[2]) < 65536
        ):
            return f"{field}: {endpoint!r} is not host:port (e.g. 127.0.0.1:2379 or [fd00::1]:2379)"
    return None


def tls_ports(field: str, value: Any) -> str | None:
    if value == []:
        return None
    return ports(field, value)


def ports(field: str, value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= 4
        or any(check_int(field, port, 1, 65535) for port in value)
        or len(set(value)) != len(value)
    ):
        return f"{field}: {value!r} is not a list of 1-4 distinct ports"
    return None


ZONE_PATTERN = (
    r"(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?"
)


def networks(field: str, value: Any) -> str | None:
    """A list of networks in CIDR notation (an address alone is its own network)."""
    if not isinstance(value, list) or len(value) > 256:
        return f"{field}: {value!r} is not a list of at most 256 networks like 192.0.2.0/24"
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except (TypeError, ValueError):
            return f"{field}: {network!r} is not a network like 192.0.2.0/24 or 2001:db8::/32"
    return None


def nameservers(field: str, value: Any) -> str | None:
    """A mapping of node names to IP addresses, as `dns.nameservers: {node1: 192.0.2.1}`."""
    if not isinstance(value, dict) or not 0 < len(value) <= 16:
        return f"{field}: {value!r} is not a mapping of 1-16 node names to IP addresses"
    for name, address in value.items():
        if not isinstance(name, str) or not re.fullmatch(NODE_NAME_PATTERN, name):
            return f"{field}: {name!r} is not a node name"
        if not isinstance(address, str) or ip_version(address) is None:
            return f"{field}.{name}: {address!r} is not an IP address"
    return None


def ip_version(address: str) -> int | None:
    """4 or 6; None for a host name (which DNS cannot give as an address record)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


# --- Rules between the keys of one section, on the parsed values.


def timing_problems(timing: Timing) -> list[str]:
    if timing.loop_wait + 2 * timing.retry_timeout > timing.ttl:
        return [
            f"timing: loop_wait + 2 * retry_timeout = "
            f"{timing.loop_wait + 2 * timing.retry_timeout:g} exceeds ttl = {timing.ttl:g} "
            "(a node cut off from etcd must demote before its lease expires elsewhere)"
        ]
    return []


def front_door_tls_problems(door: FrontDoorSettings) -> list[str]:
    problems = []
    if door.tls_ports and (door.tls_cert_file is None or door.tls_key_file is None):
        problems.append("front_door.tls_ports: give tls_cert_file and tls_key_file too")
    if (door.tls_cert_file is None) != (door.tls_key_file is None):
        problems.append("front_door.tls_cert_file and tls_key_file: give both or neither")
    if door.tls_ports and door.https_name is None:
        problems.append(
            "front_door.tls_ports: give https_name too (the name the certificate covers, "
            "where other nodes send HTTPS listeners)"
        )
    if set(door.tls_ports) & set(door.ports):
        problems.append("front_door.tls_ports: a port cannot serve both HTTP and HTTPS")
    return problems


def acme_problems(acme: AcmeSettings, door: FrontDoorSettings, dns: DnsSettings) -> list[str]:
    """ACME needs somewhere to serve the certificate, and a name: DNS-01 proves it through
    the zone this node answers."""
    if acme.directory_url is None:
        return []
    problems = []
    if not door.tls_ports:
        problems.append(
            "acme.directory_url: give front_door.tls_ports, tls_cert_file, tls_key_file"
        )
    if acme.name is None and dns.zone is None:
        problems.append("acme.name: missing (or give dns.zone, the default)")
    if acme.challenge == "dns-01" and dns.zone is None:
        problems.append("acme.challenge: dns-01 needs dns.zone (this node answers the challenge)")
    name = acme.name or dns.zone
    if acme.challenge == "dns-01" and dns.zone and name and not _within(name, dns.zone):
        problems.append(f"acme.name: {name} is outside dns.zone {dns.zone}")
    return problems


def _within(name: str, zone: str) -> bool:
    return name == zone or name.endswith(f".{zone}")


def choice(allowed: tuple[str, ...]) -> Check:
    return lambda field, value: (
        None if value in allowed else f"{field}: {value!r} is not one of {', '.join(allowed)}"
    )


def etcd_pair_problems(etcd: EtcdSettings) -> list[str]:
    if (etcd.cert_file is None) != (etcd.key_file is None):
        return ["etcd.cert_file and etcd.key_file: give both or neither"]
    return []


# --- The schema.


@dataclass(frozen=True)
class Section:
    """One mapping of the file. `settings`' fields are its keys (a field without a default
    is required); `checks` has one check per key; `rules` span keys, and see only values
    that passed their checks."""

    settings: type[Any]
    checks: Mapping[str, Check]
    rules: Callable[[Any], list[str]] = lambda settings: []


IP_ADDRESS = text(HOST_PATTERN, "an IP address")
HOST = text(HOST_PATTERN, "a host name or IP address")
NODE_CREDENTIAL = text(NODE_CREDENTIAL_PATTERN, NODE_CREDENTIAL_DESCRIPTION, secret=True)
LIQUIDSOAP_COMMAND = command("[liquidsoap]")
FAILSAFE_KEY = text(
    r"[A-Za-z0-9._~!@#$%^&*+=,;?-]{32,128}",
    "32-128 printable characters without spaces, quotes, ':', '<' or '>'",
    secret=True,
)

SECTIONS: dict[str, Section] = {
    "node": Section(
        _NodeSettings,
        {
            "name": text(
                NODE_NAME_PATTERN, "1-63 of a-z 0-9 -, starting with a letter or digit", 63
            ),
            "address": text(HOST_PATTERN, "an IP address or host name"),
            "disk_paths": absolute_paths,
        },
    ),
    "etcd": Section(
        EtcdSettings,
        {
            "endpoints": endpoints,
            "prefix": text(
                PREFIX_PATTERN, "an absolute key prefix like /radio, without a trailing slash"
            ),
            "ca_file": or_null(file_name),
            "cert_file": or_null(file_name),
            "key_file": or_null(file_name),
            "member_name": or_null(text(NODE_NAME_PATTERN, "an etcd member's name", 63)),
            "metrics_url": or_null(text(r"https?://[^\s]+", "an http:// or https:// URL", 1000)),
        },
        etcd_pair_problems,
    ),
    "icecast": Section(
        IcecastSettings,
        {
            "port": integer(1, 65535),
            "admin_password": NODE_CREDENTIAL,
            "source_password": NODE_CREDENTIAL,
            "config_path": absolute_path,
            "reload_command": command("[systemctl, reload, icecast2]"),
            "admin_user": text(r"[A-Za-z0-9._-]{1,64}", "1-64 of A-Z a-z 0-9 . _ -"),
            "bind_address": IP_ADDRESS,
            "log_dir": absolute_path,
            "max_clients": integer(1, 1_000_000),
            "restart_request_file": or_null(absolute_path),
            "hung_restart_seconds": number(3, 3600),
        },
    ),
    "timing": Section(
        Timing,
        {
            "ttl": number(2, 3600),
            "loop_wait": number(0.1, 600),
            "retry_timeout": number(0.1, 600),
        },
        timing_problems,
    ),
    "limits": Section(
        Limits,
        {
            "max_listeners": or_null(integer(1, 100_000_000)),
            "bandwidth_kbps": or_null(integer(1, 100_000_000)),
        },
    ),
    "local_api": Section(LocalApiSettings, {"port": integer(1, 65535), "bind_address": IP_ADDRESS}),
    "holding": Section(
        HoldingSettings, {"cache_dir": absolute_path, "liquidsoap_command": LIQUIDSOAP_COMMAND}
    ),
    "front_door": Section(
        FrontDoorSettings,
        {
            "ports": ports,
            "bind_address": IP_ADDRESS,
            "public_address": or_null(HOST),
            "public_name": or_null(HOST),
            "header_timeout": number(0.1, 300),
            "max_connections": integer(1, 1_000_000),
            "per_address_connections": integer(1, 1_000_000),
            "per_address_listeners": integer(1, 1_000_000),
            "per_address_sources": integer(1, 10_000),
            "failed_logins": integer(1, 10_000),
            "failed_login_window": number(1, 86_400),
            "unlimited_networks": networks,
            "internal_networks": networks,
            "access_log": boolean,
            "studio_backlog_seconds": or_null(number(0, 600)),
            "tls_ports": tls_ports,
            "tls_cert_file": or_null(file_name),
            "tls_key_file": or_null(file_name),
            "https_name": or_null(
                text(ZONE_PATTERN, "a lowercase DNS name like node1.example.org")
            ),
        },
        front_door_tls_problems,
    ),
    "dns": Section(
        DnsSettings,
        {
            "zone": or_null(text(ZONE_PATTERN, "a lowercase DNS name like stream.example.org")),
            "port": integer(1, 65535),
            "bind_address": IP_ADDRESS,
            "nameservers": or_null(nameservers),
            "max_records": integer(1, 16),
        },
    ),
    "acme": Section(
        AcmeSettings,
        {
            "directory_url": or_null(text(r"https://[^\s]+", "an https:// URL", 1000)),
            "email": or_null(text(r"[^@\s]+@[^@\s]+", "an email address")),
            "challenge": choice(CHALLENGE_TYPES),
            "name": or_null(text(ZONE_PATTERN, "a lowercase DNS name like stream.example.org")),
            "ca_file": or_null(file_name),
            "retry_seconds": number(1, 7 * 86400),
            "validation_timeout": number(5, 3600),
        },
    ),
    "failsafe": Section(
        FailsafeSettings, {"key": or_null(FAILSAFE_KEY), "state_file": absolute_path}
    ),
    "transcoding": Section(
        TranscodingSettings,
        {
            "liquidsoap_command": LIQUIDSOAP_COMMAND,
            "user": or_null(text(USER_PATTERN, "a user name")),
            "run_dir": absolute_path,
        },
    ),
}
TOP_LEVEL_KEYS = {*SECTIONS, "templates_dir", "event_loop"}
EVENT_LOOPS = ("asyncio", "uvloop")


def parse_section(name: str, section: Section, given: Any) -> tuple[Any, list[str]]:
    """The section's settings (None when a value is bad) and its problems."""
    keys = {field.name for field in dataclasses.fields(section.settings)}
    if not isinstance(given, dict):
        return None, [f"{name}: expected a mapping with keys {', '.join(sorted(keys))}"]
    problems = unknown_keys(f"{name}.", given, keys)
    bad_values: list[str] = []
    values = {}
    for field in dataclasses.fields(section.settings):
        if field.name in given:
            value = given[field.name]
            problem = section.checks[field.name](f"{name}.{field.name}", value)
            if problem:
                bad_values.append(problem)
            # YAML has lists and mappings; the settings hold tuples (frozen, hashable)
            if isinstance(value, dict):
                value = tuple(sorted(value.items()))
            values[field.name] = tuple(value) if isinstance(value, list) else value
        elif field.default is field.default_factory is dataclasses.MISSING:
            bad_values.append(f"{name}.{field.name}: missing")
    if bad_values:
        return None, problems + bad_values
    settings = section.settings(**values)  # absent keys take the dataclass's defaults
    return settings, problems + section.rules(settings)


def parse_config(raw: Any) -> AgentConfig:
    """An AgentConfig from decoded YAML, or ValidationError naming every bad key. Pure:
    whether the files it names exist is `file_problems`' question."""
    if not isinstance(raw, dict):
        raise ValidationError(["config: expected a mapping at the top level"])
    problems = unknown_keys("", raw, TOP_LEVEL_KEYS)
    sections = {}
    for name, section in SECTIONS.items():
        sections[name], section_problems = parse_section(name, section, raw.get(name, {}))
        problems += section_problems
    optional = {}
    if "templates_dir" in raw:
        optional["templates_dir"] = raw["templates_dir"]
        if problem := absolute_path("templates_dir", raw["templates_dir"]):
            problems.append(problem)
    if "event_loop" in raw:
        optional["event_loop"] = raw["event_loop"]
        if raw["event_loop"] not in EVENT_LOOPS:
            problems.append(f"event_loop: {raw['event_loop']!r} is not one of {EVENT_LOOPS}")
    if not problems:
        problems += acme_problems(sections["acme"], sections["front_door"], sections["dns"])
    if problems:
        raise ValidationError(problems)
    node = sections.pop("node")
    return AgentConfig(
        node_name=node.name,
        node_address=node.address,
        disk_paths=node.disk_paths,
        **sections,
        **optional,
    )


def _file_problem(field: str, name: str | None) -> str | None:
    if name is not None and not (Path(name).is_file() and os.access(name, os.R_OK)):
        return f"{field}: {name!r} is not a readable file"
    return None


def etcd_file_problems(etcd: EtcdSettings) -> list[str]:
    checks = [
        _file_problem("etcd.ca_file", etcd.ca_file),
        _file_problem("etcd.cert_file", etcd.cert_file),
        _file_problem("etcd.key_file", etcd.key_file),
    ]
    return [problem for problem in checks if problem]


def file_problems(config: AgentConfig) -> list[str]:
    """What is missing on disk: the etcd TLS files, the front door's certificate and key,
    the Icecast template."""
    problems = etcd_file_problems(config.etcd)
    if config.acme.directory_url is None:  # with ACME, the agent writes them
        problems += filter(
            None,
            [
                _file_problem("front_door.tls_cert_file", config.front_door.tls_cert_file),
                _file_problem("front_door.tls_key_file", config.front_door.tls_key_file),
            ],
        )
    if problem := _file_problem("acme.ca_file", config.acme.ca_file):
        problems.append(problem)
    if not Path(config.templates_dir, ICECAST_TEMPLATE).is_file():
        problems.append(f"templates_dir: {config.templates_dir!r} holds no {ICECAST_TEMPLATE}")
    return problems


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate the YAML file; ValidationError says what is wrong, and where."""
    config = parse_config(load_yaml_text(path))
    problems = file_problems(config)
    if problems:
        raise ValidationError(problems)
    return config


def load_etcd_settings(path: str | Path) -> EtcdSettings:
    """Only the `etcd` section of a config file: what radioctl needs."""
    raw = load_yaml_text(path)
    section = raw.get("etcd", {}) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise ValidationError([f"{path}: expected a mapping with an `etcd` section"])
    etcd, problems = parse_section("etcd", SECTIONS["etcd"], section)
    if not problems:
        problems = etcd_file_problems(etcd)
    if problems:
        raise ValidationError(problems)
    return etcd
