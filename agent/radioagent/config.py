"""The agent's YAML configuration: load, validate, and say exactly what is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from radioagent.validation import (
    ValidationError,
    check_int,
    check_number,
    check_string,
    unknown_keys,
)

NODE_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
HOST_PATTERN = r"[A-Za-z0-9.:-]{1,253}"
PREFIX_PATTERN = r"/[A-Za-z0-9_/-]*[A-Za-z0-9_-]"
NODE_CREDENTIAL_PATTERN = r"[A-Za-z0-9._~!@#$%^&*+=,;?-]{8,128}"
NODE_CREDENTIAL_DESCRIPTION = "8-128 printable characters without spaces, quotes, ':', '<' or '>'"
DEFAULT_TEMPLATES_DIR = "/usr/share/radio-agent/templates"


@dataclass(frozen=True)
class EtcdSettings:
    # host:port, the local member (or gateway) first; the agent moves to the next one
    # when the current one stops answering, so losing one member changes no leadership.
    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    prefix: str = "/radio"
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


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
    itself before its lease can expire and another node takes over."""

    ttl: float = 15
    loop_wait: float = 3
    retry_timeout: float = 6


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
    templates_dir: str = DEFAULT_TEMPLATES_DIR


SECTIONS = {
    "node",
    "etcd",
    "icecast",
    "timing",
    "limits",
    "local_api",
    "holding",
    "front_door",
    "transcoding",
    "templates_dir",
}
TRANSCODING_KEYS = {"liquidsoap_command", "user", "run_dir"}
FRONT_DOOR_KEYS = {
    "ports",
    "bind_address",
    "public_address",
    "public_name",
    "header_timeout",
    "max_connections",
}
HOLDING_KEYS = {"cache_dir", "liquidsoap_command"}
LOCAL_API_KEYS = {"port", "bind_address"}
NODE_KEYS = {"name", "address"}
ETCD_KEYS = {"endpoints", "prefix", "ca_file", "cert_file", "key_file"}
ENDPOINT_PATTERN = r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}|\[[0-9A-Fa-f:]{2,45}\]:[0-9]{1,5}"
ICECAST_KEYS = {
    "port",
    "admin_user",
    "admin_password",
    "source_password",
    "config_path",
    "reload_command",
    "bind_address",
    "log_dir",
    "max_clients",
}
TIMING_KEYS = {"ttl", "loop_wait", "retry_timeout"}
LIMITS_KEYS = {"max_listeners", "bandwidth_kbps"}


def _section(raw: dict, name: str, known: set[str], problems: list[str]) -> dict:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        problems.append(f"{name}: expected a mapping with keys {', '.join(sorted(known))}")
        return {}
    problems.extend(unknown_keys(f"{name}.", section, known))
    return section


def _required(section: dict, where: str, key: str, problems: list[str]) -> Any:
    if key not in section:
        problems.append(f"{where}.{key}: missing")
    return section.get(key)


def _file_problem(field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not Path(value).is_file():
        return f"{field}: {value!r} is not a readable file"
    return None


def _command_problem(field: str, command: Any) -> str | None:
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(part, str) and part for part in command)
    ):
        return f"{field}: {command!r} is not a non-empty list of strings"
    return None


def _endpoints_problem(endpoints: Any) -> str | None:
    if (
        not isinstance(endpoints, list)
        or not endpoints
        or len(endpoints) > 16
        or not all(isinstance(endpoint, str) for endpoint in endpoints)
    ):
        return f"etcd.endpoints: {endpoints!r} is not a list of 1-16 host:port strings"
    for endpoint in endpoints:
        if (
            not re.fullmatch(ENDPOINT_PATTERN, endpoint)
            or not 0 < int(endpoint.rpartition(":")[2]) < 65536
        ):
            return (
                f"etcd.endpoints: {endpoint!r} is not host:port "
                "(e.g. 127.0.0.1:2379 or [fd00::1]:2379)"
            )
    return None


def etcd_problems(etcd: dict) -> list[str]:
    """Problems in the `etcd` section (radioctl reads only this section)."""
    checks = [
        _endpoints_problem(etcd.get("endpoints", ["127.0.0.1:2379"])),
        check_string(
            "etcd.prefix",
            etcd.get("prefix", "/radio"),
            PREFIX_PATTERN,
            "an absolute key prefix like /radio, without a trailing slash",
        ),
        _file_problem("etcd.ca_file", etcd.get("ca_file")),
        _file_problem("etcd.cert_file", etcd.get("cert_file")),
        _file_problem("etcd.key_file", etcd.get("key_file")),
    ]
    if (etcd.get("cert_file") is None) != (etcd.get("key_file") is None):
        checks.append("etcd.cert_file and etcd.key_file: give both or neither")
    return [problem for problem in checks if problem]


def etcd_settings(etcd: dict) -> EtcdSettings:
    return EtcdSettings(**{**etcd, "endpoints": tuple(etcd.get("endpoints", ["127.0.0.1:2379"]))})


def load_etcd_settings(path: str | Path) -> EtcdSettings:
    """Only the `etcd` section of a config file: what radioctl needs."""
    raw = _read_yaml(path)
    section = raw.get("etcd", {}) if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise ValidationError([f"{path}: expected a mapping with an `etcd` section"])
    problems = unknown_keys("etcd.", section, ETCD_KEYS) + etcd_problems(section)
    if problems:
        raise ValidationError(problems)
    return etcd_settings(section)


def timing_problems(timing: Timing) -> list[str]:
    if timing.loop_wait + 2 * timing.retry_timeout > timing.ttl:
        return [
            f"timing: loop_wait + 2 * retry_timeout = "
            f"{timing.loop_wait + 2 * timing.retry_timeout:g} exceeds ttl = {timing.ttl:g} "
            "(a node cut off from etcd must demote before its lease expires elsewhere)"
        ]
    return []


def front_door_problems(front_door: dict[str, Any]) -> list[str]:
    checks: list[str | None] = []
    ports = front_door.get("ports", [80, 8000])
    if (
        not isinstance(ports, list)
        or not 0 < len(ports) <= 4
        or any(check_int("front_door.ports", port, 1, 65535) for port in ports)
        or len(set(ports)) != len(ports)
    ):
        checks.append(f"front_door.ports: {ports!r} is not a list of 1-4 distinct ports")
    checks.append(
        check_string(
            "front_door.bind_address",
            front_door.get("bind_address", "0.0.0.0"),  # noqa: S104
            HOST_PATTERN,
            "an IP address",
        )
    )
    for key in ("public_address", "public_name"):
        if front_door.get(key) is not None:
            checks.append(
                check_string(
                    f"front_door.{key}", front_door[key], HOST_PATTERN, "a host name or IP address"
                )
            )
    checks.append(
        check_number("front_door.header_timeout", front_door.get("header_timeout", 10.0), 0.1, 300)
    )
    checks.append(
        check_int(
            "front_door.max_connections", front_door.get("max_connections", 20000), 1, 1_000_000
        )
    )
    return [problem for problem in checks if problem]


def transcoding_problems(transcoding: dict[str, Any]) -> list[str]:
    checks: list[str | None] = []
    checks.append(
        _command_problem(
            "transcoding.liquidsoap_command",
            transcoding.get("liquidsoap_command", ["liquidsoap"]),
        )
    )
    if transcoding.get("user") is not None:
        checks.append(
            check_string(
                "transcoding.user", transcoding["user"], r"[a-z_][a-z0-9_-]{0,31}", "a user name"
            )
        )
    run_dir = transcoding.get("run_dir", "/run/radio-agent")
    if not isinstance(run_dir, str) or not Path(run_dir).is_absolute():
        checks.append(f"transcoding.run_dir: {run_dir!r} is not an absolute path")
    return [problem for problem in checks if problem]


def parse_config(raw: Any) -> AgentConfig:
    """An AgentConfig from decoded YAML, or ValidationError naming every bad key."""
    if not isinstance(raw, dict):
        raise ValidationError(["config: expected a mapping at the top level"])
    problems = unknown_keys("", raw, SECTIONS)
    node = _section(raw, "node", NODE_KEYS, problems)
    etcd = _section(raw, "etcd", ETCD_KEYS, problems)
    icecast = _section(raw, "icecast", ICECAST_KEYS, problems)
    timing_raw = _section(raw, "timing", TIMING_KEYS, problems)
    limits_raw = _section(raw, "limits", LIMITS_KEYS, problems)
    local_api = _section(raw, "local_api", LOCAL_API_KEYS, problems)
    holding = _section(raw, "holding", HOLDING_KEYS, problems)
    front_door = _section(raw, "front_door", FRONT_DOOR_KEYS, problems)
    transcoding = _section(raw, "transcoding", TRANSCODING_KEYS, problems)

    name = _required(node, "node", "name", problems)
    address = _required(node, "node", "address", problems)
    icecast_port = _required(icecast, "icecast", "port", problems)
    admin_password = _required(icecast, "icecast", "admin_password", problems)
    source_password = _required(icecast, "icecast", "source_password", problems)
    config_path = _required(icecast, "icecast", "config_path", problems)
    reload_command = _required(icecast, "icecast", "reload_command", problems)

    checks = [
        check_string(
            "node.name",
            name,
            NODE_NAME_PATTERN,
            "1-63 of a-z 0-9 -, starting with a letter or digit",
            63,
        )
        if name is not None
        else None,
        check_string("node.address", address, HOST_PATTERN, "an IP address or host name")
        if address is not None
        else None,
        *etcd_problems(etcd),
        check_int("icecast.port", icecast_port, 1, 65535) if icecast_port is not None else None,
        check_string(
            "icecast.admin_password",
            admin_password,
            NODE_CREDENTIAL_PATTERN,
            NODE_CREDENTIAL_DESCRIPTION,
            secret=True,
        )
        if admin_password is not None
        else None,
        check_string(
            "icecast.source_password",
            source_password,
            NODE_CREDENTIAL_PATTERN,
            NODE_CREDENTIAL_DESCRIPTION,
            secret=True,
        )
        if source_password is not None
        else None,
        check_string(
            "icecast.admin_user",
            icecast.get("admin_user", "admin"),
            r"[A-Za-z0-9._-]{1,64}",
            "1-64 of A-Z a-z 0-9 . _ -",
        ),
        check_string(
            "icecast.bind_address",
            icecast.get("bind_address", "0.0.0.0"),  # noqa: S104
            HOST_PATTERN,
            "an IP address",
        ),
        check_int("icecast.max_clients", icecast.get("max_clients", 2000), 1, 1_000_000),
        check_int("local_api.port", local_api.get("port", 8090), 1, 65535),
        check_string(
            "local_api.bind_address",
            local_api.get("bind_address", "127.0.0.1"),
            HOST_PATTERN,
            "an IP address",
        ),
        check_number("timing.ttl", timing_raw.get("ttl", 15), 2, 3600),
        check_number("timing.loop_wait", timing_raw.get("loop_wait", 3), 0.1, 600),
        check_number("timing.retry_timeout", timing_raw.get("retry_timeout", 6), 0.1, 600),
    ]
    if config_path is not None and (
        not isinstance(config_path, str) or not Path(config_path).is_absolute()
    ):
        checks.append(f"icecast.config_path: {config_path!r} is not an absolute path")
    if reload_command is not None and (
        not isinstance(reload_command, list)
        or not reload_command
        or not all(isinstance(part, str) and part for part in reload_command)
    ):
        checks.append(
            f"icecast.reload_command: {reload_command!r} is not a non-empty list of strings "
            "(e.g. [systemctl, reload, icecast2])"
        )
    checks.append(
        _command_problem(
            "holding.liquidsoap_command", holding.get("liquidsoap_command", ["liquidsoap"])
        )
    )
    checks += front_door_problems(front_door)
    checks += transcoding_problems(transcoding)
    cache_dir = holding.get("cache_dir", "/var/cache/radio-agent")
    if not isinstance(cache_dir, str) or not Path(cache_dir).is_absolute():
        checks.append(f"holding.cache_dir: {cache_dir!r} is not an absolute path")
    for key in ("max_listeners", "bandwidth_kbps"):
        if limits_raw.get(key) is not None:
            checks.append(check_int(f"limits.{key}", limits_raw[key], 1, 100_000_000))
    templates_dir = raw.get("templates_dir", DEFAULT_TEMPLATES_DIR)
    if not isinstance(templates_dir, str) or not Path(templates_dir, "icecast.xml.j2").is_file():
        checks.append(f"templates_dir: {templates_dir!r} holds no icecast.xml.j2")
    problems += [problem for problem in checks if problem]
    if problems:
        raise ValidationError(problems)

    timing = Timing(**timing_raw)
    problems += timing_problems(timing)
    if problems:
        raise ValidationError(problems)
    return AgentConfig(
        node_name=name,
        node_address=address,
        etcd=etcd_settings(etcd),
        icecast=IcecastSettings(**{**icecast, "reload_command": tuple(icecast["reload_command"])}),
        timing=timing,
        limits=Limits(**limits_raw),
        local_api=LocalApiSettings(**local_api),
        front_door=FrontDoorSettings(
            **{**front_door, "ports": tuple(front_door.get("ports", [80, 8000]))}
        ),
        holding=HoldingSettings(
            **{
                **holding,
                "liquidsoap_command": tuple(holding.get("liquidsoap_command", ["liquidsoap"])),
            }
        ),
        transcoding=TranscodingSettings(
            **{
                **transcoding,
                "liquidsoap_command": tuple(transcoding.get("liquidsoap_command", ["liquidsoap"])),
            }
        ),
        templates_dir=templates_dir,
    )


def _read_yaml(path: str | Path) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ValidationError([f"{path}: cannot read ({error.strerror})"]) from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValidationError([f"{path}: not valid YAML ({error})"]) from error


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate the YAML file; ValidationError says what is wrong, and where."""
    return parse_config(_read_yaml(path))
