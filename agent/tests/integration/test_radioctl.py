"""radioctl against a real etcd: every command, its output, its exit codes, and that bad
input changes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from radioagent.config import EtcdSettings, Timing
from radioagent.store.cluster import ClusterStore
from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster
from tests.harness.clients import StreamRecorder, listen
from tests.harness.etcd import EtcdCluster
from tests.harness.ports import free_port
from tests.harness.transcoders import owner, transcoder_processes
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

RADIOCTL = str(Path(sys.executable).parent / "radioctl")


class Radioctl:
    """Runs the real command line against one cluster prefix."""

    def __init__(self, etcd: EtcdCluster, directory: Path, prefix: str | None = None) -> None:
        self.etcd = etcd
        self.prefix = prefix or f"/radioctl-{uuid.uuid4().hex[:8]}"
        self.config = directory / f"config-{self.prefix.strip('/')}.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "etcd": {
                        "endpoints": [f"127.0.0.1:{member.client_port}" for member in etcd.members],
                        "prefix": self.prefix,
                    }
                }
            )
        )

    def __call__(
        self, *arguments: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_radioctl(self.config, *arguments, stdin=stdin)

    def ok(self, *arguments: str) -> str:
        result = self(*arguments)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def dump(self) -> dict[str, bytes]:
        client = self.etcd.members[0].client()
        return {
            metadata.key.decode(): value for value, metadata in client.get_prefix(self.prefix + "/")
        }


@pytest.fixture
def radioctl(etcd: EtcdCluster, tmp_path: Path) -> Radioctl:
    return Radioctl(etcd, tmp_path)


def run_radioctl(
    config: Path, *arguments: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RADIOCTL, "--config", str(config), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_refused(radioctl: Radioctl, *arguments: str, message: str) -> None:
    before = radioctl.dump()
    result = radioctl(*arguments)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert radioctl.dump() == before


def test_status_of_an_empty_cluster(radioctl: Radioctl) -> None:
    assert "leader: none" in radioctl.ok("status")
    assert json.loads(radioctl.ok("status", "--json")) == {
        "leader": None,
        "nodes": {},
        "down_nodes": {},
        "mounts": {},
    }


def test_create_prints_the_generated_password_once_and_never_again(radioctl: Radioctl) -> None:
    output = radioctl.ok("mount", "create", "live.mp3", "--set", "format.bitrate_kbps=192")
    password = output.split("source password (shown once): ")[1].strip()
    assert len(password) >= 20
    stored = json.loads(radioctl.dump()[f"{radioctl.prefix}/v1/mounts/live.mp3"])
    assert stored["source_password"] == password
    for command in (
        ["mount", "list"],
        ["mount", "list", "--json"],
        ["mount", "show", "live.mp3"],
        ["mount", "show", "live.mp3", "--json"],
        ["status"],
        ["status", "--json"],
    ):
        assert password not in radioctl.ok(*command), command
    shown = json.loads(radioctl.ok("mount", "show", "live.mp3", "--json"))
    assert shown["format"]["bitrate_kbps"] == 192


def test_list_is_an_aligned_table(radioctl: Radioctl) -> None:
    radioctl.ok("mount", "create", "live.mp3")
    radioctl.ok(
        "mount", "create", "talk.ogg", "--set", "format.codec=vorbis", "--set", "radio=radio-two"
    )
    lines = radioctl.ok("mount", "list").splitlines()
    assert lines[0].split() == ["MOUNT", "RADIO", "FORMAT", "FROM", "LISTENERS", "NOW", "PLAYING"]
    # Columns line up under their headers.
    assert lines[0].index("FORMAT") == lines[1].index("mp3 44.1") == lines[2].index("vorbis")
    assert "/talk.ogg" in lines[2]
    assert "radio-two" in lines[2]


def test_status_and_show_say_what_plays_now_and_before(radioctl: Radioctl) -> None:
    """Titles as the front doors store them (their own tests send them on the wire)."""
    radioctl.ok("mount", "create", "live.mp3")
    store = ClusterStore(
        EtcdSettings(
            endpoints=tuple(f"127.0.0.1:{m.client_port}" for m in radioctl.etcd.members),
            prefix=radioctl.prefix,
        ),
        request_timeout=5,
    )
    try:
        store.set_title("live.mp3", "First song", 1_800_000_000.0)
        store.set_title(
            "live.mp3", "Été \u2013 a very long title that the table shortens", 1_800_000_060.0
        )
    finally:
        store.close()
    row = radioctl.ok("status").splitlines()[-1]
    assert row.startswith("/live.mp3")
    assert row.endswith("Été \u2013 a very long title that the table \u2026")  # 40 characters
    shown = yaml.safe_load(radioctl.ok("mount", "show", "live.mp3"))
    assert shown["now_playing"]["history"] == [
        "2027-01-15 08:01:00 UTC  Été \u2013 a very long title that the table shortens",
        "2027-01-15 08:00:00 UTC  First song",
    ]
    assert shown["now_playing"]["changes"] == 2
    as_json = json.loads(radioctl.ok("mount", "show", "live.mp3", "--json"))
    assert as_json["now_playing"]["since"] == 1_800_000_060.0
    assert as_json["source_username"] == "source"
    assert "source_password" not in as_json


def test_edit_changes_fields_with_validation(radioctl: Radioctl) -> None:
    radioctl.ok("mount", "create", "live.mp3", "--set", "source_password=dj-secret")
    assert "updated /live.mp3" in radioctl.ok(
        "mount", "edit", "live.mp3", "--set", "max_listeners=50"
    )
    assert "no change" in radioctl.ok("mount", "edit", "live.mp3", "--set", "max_listeners=50")
    assert_refused(
        radioctl,
        "mount",
        "edit",
        "live.mp3",
        "--set",
        "format.codec=wma",
        message="format.codec: 'wma' is not one of",
    )
    assert_refused(
        radioctl,
        "mount",
        "edit",
        "live.mp3",
        "--set",
        "name=other.mp3",
        message="cannot be renamed",
    )
    assert_refused(
        radioctl, "mount", "edit", "nope.mp3", "--set", "max_listeners=5", message="does not exist"
    )
    shown = json.loads(radioctl.ok("mount", "show", "live.mp3", "--json"))
    assert shown["max_listeners"] == 50


def test_create_refuses_bad_specs_and_duplicates_changing_nothing(radioctl: Radioctl) -> None:
    radioctl.ok("mount", "create", "live.mp3")
    assert_refused(radioctl, "mount", "create", "live.mp3", message="already exists")
    assert_refused(radioctl, "mount", "create", "../etc", message="name: '../etc' is not valid")
    assert_refused(
        radioctl,
        "mount",
        "create",
        "x.mp3",
        "--set",
        "fallback=missing.mp3",
        message="fallback 'missing.mp3' is not a mount",
    )
    assert_refused(
        radioctl, "mount", "create", "x.mp3", "--set", "novalue", message="expected KEY=VALUE"
    )
    assert_refused(
        radioctl, "mount", "create", "x.opus", "--set", "format.codec=opus", message="(Opus)"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["transcode.format.samplerate=22050", "transcode.format.bitrate_kbps=192"],
            "transcode.format.bitrate_kbps: MP3 at 22050 Hz takes one of",
        ),
        (["transcode.format.codec=speex"], "transcode.format.codec"),
        (
            ["transcode.format.codec=opus", "transcode.format.samplerate=44100"],
            "transcode.format.samplerate: 44100 is not one of",
        ),
        (
            ["transcode.format.codec=vorbis", "transcode.format.bitrate_kbps=16"],
            "transcode.format.bitrate_kbps: vorbis takes 32-500 kbps",
        ),
        (["format.codec=vorbis"], "format: a transcoded mount's format is its transcode.format"),
        (["transcode.parent=low.mp3"], "cannot transcode itself"),
    ],
)
def test_transcodes_debian_liquidsoap_cannot_make_are_refused(
    radioctl: Radioctl, settings: list[str], message: str
) -> None:
    radioctl.ok("mount", "create", "live.mp3")
    arguments = ["--set", "transcode.parent=live.mp3"]
    for setting in settings:
        arguments += ["--set", setting]
    assert_refused(radioctl, "mount", "create", "low.mp3", *arguments, message=message)


def test_delete_refuses_a_transcode_parent_unless_forced(radioctl: Radioctl) -> None:
    radioctl.ok("mount", "create", "live.mp3")
    radioctl.ok(
        "mount",
        "create",
        "low.mp3",
        "--set",
        "transcode.parent=live.mp3",
        "--set",
        "transcode.format.bitrate_kbps=48",
    )
    assert_refused(
        radioctl,
        "mount",
        "delete",
        "live.mp3",
        message="transcode parent 'live.mp3' is not a mount",
    )
    radioctl.ok("mount", "delete", "live.mp3", "--force")
    assert [mount["name"] for mount in json.loads(radioctl.ok("mount", "list", "--json"))] == [
        "low.mp3"
    ]


def write_radio(path: Path, mounts: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"radio": "radio-one", "mounts": mounts}))
    return path


def test_apply_creates_then_reports_no_change_then_changes_only_what_changed(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    low_format = {"bitrate_kbps": 48}
    mounts = [
        {"name": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 128}},
        {"name": "low.mp3", "transcode": {"parent": "live.mp3", "format": low_format}},
    ]
    radio_file = write_radio(tmp_path / "radio-one.yml", mounts)

    first = radioctl.ok("apply", "-f", str(radio_file))
    assert first.count("created") == 2
    # Only the studio's mount shows its password: no studio sends to the transcoded one.
    assert first.count("shown once") == 1
    assert "created /live.mp3 (source password, shown once: " in first
    assert "created /low.mp3 (made in the cluster from /live.mp3)" in first
    passwords = {
        name: json.loads(value)["source_password"]
        for name, value in radioctl.dump().items()
        if "/mounts/" in name
    }

    assert radioctl.ok("apply", "-f", str(radio_file)).strip() == "radio-one: no change"

    low_format["bitrate_kbps"] = 64  # low.mp3's transcode.format
    write_radio(radio_file, mounts)
    dry = radioctl.ok("apply", "-f", str(radio_file), "--dry-run")
    assert dry.strip() == "would update /low.mp3: transcode.format.bitrate_kbps"
    before = radioctl.dump()
    assert radioctl.ok("apply", "-f", str(radio_file)).strip() == (
        "updated /low.mp3: transcode.format.bitrate_kbps"
    )
    after = radioctl.dump()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {f"{radioctl.prefix}/v1/mounts/low.mp3"}
    assert {
        name: json.loads(value)["source_password"]
        for name, value in after.items()
        if "/mounts/" in name
    } == passwords  # passwords kept


def test_an_applied_change_is_live_on_every_node_within_a_second(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    mounts: list[dict[str, object]] = [{"name": "live.mp3"}, {"name": "other.mp3"}]
    radio_file = write_radio(tmp_path / "radio-one.yml", mounts)
    radioctl.ok("apply", "-f", str(radio_file))
    for node in radio_cluster.nodes:
        node.wait_front_door_serving("/live.mp3")

    def served_by(node: AgentNode, mount: str) -> str:
        (outcome,) = node.head_requests(f"/_stream/{mount}", 1, "player")
        return outcome

    mounts[0]["max_listeners"] = 0  # this node takes no more listeners for live.mp3
    write_radio(radio_file, mounts)
    applied = time.monotonic()  # counting radioctl's own start-up: the operator's view
    assert radioctl.ok("apply", "-f", str(radio_file)).strip() == (
        "updated /live.mp3: max_listeners"
    )
    wait_for(
        lambda: all(served_by(node, "live.mp3") == "503" for node in radio_cluster.nodes),
        timeout=5,
        what="every node to apply the new limit",
    )
    seconds = time.monotonic() - applied
    assert seconds <= 1.0
    assert all(served_by(node, "other.mp3") == "200" for node in radio_cluster.nodes)


def test_apply_reads_the_radio_file_from_stdin(radioctl: Radioctl) -> None:
    text = yaml.safe_dump({"radio": "radio-one", "mounts": [{"name": "live.mp3"}]})
    assert "created /live.mp3" in radioctl("apply", "-f", "-", stdin=text).stdout
    assert radioctl("apply", "-f", "-", stdin=text).stdout.strip() == "radio-one: no change"
    before = radioctl.dump()
    refused = radioctl("apply", "-f", "-", stdin="radio: [unclosed\n")
    assert refused.returncode == 2
    assert refused.stderr.startswith("radioctl: -: not valid YAML at line ")
    assert radioctl.dump() == before


def test_apply_prunes_only_with_prune_and_only_its_own_radio(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    radioctl.ok("mount", "create", "other.mp3", "--set", "radio=radio-two")
    radio_file = write_radio(tmp_path / "r.yml", [{"name": "a.mp3"}, {"name": "b.mp3"}])
    radioctl.ok("apply", "-f", str(radio_file))
    write_radio(radio_file, [{"name": "a.mp3"}])

    kept = radioctl.ok("apply", "-f", str(radio_file))
    assert "kept /b.mp3: not in the file (--prune deletes it)" in kept
    assert "deleted /b.mp3" in radioctl.ok("apply", "-f", str(radio_file), "--prune")
    names = {mount["name"] for mount in json.loads(radioctl.ok("mount", "list", "--json"))}
    assert names == {"a.mp3", "other.mp3"}


def test_apply_refuses_bad_files_changing_nothing(radioctl: Radioctl, tmp_path: Path) -> None:
    radioctl.ok("mount", "create", "taken.mp3", "--set", "radio=radio-two")
    bad = tmp_path / "bad.yml"
    write_radio(bad, [{"name": "taken.mp3"}])
    assert_refused(radioctl, "apply", "-f", str(bad), message="belongs to radio 'radio-two'")
    write_radio(bad, [{"name": "ok.mp3"}, {"name": "ok.mp3"}])
    assert_refused(radioctl, "apply", "-f", str(bad), message="listed more than once")
    write_radio(bad, [{"name": "ok.mp3", "format": {"samplerate": 1}}])
    assert_refused(radioctl, "apply", "-f", str(bad), message="format.samplerate: 1 is not")
    bad.write_text("radio: [unclosed\n")
    assert_refused(radioctl, "apply", "-f", str(bad), message="not valid YAML")
    assert_refused(radioctl, "apply", "-f", str(tmp_path / "none.yml"), message="cannot read")


def test_backup_restores_into_an_empty_cluster_exactly_and_twice_changes_nothing(
    radioctl: Radioctl, etcd: EtcdCluster, tmp_path: Path
) -> None:
    radioctl.ok("mount", "create", "live.mp3", "--set", "radio=radio-one")
    radioctl.ok("mount", "create", "backup.ogg", "--set", "format.codec=vorbis")
    radioctl.ok(
        "mount",
        "create",
        "talk.ogg",
        "--set",
        "format.codec=vorbis",
        "--set",
        "max_listeners=10",
        "--set",
        "fallback=backup.ogg",
    )
    etcd.members[0].client().put(
        f"{radioctl.prefix}/v1/config", json.dumps({"policy": "listeners_available,weighted"})
    )
    backup_file = tmp_path / "backup.json"
    backup_file.write_text(radioctl.ok("backup"))

    empty = Radioctl(etcd, tmp_path)
    assert empty.ok("restore", str(backup_file)).strip() == (
        "restored: 3 created, 0 updated, 0 unchanged; settings restored"
    )
    assert empty.ok("restore", str(backup_file)).strip() == (
        "restored: 0 created, 0 updated, 3 unchanged; settings unchanged"
    )
    assert (
        json.loads(empty.ok("status", "--json"))["mounts"]
        == json.loads(radioctl.ok("status", "--json"))["mounts"]
    )
    original = {key.removeprefix(radioctl.prefix): value for key, value in radioctl.dump().items()}
    restored = {key.removeprefix(empty.prefix): value for key, value in empty.dump().items()}
    assert restored == original  # passwords and settings included


def test_restore_refuses_a_bad_backup_changing_nothing(radioctl: Radioctl, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"format": "radio-cluster-backup", "version": 1, "mounts": [{"name": "x.mp3"}]})
    )
    assert_refused(radioctl, "restore", str(bad), message="source_password: missing")
    bad.write_text("{}")
    assert_refused(radioctl, "restore", str(bad), message="not a radio-cluster-backup")


def test_unreachable_etcd_is_exit_1_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"etcd": {"endpoints": [f"127.0.0.1:{free_port()}"]}}))
    result = run_radioctl(config, "status")
    assert result.returncode == 1
    assert result.stderr.startswith("radioctl: etcd: no etcd endpoint answers")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_or_usage_is_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"etcd": {"endpoints": ["nohostport"]}}))
    result = run_radioctl(config, "status")
    assert result.returncode == 2
    assert "etcd.endpoints: 'nohostport' is not host:port" in result.stderr
    usage = subprocess.run(
        [RADIOCTL, "mount", "frobnicate"], capture_output=True, text=True, timeout=30, check=False
    )
    assert usage.returncode == 2


def test_status_shows_live_nodes_the_leader_and_listeners(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    radioctl.ok("mount", "create", "live.mp3")
    leader = radio_cluster.wait_leader()
    node = radio_cluster.nodes[0]
    node.wait_front_door_serving("/live.mp3")
    listener = StreamRecorder(f"{node.front_door_url}/live.mp3").start()
    try:
        wait_for(
            lambda: (
                json.loads(radioctl.ok("status", "--json"))["mounts"]["live.mp3"]["listeners"] >= 1
            ),
            timeout=10,
            what="the listener to show in the status",
        )
        status = json.loads(radioctl.ok("status", "--json"))
        assert status["leader"]["name"] == leader
        assert sorted(status["nodes"]) == ["node1", "node2", "node3"]
        assert all(entry["icecast_up"] for entry in status["nodes"].values())
        text = radioctl.ok("status")
        assert text.startswith(f"leader: {leader} (epoch {status['leader']['epoch']})")
        assert sum(line.startswith("node") for line in text.splitlines()) == 3
    finally:
        listener.stop()


def test_config_set_validates_and_show_reads_back(radioctl: Radioctl) -> None:
    assert "policy" in radioctl.ok("config", "show")
    radioctl.ok("config", "set", "policy", "listeners_available,bandwidth_score,best")
    radioctl.ok("config", "set", "timing.ttl", "30")
    shown = json.loads(radioctl.ok("config", "show", "--json"))
    assert shown["policy"] == "listeners_available,bandwidth_score,best"
    assert shown["timing.ttl"] == 30
    assert_refused(
        radioctl,
        "config",
        "set",
        "policy",
        "listeners_available,fastest,best",
        message="'fastest' is not a filter, scorer or choice",
    )
    assert_refused(
        radioctl, "config", "set", "timing.retry_timeout", "20", message="exceeds ttl = 30"
    )
    assert_refused(radioctl, "config", "set", "colour", "blue", message="unknown setting")
    assert_refused(
        radioctl, "config", "set", "limits.max_listeners", "0", message="limits.max_listeners: 0"
    )
    assert_refused(radioctl, "config", "set", "timing", "20", message="timing: only 'none'")


def leases(cluster: RadioCluster) -> dict[str, tuple[int, int]]:
    """Each key the agents hold on a lease (nodes, leader, transcoder claims): its lease id
    and that lease's granted ttl."""
    client = cluster.client()
    held = {}
    for _, metadata in client.get_prefix(cluster.prefix + "/"):
        if metadata.lease_id:
            granted = client.get_lease_info(metadata.lease_id).grantedTTL
            held[metadata.key.decode().removeprefix(cluster.prefix)] = (metadata.lease_id, granted)
    return held


def timing_metric(node: AgentNode, setting: str) -> float:
    metrics = listen(f"{node.front_door_url}/metrics", 1 << 20).body.decode()
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("radio_timing_seconds{") and f'setting="{setting}"' in line
    )
    return float(line.rsplit(" ", 1)[1])


def test_cluster_limits_and_timing_reach_every_agent_live(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    radioctl.ok("mount", "create", "live.mp3")
    radioctl.ok("mount", "create", "low.mp3", "--set", "transcode.parent=live.mp3")
    leader = radio_cluster.wait_leader()
    epoch = radio_cluster.statuses()[leader].epoch
    transcoding = wait_for(lambda: owner(radio_cluster, "low.mp3"), timeout=10, what="an owner")
    liquidsoap = wait_for(
        lambda: transcoder_processes("low.mp3", radio_cluster), timeout=10, what="the transcoder"
    )
    assert all(ttl == TEST_TIMING["ttl"] for _, ttl in leases(radio_cluster).values())

    radioctl.ok("config", "set", "limits.max_listeners", "7")
    wait_for(
        lambda: [status.listener_limit for status in radio_cluster.statuses().values()] == [7] * 3,
        timeout=5,
        what="every node to take the cluster's listener limit",
    )

    # From unset, one timing key brings the defaults for the others (loop_wait among them).
    radioctl.ok("config", "set", "timing.ttl", "20")
    wait_for(
        lambda: all(ttl == 20 for _, ttl in leases(radio_cluster).values()),
        timeout=5,
        what="every agent's keys on a 20 s lease",
    )
    held = leases(radio_cluster)
    assert set(held) >= {"/v1/leader", "/v1/transcoders/low.mp3"} | {
        f"/v1/nodes/{node.name}" for node in radio_cluster.nodes
    }
    assert held["/v1/transcoders/low.mp3"][0] == held[f"/v1/nodes/{transcoding}"][0]
    assert all(
        timing_metric(node, "loop_wait") == Timing().loop_wait for node in radio_cluster.nodes
    )
    # Nothing moved: same leader and epoch, same transcoder owner and process.
    assert radio_cluster.leader_name() == leader
    assert radio_cluster.statuses()[leader].epoch == epoch
    assert owner(radio_cluster, "low.mp3") == transcoding
    assert transcoder_processes("low.mp3", radio_cluster) == liquidsoap

    shown = radioctl.ok("config", "show")
    assert "limits.max_listeners     7" in shown
    assert "limits.bandwidth_kbps    (unset: each agent's own)" in shown
    radioctl.ok("config", "set", "timing", "none")
    radioctl.ok("config", "set", "limits.max_listeners", "none")
    wait_for(
        lambda: all(ttl == TEST_TIMING["ttl"] for _, ttl in leases(radio_cluster).values()),
        timeout=5,
        what="every agent back on its own ttl",
    )
    wait_for(
        lambda: all(status.listener_limit is None for status in radio_cluster.statuses().values()),
        timeout=5,
        what="the listener limit gone",
    )
    assert radio_cluster.leader_name() == leader


def test_drain_stops_new_listeners_keeps_current_ones_and_undrain_clears_it(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    radioctl.ok("mount", "create", "live.mp3")
    radioctl.ok("config", "set", "policy", "random")
    node1, node2, node3 = radio_cluster.nodes
    node2.wait_front_door_serving("/live.mp3")
    staying = StreamRecorder(f"{node2.front_door_url}/_stream/live.mp3").start()
    try:
        radioctl.ok("node", "drain", "node2")
        wait_for(
            lambda: radio_cluster.statuses()["node2"].draining,
            timeout=5,
            what="node2 to report draining",
        )
        assert not radio_cluster.statuses()["node1"].draining
        assert "yes" in next(
            line for line in radioctl.ok("status").splitlines() if line.startswith("node2")
        )
        node2_port = str(node2.front_door_port)
        wait_for(
            lambda: all(
                node2_port not in node.head_requests("/live.mp3", 60, "player")
                and "200" not in node2.head_requests("/live.mp3", 20, "player")
                for node in (node1, node3)
            ),
            timeout=5,
            what="no listener sent to node2",
        )
        since = time.monotonic()
        wait_for(lambda: staying.bytes_since(since) > 0, timeout=5, what="node2's listener")
        assert staying.connected
        radioctl.ok("node", "undrain", "node2")
        wait_for(
            lambda: node2_port in node1.head_requests("/live.mp3", 60, "player"),
            timeout=5,
            what="node2 to take listeners again",
        )
    finally:
        staying.stop()
    assert_refused(radioctl, "node", "drain", "node9", message="'node9' is not in the cluster")


def test_a_node_whose_agent_died_is_listed_as_down_until_it_returns_or_is_forgotten(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    leader = radio_cluster.wait_leader()
    victim, other = [node for node in radio_cluster.nodes if node.name != leader]

    def down() -> dict[str, Any]:
        return json.loads(radioctl.ok("status", "--json"))["down_nodes"]

    killed_at = time.time()
    victim.kill()
    wait_for(
        lambda: (down().get(victim.name) or {}).get("down_since") is not None,
        timeout=3 * TEST_TIMING["ttl"] + 5,
        what=f"{victim.name} listed as down",
    )
    since = down()[victim.name]["down_since"]
    assert killed_at <= since <= time.time()

    # Another node's API says the same once its loop read it (within a loop), and
    # radioctl's text too.
    def api_down() -> dict[str, Any]:
        return json.loads(listen(f"{other.front_door_url}/api/v1/status", 1 << 20).body)[
            "down_nodes"
        ]

    wait_for(
        lambda: api_down() == {victim.name: {"down_since": since}},
        timeout=3 * TEST_TIMING["loop_wait"] + 2,
        what=f"{other.name}'s API to list {victim.name} as down",
    )
    assert f"{victim.name}: DOWN since " in radioctl.ok("status")
    # A node that is up cannot be forgotten.
    refused = radioctl("node", "forget", other.name)
    assert refused.returncode == 2, refused.stderr
    assert "is up: stop its agent first" in refused.stderr
    assert other.name in radio_cluster.known_up()

    victim.start()
    wait_for(lambda: victim.name not in down(), timeout=15, what=f"{victim.name} up again")
    victim.stop()  # for good: SIGTERM revokes its lease at once
    wait_for(lambda: victim.name in down(), timeout=15, what=f"{victim.name} down again")
    assert radioctl.ok("node", "forget", victim.name).strip() == f"{victim.name}: forgotten"
    assert victim.name not in down()
    assert radioctl.ok("node", "forget", victim.name).strip() == f"{victim.name}: was not known"


def test_handover_to_a_named_node_takes_sources_within_a_second(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    radioctl.ok("mount", "create", "live.mp3", "--set", "source_password=dj-secret")
    old_leader = radio_cluster.leader_taking_sources("/_live/live.mp3", "dj-secret")
    target = next(node for node in radio_cluster.nodes if node is not old_leader)

    started = time.monotonic()
    output = radioctl.ok("leader", "handover", "--to", target.name)
    target.wait_accepting_source("/_live/live.mp3", "dj-secret", timeout=5)
    seconds = time.monotonic() - started

    assert output.startswith(f"leader: {target.name} (epoch ")
    assert seconds <= 1.0
    assert radio_cluster.leader_name() == target.name
    assert not old_leader.accepts_source("/_live/live.mp3", "dj-secret")
    assert_refused(radioctl, "leader", "handover", "--to", target.name, message="already leads")


def test_handover_without_target_moves_leadership_elsewhere(
    radio_cluster: RadioCluster, tmp_path: Path
) -> None:
    radioctl = Radioctl(radio_cluster.etcd, tmp_path, prefix=radio_cluster.prefix)
    old_leader = radio_cluster.wait_leader()
    output = radioctl.ok("leader", "handover")
    new_leader = radio_cluster.wait_leader()
    assert new_leader != old_leader
    assert output.startswith(f"leader: {new_leader} ")


def test_passwords_are_taken_as_typed_and_never_echoed_in_errors(radioctl: Radioctl) -> None:
    radioctl.ok("mount", "create", "x.mp3", "--set", "source_password=!s3cret@PW")
    assert (
        json.loads(radioctl.dump()[f"{radioctl.prefix}/v1/mounts/x.mp3"])["source_password"]
        == "!s3cret@PW"
    )
    radioctl.ok("mount", "create", "y.mp3", "--set", "source_password=123456")
    assert (
        json.loads(radioctl.dump()[f"{radioctl.prefix}/v1/mounts/y.mp3"])["source_password"]
        == "123456"
    )  # still text, not a number
    result = radioctl("mount", "create", "z.mp3", "--set", "source_password=has space<")
    assert result.returncode == 2
    assert "has space" not in result.stderr
    assert_refused(
        radioctl,
        "mount",
        "edit",
        "x.mp3",
        "--set",
        "max_listeners=[1",
        message="--set max_listeners: the value is not",
    )


def test_restore_refuses_invalid_settings_before_writing_anything(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "format": "radio-cluster-backup",
                "version": 1,
                "mounts": [{"name": "a.mp3", "source_password": "pw"}],
                "settings": {"policy": "bogus"},
            }
        )
    )
    assert_refused(radioctl, "restore", str(bad), message="policy: 'bogus' is not a filter")
    bad.write_text(json.dumps({"format": "radio-cluster-backup", "version": 1, "mounts": 5}))
    assert_refused(radioctl, "restore", str(bad), message="backup.mounts: expected a list")


def test_restore_of_more_mounts_than_one_etcd_transaction_takes(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    backup = tmp_path / "many.json"
    backup.write_text(
        json.dumps(
            {
                "format": "radio-cluster-backup",
                "version": 1,
                "settings": None,
                "mounts": [
                    {"name": f"m{index}.mp3", "source_password": f"pw{index}"}
                    for index in range(150)
                ],
            }
        )
    )
    assert radioctl.ok("restore", str(backup)).startswith("restored: 150 created")
    assert len(json.loads(radioctl.ok("mount", "list", "--json"))) == 150


def test_apply_reports_a_yaml_error_by_line_without_its_content(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("radio: r\nmounts:\n  - name: a.mp3\n    source_password: @Secr3t\n")
    result = radioctl("apply", "-f", str(bad))
    assert result.returncode == 2
    assert "not valid YAML at line 4" in result.stderr
    assert "Secr3t" not in result.stderr
    bad.write_bytes(b"radio: \xff\xfe\n")
    assert_refused(radioctl, "apply", "-f", str(bad), message="not UTF-8 text")


def test_handover_needs_another_node_to_take_over(radioctl: Radioctl, etcd: EtcdCluster) -> None:
    client = etcd.members[0].client()
    client.put(f"{radioctl.prefix}/v1/leader", "node1")
    client.put(
        f"{radioctl.prefix}/v1/nodes/node1",
        json.dumps({"name": "node1", "address": "127.0.0.1", "icecast_port": 8001}),
    )
    assert_refused(radioctl, "leader", "handover", message="no node but node1 is up")


PROGRAMME_INPUTS = [
    {"name": "studio-a.mp3"},
    {"name": "studio-b.mp3"},
    {"name": "override.mp3"},
]


def programme_mount(inputs: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": "radio.mp3", "programme": {"inputs": inputs, **extra}}


@pytest.mark.parametrize(
    ("mounts", "message"),
    [
        (
            [*PROGRAMME_INPUTS, programme_mount(["studio-a.mp3", "nowhere.mp3"])],
            "radio.mp3: programme.inputs[1]: 'nowhere.mp3' is not a mount",
        ),
        (
            [*PROGRAMME_INPUTS, programme_mount(["studio-a.mp3", "radio.mp3"])],
            "programme.inputs[1]: 'radio.mp3' is the programme itself",
        ),
        (
            [
                *PROGRAMME_INPUTS,
                programme_mount(["studio-a.mp3", "other.mp3"]),
                {"name": "other.mp3", "programme": {"inputs": ["studio-b.mp3", "radio.mp3"]}},
            ],
            "made from itself through",
        ),
        (
            [*PROGRAMME_INPUTS, programme_mount([{"mount": "override.mp3", "automatic": False}])],
            "programme.inputs: every input is manual-only",
        ),
        (
            [*PROGRAMME_INPUTS, programme_mount(["studio-a.mp3"], hold_seconds=-1)],
            "programme.hold_seconds: -1 is out of range",
        ),
    ],
    ids=["unknown-input", "itself", "cycle", "manual-only", "hold"],
)
def test_apply_refuses_bad_programmes_changing_nothing(
    radioctl: Radioctl, tmp_path: Path, mounts: list[dict[str, Any]], message: str
) -> None:
    bad = write_radio(tmp_path / "bad.yml", mounts)
    assert_refused(radioctl, "apply", "-f", str(bad), message=message)


def test_programme_prefer_and_auto_store_the_choice_with_checks(
    radioctl: Radioctl, tmp_path: Path
) -> None:
    inputs = ["studio-a.mp3", "studio-b.mp3", {"mount": "override.mp3", "automatic": False}]
    radioctl.ok(
        "apply",
        "-f",
        str(write_radio(tmp_path / "r.yml", [*PROGRAMME_INPUTS, programme_mount(inputs)])),
    )
    listed = radioctl.ok("programme", "list")
    assert "/radio.mp3" in listed
    assert "(not running)" in listed  # no agent runs it in this test
    assert radioctl.ok("programme", "prefer", "/radio.mp3", "/override.mp3").strip() == (
        "/radio.mp3: prefers override.mp3"
    )
    key = f"{radioctl.prefix}/v1/preferred/radio.mp3"
    assert radioctl.dump()[key] == b"override.mp3"
    shown = json.loads(radioctl.ok("programme", "show", "radio.mp3", "--json"))
    assert shown["preferred"] == "override.mp3"
    assert [entry["automatic"] for entry in shown["inputs"]] == [True, True, False]
    assert "preferred: override.mp3" in radioctl.ok("programme", "show", "radio.mp3")
    assert_refused(
        radioctl,
        "programme",
        "prefer",
        "radio.mp3",
        "nowhere.mp3",
        message="'nowhere.mp3' is not an input of 'radio.mp3'",
    )
    assert_refused(
        radioctl, "programme", "prefer", "studio-a.mp3", "studio-b.mp3", message="not a programme"
    )
    assert_refused(radioctl, "programme", "show", "nowhere.mp3", message="not a programme")
    radioctl.ok("programme", "auto", "radio.mp3")
    assert key not in radioctl.dump()
    # An edit that drops the preferred input drops the preference: it must not come back
    # by itself when the input is added again.
    radioctl.ok("programme", "prefer", "radio.mp3", "studio-b.mp3")
    without_b = ["studio-a.mp3", {"mount": "override.mp3", "automatic": False}]
    radioctl.ok(
        "apply",
        "-f",
        str(write_radio(tmp_path / "r.yml", [*PROGRAMME_INPUTS, programme_mount(without_b)])),
    )
    assert key not in radioctl.dump()
    # A deleted programme takes its preference with it.
    radioctl.ok("programme", "prefer", "radio.mp3", "studio-a.mp3")
    radioctl.ok("mount", "delete", "radio.mp3")
    assert not any(name.startswith(f"{radioctl.prefix}/v1/preferred/") for name in radioctl.dump())
