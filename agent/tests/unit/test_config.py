"""The agent's configuration file: valid files load, bad ones are refused naming the key."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest
import yaml

from radioagent.config import (
    SECTIONS,
    Timing,
    file_problems,
    load_config,
    load_etcd_settings,
    parse_config,
)
from radioagent.validation import ValidationError
from tests.paths import EXAMPLE_CONFIG, REPOSITORY


def valid_raw() -> dict:
    """No templates_dir: parsing never looks at the disk, so the default serves."""
    return {
        "node": {"name": "node1", "address": "10.0.0.1"},
        "etcd": {"endpoints": ["127.0.0.1:2379", "10.0.0.2:2379"], "prefix": "/radio"},
        "icecast": {
            "port": 8001,
            "admin_password": "admin-secret",
            "source_password": "source-secret",
            "config_path": "/etc/icecast2/icecast.xml",
            "reload_command": ["systemctl", "reload", "icecast2"],
        },
        "timing": {"ttl": 10, "loop_wait": 2, "retry_timeout": 4},
    }


def problems_of(raw: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        parse_config(raw)
    return raised.value.problems


def write_config(directory: Path, raw: dict) -> Path:
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_config_loads_with_defaults(tmp_path: Path, templates_dir: str) -> None:
    config = load_config(write_config(tmp_path, {**valid_raw(), "templates_dir": templates_dir}))
    assert config.node_name == "node1"
    assert config.icecast.reload_command == ("systemctl", "reload", "icecast2")
    assert config.icecast.admin_user == "admin"
    assert config.timing.ttl == 10
    assert config.limits.max_listeners is None
    assert config.etcd.endpoints == ("127.0.0.1:2379", "10.0.0.2:2379")
    assert config.front_door.ports == (80, 8000)
    assert config.transcoding.liquidsoap_command == ("liquidsoap",)
    assert config.templates_dir == templates_dir


def test_the_schema_checks_exactly_the_fields_of_each_settings_class() -> None:
    for name, section in SECTIONS.items():
        field_names = {field.name for field in dataclasses.fields(section.settings)}
        assert set(section.checks) == field_names, name


def test_every_default_passes_its_own_check() -> None:
    for name, section in SECTIONS.items():
        for field in dataclasses.fields(section.settings):
            if field.default is dataclasses.MISSING:
                continue
            value = list(field.default) if isinstance(field.default, tuple) else field.default
            assert section.checks[field.name](f"{name}.{field.name}", value) is None


def test_unknown_key_is_named_with_the_known_ones() -> None:
    raw = valid_raw()
    raw["timing"]["tll"] = 5
    assert problems_of(raw) == ["timing.tll: unknown key (known: loop_wait, retry_timeout, ttl)"]


def test_a_section_that_is_not_a_mapping_is_named_with_its_keys() -> None:
    raw = valid_raw()
    raw["local_api"] = [8090]
    assert problems_of(raw) == ["local_api: expected a mapping with keys bind_address, port"]


def test_missing_keys_are_named() -> None:
    raw = valid_raw()
    del raw["node"]["name"]
    del raw["icecast"]["reload_command"]
    assert problems_of(raw) == ["node.name: missing", "icecast.reload_command: missing"]


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("node", "name", "Node_1", "node.name: 'Node_1' is not valid"),
        ("etcd", "endpoints", ["127.0.0.1"], "etcd.endpoints: '127.0.0.1' is not host:port"),
        ("etcd", "endpoints", ["h:70000"], "etcd.endpoints: 'h:70000' is not host:port"),
        ("etcd", "endpoints", [], "etcd.endpoints: [] is not a list of 1-16"),
        ("etcd", "endpoints", "h:1", "etcd.endpoints: 'h:1' is not a list"),
        ("etcd", "prefix", "radio/", "etcd.prefix: 'radio/' is not valid"),
        ("etcd", "ca_file", 42, "etcd.ca_file: 42 is not a file name"),
        ("etcd", "member_name", "Node 1", "etcd.member_name: 'Node 1' is not valid"),
        ("etcd", "metrics_url", "127.0.0.1:2381", "etcd.metrics_url: '127.0.0.1:2381' is not"),
        ("node", "disk_paths", "/var", "node.disk_paths: '/var' is not a list of at most 16"),
        ("node", "disk_paths", ["/var", "log"], "node.disk_paths[1]: 'log' is not an absolute"),
        ("icecast", "config_path", "icecast.xml", "icecast.config_path: 'icecast.xml' is not"),
        ("icecast", "reload_command", "systemctl reload", "icecast.reload_command:"),
        ("icecast", "admin_password", "short", "icecast.admin_password: the value is not"),
        ("icecast", "log_dir", "logs", "icecast.log_dir: 'logs' is not an absolute path"),
        ("icecast", "restart_request_file", "restart", "icecast.restart_request_file: 'rest"),
        ("icecast", "hung_restart_seconds", 1, "icecast.hung_restart_seconds: 1 is out of range"),
        ("timing", "ttl", True, "timing.ttl: True is not a number"),
        ("front_door", "ports", [80, 80], "front_door.ports: [80, 80] is not a list of 1-4"),
        ("front_door", "header_timeout", 0, "front_door.header_timeout: 0 is out of range"),
        ("front_door", "per_address_listeners", 0, "front_door.per_address_listeners: 0 is out"),
        ("front_door", "failed_logins", -1, "front_door.failed_logins: -1 is out of range"),
        ("front_door", "failed_login_window", "1m", "front_door.failed_login_window: '1m' is"),
        ("front_door", "unlimited_networks", "127.0.0.0/8", "front_door.unlimited_networks: '127"),
        ("front_door", "internal_networks", ["10.0.0.0/33"], "front_door.internal_networks: '10"),
        ("front_door", "internal_networks", ["node1"], "front_door.internal_networks: 'node1' is"),
        ("front_door", "access_log", "yes", "front_door.access_log: 'yes' is not true or false"),
        ("transcoding", "user", "Root", "transcoding.user: 'Root' is not valid"),
        ("holding", "liquidsoap_command", [], "holding.liquidsoap_command: [] is not a non-empty"),
        ("limits", "max_listeners", 0, "limits.max_listeners: 0 is out of range"),
        ("dns", "zone", "Stream.Example.org", "dns.zone: 'Stream.Example.org' is not valid"),
        ("dns", "zone", "localhost", "dns.zone: 'localhost' is not valid"),
        ("dns", "nameservers", ["node1"], "dns.nameservers: ['node1'] is not a mapping"),
        ("dns", "nameservers", {"node1": "ns.example"}, "dns.nameservers.node1: 'ns.example'"),
        ("dns", "nameservers", {"Node 1": "192.0.2.1"}, "dns.nameservers: 'Node 1' is not"),
        ("dns", "max_records", 0, "dns.max_records: 0 is out of range"),
        ("failsafe", "key", "k" * 31, "failsafe.key: the value is not valid"),
        ("failsafe", "key", "k" * 129, "failsafe.key: the value is not valid"),
        ("failsafe", "key", "k" * 16 + " " + "k" * 16, "failsafe.key: the value is not valid"),
        ("failsafe", "key", 10**40, "failsafe.key: the value is not a string"),
    ],
)
def test_bad_values_are_refused_naming_key_and_value(
    section: str, key: str, value: object, message: str
) -> None:
    raw = valid_raw()
    raw.setdefault(section, {})[key] = value
    problems = problems_of(raw)
    assert len(problems) == 1
    assert problems[0].startswith(message)


def test_a_password_is_never_repeated_in_a_problem() -> None:
    raw = valid_raw()
    raw["icecast"]["source_password"] = "has a space"
    (problem,) = problems_of(raw)
    assert "has a space" not in problem


@pytest.mark.parametrize("key", ["short-failsafe-key", "failsafe key with a space in it!", 10**40])
def test_a_failsafe_key_is_never_repeated_in_a_problem(key: object) -> None:
    raw = {**valid_raw(), "failsafe": {"key": key}}
    (problem,) = problems_of(raw)
    assert problem.startswith("failsafe.key: ")
    assert str(key) not in problem


@pytest.mark.parametrize("key", ["k" * 32, "0123456789abcdefABCDEF._~!@#$%^&*+=,;?-", "k" * 128])
def test_a_failsafe_key_of_32_to_128_characters_is_taken_and_never_shown(key: str) -> None:
    assert parse_config(valid_raw()).failsafe.key is None
    config = parse_config({**valid_raw(), "failsafe": {"key": key}})
    assert config.failsafe.key == key
    assert key not in repr(config)


def test_null_means_none_where_a_key_allows_it() -> None:
    raw = valid_raw()
    raw["transcoding"] = {"user": None}
    raw["limits"] = {"max_listeners": None}
    raw["front_door"] = {"public_address": None}
    config = parse_config(raw)
    assert config.transcoding.user is None
    assert config.limits.max_listeners is None
    assert config.front_door.public_address is None


def test_timing_that_lets_a_lease_expire_before_demotion_is_refused() -> None:
    raw = valid_raw()
    raw["timing"] = {"ttl": 10, "loop_wait": 3, "retry_timeout": 4}
    (problem,) = problems_of(raw)
    assert problem.startswith("timing: loop_wait + 2 * retry_timeout = 11 exceeds ttl = 10")


def test_the_example_and_the_testbed_checks_say_the_default_timing() -> None:
    """The testbed's checks run on the host's Python, without the agent's dependencies,
    so they cannot import the default; the example config shows it to operators."""
    sys.path.insert(0, str(REPOSITORY / "molecule" / "testbed"))
    checks = importlib.import_module("checks")
    assert Timing().ttl == checks.TTL_S
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert Timing(**example["timing"]) == Timing()


def test_cert_without_key_is_refused() -> None:
    raw = valid_raw()
    raw["etcd"]["cert_file"] = "/etc/radio-agent/node.pem"
    assert problems_of(raw) == ["etcd.cert_file and etcd.key_file: give both or neither"]


def test_parsing_does_not_look_at_the_disk_and_file_problems_does(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["etcd"]["ca_file"] = "/no/such/ca.pem"
    raw["templates_dir"] = str(tmp_path)
    config = parse_config(raw)
    assert file_problems(config) == [
        "etcd.ca_file: '/no/such/ca.pem' is not a readable file",
        f"templates_dir: {str(tmp_path)!r} holds no icecast.xml.j2",
    ]


def test_load_config_refuses_missing_files_naming_each(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["etcd"].update(cert_file=str(tmp_path / "client.pem"), key_file=str(tmp_path / "key"))
    raw["templates_dir"] = str(tmp_path)
    with pytest.raises(ValidationError) as raised:
        load_config(write_config(tmp_path, raw))
    assert raised.value.problems == [
        f"etcd.cert_file: {str(tmp_path / 'client.pem')!r} is not a readable file",
        f"etcd.key_file: {str(tmp_path / 'key')!r} is not a readable file",
        f"templates_dir: {str(tmp_path)!r} holds no icecast.xml.j2",
    ]


def test_etcd_settings_for_radioctl_read_only_the_etcd_section(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("x")
    raw = {"etcd": {"endpoints": ["10.0.0.2:2379"], "ca_file": str(ca_file)}, "node": "ignored"}
    etcd = load_etcd_settings(write_config(tmp_path, raw))
    assert etcd.endpoints == ("10.0.0.2:2379",)
    assert etcd.prefix == "/radio"
    ca_file.unlink()
    with pytest.raises(ValidationError) as raised:
        load_etcd_settings(tmp_path / "config.yml")
    assert raised.value.problems == [f"etcd.ca_file: {str(ca_file)!r} is not a readable file"]


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        load_config(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("node: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just a string\n")
    with pytest.raises(ValidationError, match="expected a mapping at the top level"):
        load_config(scalar)


def test_a_yaml_error_names_the_line_and_never_repeats_it(tmp_path: Path) -> None:
    broken = tmp_path / "config.yml"
    broken.write_text("node:\n  name: node1\nicecast:\n  admin_password: s3cret-pass: [\n")
    for load in (load_config, load_etcd_settings):
        with pytest.raises(ValidationError) as raised:
            load(broken)
        assert raised.value.problems == [f"{broken}: not valid YAML at line 4, column 30"]
        assert raised.value.__cause__ is None
        assert raised.value.__suppress_context__


def test_the_example_config_in_the_repository_is_valid() -> None:
    # parsed, not loaded: the example names the installed templates_dir
    config = parse_config(yaml.safe_load(EXAMPLE_CONFIG.read_text()))
    assert config.timing.loop_wait + 2 * config.timing.retry_timeout <= config.timing.ttl


def test_the_dns_section_gives_the_zone_and_its_nameservers() -> None:
    raw = valid_raw()
    raw["dns"] = {
        "zone": "stream.example.org",
        "nameservers": {"node2": "2001:db8::2", "node1": "192.0.2.1"},
    }
    dns = parse_config(raw).dns
    assert dns.zone == "stream.example.org"
    assert dns.nameservers == (("node1", "192.0.2.1"), ("node2", "2001:db8::2"))
    assert (dns.port, dns.max_records) == (53, 4)
    assert parse_config(valid_raw()).dns.zone is None  # no zone: no DNS on this node


def test_https_needs_a_certificate_and_its_own_ports() -> None:
    raw = valid_raw()
    raw["front_door"] = {"tls_ports": [443], "https_name": "node1.example.org"}
    assert problems_of(raw) == ["front_door.tls_ports: give tls_cert_file and tls_key_file too"]
    raw["front_door"] = {
        "tls_ports": [8000],
        "tls_cert_file": "c.pem",
        "tls_key_file": "k.pem",
        "https_name": "node1.example.org",
    }
    assert problems_of(raw) == ["front_door.tls_ports: a port cannot serve both HTTP and HTTPS"]
    raw["front_door"] = {"tls_ports": [443], "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}
    assert problems_of(raw)[0].startswith("front_door.tls_ports: give https_name too")
    raw["front_door"] = {"tls_cert_file": "c.pem"}
    assert problems_of(raw) == ["front_door.tls_cert_file and tls_key_file: give both or neither"]
    raw["front_door"] = {"https_name": "Node1.Example"}
    assert problems_of(raw)[0].startswith("front_door.https_name: 'Node1.Example' is not valid")
    raw["front_door"] = {
        "tls_ports": [443],
        "tls_cert_file": "c.pem",
        "tls_key_file": "k.pem",
        "https_name": "node1.stream.example.org",
    }
    door = parse_config(raw).front_door
    assert (door.tls_ports, door.https_name) == ((443,), "node1.stream.example.org")


def test_the_event_loop_is_asyncio_unless_uvloop_is_named() -> None:
    assert parse_config(valid_raw()).event_loop == "asyncio"
    assert parse_config({**valid_raw(), "event_loop": "uvloop"}).event_loop == "uvloop"
    assert problems_of({**valid_raw(), "event_loop": "trio"}) == [
        "event_loop: 'trio' is not one of ('asyncio', 'uvloop')"
    ]


def test_acme_needs_https_ports_and_a_name_and_dns01_needs_the_zone() -> None:
    raw = valid_raw()
    raw["acme"] = {"directory_url": "https://acme.example/directory"}
    assert problems_of(raw) == [
        "acme.directory_url: give front_door.tls_ports, tls_cert_file, tls_key_file",
        "acme.name: missing (or give dns.zone, the default)",
        "acme.challenge: dns-01 needs dns.zone (this node answers the challenge)",
    ]
    raw["front_door"] = {
        "tls_ports": [443],
        "tls_cert_file": "/var/lib/radio-agent/tls/fullchain.pem",
        "tls_key_file": "/var/lib/radio-agent/tls/key.pem",
        "https_name": "node1.stream.example.org",
    }
    raw["dns"] = {"zone": "stream.example.org"}
    raw["acme"]["name"] = "radio.example.net"
    assert problems_of(raw) == [
        "acme.name: radio.example.net is outside dns.zone stream.example.org"
    ]
    raw["acme"] = {"directory_url": "http://acme.example/directory", "challenge": "tls-alpn-01"}
    assert problems_of(raw) == [
        "acme.directory_url: 'http://acme.example/directory' is not valid "
        "(expected an https:// URL)",
        "acme.challenge: 'tls-alpn-01' is not one of dns-01, http-01",
    ]
    raw["acme"] = {"directory_url": "https://acme.example/directory", "challenge": "http-01"}
    del raw["dns"]
    raw["acme"]["name"] = "radio.example.net"
    acme = parse_config(raw).acme
    assert (acme.challenge, acme.name, acme.retry_seconds) == ("http-01", "radio.example.net", 900)
