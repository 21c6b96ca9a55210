"""Bad input gets a clear error and changes nothing: config files, mount specs, garbage
written under the cluster's prefix."""

from __future__ import annotations

import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from radioagent.store.errors import Conflict
from radioagent.validation import ValidationError
from tests.harness.agents import AGENT_COMMAND, AGENT_ENVIRONMENT, AgentNode, RadioCluster
from tests.harness.clients import listen

pytestmark = pytest.mark.integration


def run_agent(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AGENT_COMMAND, *arguments],
        env=AGENT_ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_config_accepts_a_valid_file(radio_cluster: RadioCluster) -> None:
    node = radio_cluster.nodes[0]
    result = run_agent("--config", str(node.config_path), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "ok (node node1)" in result.stdout


def test_an_invalid_config_is_refused_naming_each_key_and_touches_nothing(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    node = radio_cluster.nodes[0]
    icecast_config_before = node.icecast.config_path.read_text()
    broken = dict(node.config)
    broken["timing"] = {"ttl": 4, "loop_wait": 1, "retry_timeout": 3, "tll": 1}
    broken["node"] = {"name": "Bad Name", "address": "127.0.0.1"}
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))

    for extra in ([], ["--check-config"]):
        result = run_agent("--config", str(path), *extra)
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert any("timing.tll: unknown key" in line for line in lines), result.stderr
        assert any("node.name: 'Bad Name' is not valid" in line for line in lines)
        assert "Traceback" not in result.stderr
    assert node.icecast.config_path.read_text() == icecast_config_before


def test_a_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    result = run_agent("--config", str(tmp_path / "nope.yml"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"radio-agent: {tmp_path / 'nope.yml'}: {tmp_path / 'nope.yml'}: cannot read "
        "(No such file or directory)"
    )


def test_a_yaml_syntax_error_names_the_line_and_never_repeats_the_password(
    tmp_path: Path,
) -> None:
    # `validate:` in the role shows this output in Ansible's log; systemd's journal has it too
    path = tmp_path / "config.yml"
    path.write_text("node:\n  name: node1\nicecast:\n  admin_password: s3cret-pass: [\n")
    for extra in ([], ["--check-config"]):
        result = run_agent("--config", str(path), *extra)
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"radio-agent: {path}: {path}: not valid YAML at line 4, column 30"
        )
        assert "s3cret" not in result.stderr + result.stdout


def operator_records(cluster: RadioCluster) -> dict[str, int]:
    """Every key an operator's write could touch, with its revision. The agents' own
    records (status, registration, leadership, claims) change on their own while the test
    runs."""
    own = (
        cluster.layout.nodes,
        cluster.layout.known_nodes,
        cluster.layout.leader,
        cluster.layout.transcoders,
    )
    return {
        metadata.key.decode(): metadata.mod_revision
        for _, metadata in cluster.client().get_prefix(cluster.layout.root)
        if not metadata.key.decode().startswith(own)
    }


def test_invalid_mount_specs_are_refused_and_nothing_is_written(
    radio_cluster: RadioCluster,
) -> None:
    store = radio_cluster.store()
    records_before = operator_records(radio_cluster)
    bad_specs: list[dict[str, object]] = [
        {"name": "../etc/passwd", "source_password": "pw"},
        {"name": "ok.mp3", "source_password": "has space"},
        {"name": "ok.mp3", "source_password": "pw", "format": {"codec": "wma"}},
        {"name": "ok.mp3", "source_password": "pw", "fallback": "missing.mp3"},
        {"name": "ok.mp3", "source_password": "pw", "transcode": {"parent": "none.mp3"}},
    ]
    for spec in bad_specs:
        with pytest.raises(ValidationError):
            store.create_mount(spec)
    assert store.mounts() == {}
    assert operator_records(radio_cluster) == records_before

    store.create_mount({"name": "ok.mp3", "source_password": "pw"})
    with pytest.raises(Conflict, match="already exists"):
        store.create_mount({"name": "ok.mp3", "source_password": "other"})
    with pytest.raises(Conflict, match="does not exist"):
        store.update_mount("nope.mp3", {"max_listeners": 3})
    with pytest.raises(ValidationError, match="max_listeners"):
        store.update_mount("ok.mp3", {"max_listeners": -3})
    created = store.mount("ok.mp3")
    assert created is not None
    assert created.source_password == "pw"


def configured_mounts(node: AgentNode) -> set[str | None]:
    root = ElementTree.fromstring(node.icecast.config_path.read_text())
    return {mount.findtext("mount-name") for mount in root.findall("mount")}


def test_garbage_under_the_prefix_is_ignored_and_changes_nothing(
    radio_cluster: RadioCluster,
) -> None:
    store = radio_cluster.store()
    store.create_mount({"name": "good.mp3", "source_password": "pw-good"})
    for node in radio_cluster.nodes:
        node.wait_serving("/good.mp3")

    client = radio_cluster.client()
    layout = radio_cluster.layout
    client.put(layout.mount("junk.mp3"), "{not json")
    client.put(layout.mount("liar.mp3"), '{"name": "other.mp3", "source_password": "x"}')
    client.put(layout.mount("binary"), b"\xff\xfe\x00")
    client.put(layout.node("ghost"), "[1, 2, 3]")
    client.put(layout.root + "unknown/thing", "hello")
    # A valid mount written after the garbage: once every node serves it, every agent has
    # read a state that holds the garbage too.
    store.create_mount({"name": "after.mp3", "source_password": "pw-after"})
    for node in radio_cluster.nodes:
        node.wait_serving("/after.mp3")

    expected = {
        f"{prefix}{name}"
        for prefix in ("/", "/_live/", "/_holding/")
        for name in ("good.mp3", "after.mp3")
    }
    for node in radio_cluster.nodes:
        assert node.is_running(), node.log_tail()
        assert configured_mounts(node) == expected
        assert listen(f"{node.icecast.base_url}/good.mp3", 2048, timeout=2).status == 200
        for garbage in ("/junk.mp3", "/liar.mp3", "/other.mp3"):
            assert listen(f"{node.icecast.base_url}{garbage}", 1024, timeout=2).status == 404
    assert set(store.mounts()) == {"good.mp3", "after.mp3"}
