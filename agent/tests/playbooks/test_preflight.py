"""The playbooks refuse a bad inventory in their preflight, naming the variable, before
any node is touched. The hosts of these inventories are unreachable on purpose (SSH to a
closed loopback port): a preflight that wrongly passed could not change anything, and
the run would fail at the first task on a node instead of in the preflight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import REPOSITORY

PLAYBOOKS = REPOSITORY / "playbooks"
VENV_BIN = Path(sys.executable).parent
CLOSED_PORT = 9  # discard: nothing listens on loopback's port 9 here
GOOD_RADIO = {"radio": "one", "mounts": [{"name": "live.mp3"}]}


def write_site(
    directory: Path,
    hosts: dict[str, dict[str, Any]],
    group_vars: dict[str, Any] | None = None,
    radio: dict[str, Any] | None = None,
) -> Path:
    site = directory / "site"
    (site / "radios").mkdir(parents=True)
    unreachable = {
        "ansible_host": "127.0.0.1",
        "ansible_port": CLOSED_PORT,
        "ansible_connection": "ssh",
    }
    inventory = {
        "all": {
            "children": {
                "radio_nodes": {
                    "hosts": {name: values for name, values in hosts.items()},
                    "vars": {**unreachable, **(group_vars or {})},
                }
            }
        }
    }
    (site / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (site / "radios" / "one.yml").write_text(yaml.safe_dump(radio or GOOD_RADIO))
    return site


def run_playbook(site: Path, playbook: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(site), str(PLAYBOOKS / playbook), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPOSITORY,
        env={
            **os.environ,
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPOSITORY / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_SSH_ARGS": "-o ConnectTimeout=2",
        },
    )


THREE = {
    "node1": {"radio_node_address": "10.9.0.1"},
    "node2": {"radio_node_address": "10.9.0.2"},
    "node3": {"radio_node_address": "10.9.0.3"},
}


@pytest.mark.parametrize(
    ("hosts", "group_vars", "radio", "message"),
    [
        (
            {**THREE, "node2": {"radio_node_address": "10.9.0"}},
            None,
            None,
            'radio_node_address of node2: "10.9.0" is not an IPv4 address',
        ),
        (
            {**THREE, "node3": {}},
            None,
            None,
            'radio_node_address of node3: "missing" is not an IPv4 address',
        ),
        (
            {**THREE, "node3": {"radio_node_address": "10.9.0.1"}},
            None,
            None,
            "radio_node_address: used by more than one node (10.9.0.1)",
        ),
        (
            {**THREE, "Node_4": {"radio_node_address": "10.9.0.4"}},
            None,
            None,
            'inventory_hostname "Node_4": a node name is 1-63 of a-z 0-9 -',
        ),
        (THREE, {"etcd_member_count": 2}, None, "etcd_member_count must be an odd integer"),
        (
            THREE,
            None,
            {"radio": "one", "mounts": [{"name": "../live.mp3"}]},
            "mounts[0] (../live.mp3): name: '../live.mp3' is not valid",
        ),
        (
            THREE,
            {"radio_dns_zone": "stream.example.org", "radio_dns_nameservers": ["node1", "node9"]},
            None,
            "radio_dns_nameservers: node9 not in radio_nodes",
        ),
        (
            THREE,
            {"radio_dns_zone": "Stream.Example"},
            None,
            'radio_dns_zone: "Stream.Example" is not a lowercase DNS name',
        ),
        (
            THREE,
            {"radio_acme": True},
            None,
            "radio_acme: give radio_dns_zone or radio_agent_acme_name",
        ),
        (
            THREE,
            {"radio_acme": True, "radio_agent_acme_challenge": "dns-01"},
            None,
            "radio_acme: DNS-01 needs radio_dns_zone",
        ),
        (
            THREE,
            {"radio_agent_tls_cert_src": "/etc/site/fullchain.pem"},
            None,
            "radio_agent_tls_cert_src and radio_agent_tls_key_src: give both or neither",
        ),
    ],
    ids=[
        "bad-address",
        "missing-address",
        "shared-address",
        "bad-name",
        "even-etcd",
        "bad-mount",
        "unknown-nameserver",
        "bad-zone",
        "acme-without-a-name",
        "dns01-without-a-zone",
        "certificate-without-key",
    ],
)
def test_site_refuses_a_bad_inventory_in_its_preflight(
    tmp_path: Path,
    hosts: dict[str, dict[str, Any]],
    group_vars: dict[str, Any] | None,
    radio: dict[str, Any] | None,
    message: str,
) -> None:
    result = run_playbook(write_site(tmp_path, hosts, group_vars, radio), "site.yml")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert message in output, output
    assert "PLAY [Build every node]" not in output, output  # stopped before any node


@pytest.mark.parametrize(
    "group_vars",
    [None, {"radio_dns_zone": "stream.example.org", "radio_acme": True}],
    ids=["plain", "zone-and-acme"],
)
def test_a_good_inventory_passes_the_preflight(
    tmp_path: Path, group_vars: dict[str, Any] | None
) -> None:
    result = run_playbook(write_site(tmp_path, THREE, group_vars), "site.yml")
    output = result.stdout + result.stderr
    # Past the inventory's checks, the run meets the unreachable nodes at the first task
    # that connects (the clock's): proof it got that far.
    first_on_nodes = "TASK [preflight : Read the node's clock]"
    assert first_on_nodes in output, output
    assert "UNREACHABLE" in output.split(first_on_nodes)[1], output
    assert "FAILED" not in output.split(first_on_nodes)[0], output


def test_remove_node_refuses_an_unknown_node(tmp_path: Path) -> None:
    result = run_playbook(write_site(tmp_path, THREE), "remove-node.yml", "-e", "remove_node=node9")
    assert result.returncode == 2
    assert "remove_node: node9 must be one of node1, node2, node3" in result.stdout


@pytest.mark.parametrize(
    "playbook",
    sorted(path.name for path in PLAYBOOKS.glob("*.yml")),
)
def test_every_playbook_passes_the_syntax_check(playbook: str) -> None:
    result = run_playbook(REPOSITORY / "inventory" / "example", playbook, "--syntax-check")
    assert result.returncode == 0, result.stdout + result.stderr


CLOCK_PLAYBOOK = """
- name: The clock preflight alone, on this machine
  hosts: radio_nodes
  gather_facts: false
  environment: "{{ clock_environment }}"
  tasks:
    - name: Check the clock
      ansible.builtin.import_role:
        name: preflight
        tasks_from: clock
"""
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (None, None),
        ("+2s", None),
        ("+90s", "node1: its clock is 90.0 s ahead of the controller's"),
        ("-1h", "node1: its clock is 3600.0 s behind the controller's"),
    ],
    ids=["same-clock", "2s-ahead", "90s-ahead", "1h-behind"],
)
def test_the_clock_preflight_refuses_a_node_whose_clock_is_off(
    tmp_path: Path, offset: str | None, message: str | None
) -> None:
    """The node is this machine (local connection), its `date` run under libfaketime: a
    real clock read, shifted for that node's commands only, never for the controller."""
    environment = (
        {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        if offset
        else {}
    )
    inventory = {
        "all": {
            "hosts": {"node1": {"ansible_connection": "local"}},
            "children": {"radio_nodes": {"hosts": {"node1": {}}}},
            "vars": {
                "ansible_python_interpreter": sys.executable,
                "clock_environment": environment,
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    playbook = tmp_path / "clock.yml"
    playbook.write_text(CLOCK_PLAYBOOK)
    result = run_playbook(tmp_path / "hosts.yml", str(playbook))  # an absolute path
    output = result.stdout + result.stderr
    if message is None:
        assert result.returncode == 0, output
        checked = output.split("TASK [preflight : Check that the node's clock agrees")[1]
        assert "ok: [node1]" in checked.split("PLAY RECAP")[0], output
    else:
        assert result.returncode == 2, output
        # The measured offset, to the tenth, within the run's own second of slack.
        measured = output.split("its clock is ")[1].split(" s ")[0]
        expected = message.split("its clock is ")[1].split(" s ")[0]
        assert abs(float(measured) - float(expected)) <= 1.0, output
        assert message.split(" s ")[1] in output, output
        assert "preflight_clock_max_offset_s: 5" in output, output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "no radio-*.json in "),
        (("-e", "restore_file=/nonexistent/radio-x.json"), "restore_file: /nonexistent/radio-x"),
    ],
    ids=["no-backup", "missing-file"],
)
def test_restore_refuses_without_a_backup_before_any_node_is_touched(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_playbook(write_site(tmp_path, THREE), "restore.yml", *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout, result.stdout
    assert "UNREACHABLE" not in result.stdout  # the hosts were never contacted
