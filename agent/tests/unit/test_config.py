"""The agent's configuration file: valid files load, bad ones are refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radioagent.config import load_config, parse_config
from radioagent.validation import ValidationError

REPO_TEMPLATES = str(Path(__file__).resolve().parents[3] / "templates")


def valid_raw() -> dict:
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
        "templates_dir": REPO_TEMPLATES,
    }


def problems_of(raw: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        parse_config(raw)
    return raised.value.problems


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(valid_raw()))
    config = load_config(path)
    assert config.node_name == "node1"
    assert config.icecast.reload_command == ("systemctl", "reload", "icecast2")
    assert config.icecast.admin_user == "admin"
    assert config.timing.ttl == 10
    assert config.limits.max_listeners is None
    assert config.etcd.endpoints == ("127.0.0.1:2379", "10.0.0.2:2379")


def test_unknown_key_is_named_with_the_known_ones() -> None:
    raw = valid_raw()
    raw["timing"]["tll"] = 5
    assert problems_of(raw) == ["timing.tll: unknown key (known: loop_wait, retry_timeout, ttl)"]


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
        ("icecast", "config_path", "icecast.xml", "icecast.config_path: 'icecast.xml' is not"),
        ("icecast", "reload_command", "systemctl reload", "icecast.reload_command:"),
        ("icecast", "admin_password", "short", "icecast.admin_password: the value is not"),
        ("etcd", "ca_file", "/no/such/ca.pem", "etcd.ca_file: '/no/such/ca.pem' is not"),
        ("timing", "ttl", True, "timing.ttl: True is not a number"),
    ],
)
def test_bad_values_are_refused_naming_key_and_value(
    section: str, key: str, value: object, message: str
) -> None:
    raw = valid_raw()
    raw[section][key] = value
    problems = problems_of(raw)
    assert len(problems) == 1
    assert problems[0].startswith(message)


def test_timing_that_lets_a_lease_expire_before_demotion_is_refused() -> None:
    raw = valid_raw()
    raw["timing"] = {"ttl": 10, "loop_wait": 3, "retry_timeout": 4}
    (problem,) = problems_of(raw)
    assert problem.startswith("timing: loop_wait + 2 * retry_timeout = 11 exceeds ttl = 10")


def test_cert_without_key_is_refused(tmp_path: Path) -> None:
    cert = tmp_path / "node.pem"
    cert.write_text("x")
    raw = valid_raw()
    raw["etcd"]["cert_file"] = str(cert)
    assert problems_of(raw) == ["etcd.cert_file and etcd.key_file: give both or neither"]


def test_templates_dir_without_the_icecast_template_is_refused(tmp_path: Path) -> None:
    raw = valid_raw()
    raw["templates_dir"] = str(tmp_path)
    assert problems_of(raw) == [f"templates_dir: {str(tmp_path)!r} holds no icecast.xml.j2"]


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


def test_the_example_config_in_the_repository_is_valid() -> None:
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.example.yml").read_text())
    raw["templates_dir"] = REPO_TEMPLATES  # the example names the installed location
    config = parse_config(raw)
    assert config.timing.loop_wait + 2 * config.timing.retry_timeout <= config.timing.ttl
