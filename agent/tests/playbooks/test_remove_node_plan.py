"""remove-node.yml's first play works out etcd's members without the node, on the
controller: they must be what the etcd role makes of the inventory without the node (so
the site.yml run that follows changes nothing in etcd). The hosts are unreachable, as in
test_preflight.py: the run stops at the first task that needs a node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.paths import etcd_members_filter
from tests.playbooks.test_preflight import run_playbook, write_site


def role_members(nodes: list[str], member_count: int) -> list[str]:
    """The etcd role's default: the etcd_members filter, the rule's one copy."""
    return etcd_members_filter().etcd_members(nodes, member_count)


@pytest.mark.parametrize(
    ("node_count", "member_count", "removed", "promoted", "demoted"),
    [
        (3, 3, "node3", [], ["node2"]),  # three members become one and a gateway
        (3, 3, "node1", [], ["node3"]),
        (4, 3, "node2", ["node4"], []),  # a gateway takes the member's place
        (5, 3, "node1", ["node4"], []),
        (5, 5, "node1", [], ["node5"]),  # five members become three
        (5, 5, "node5", [], ["node4"]),
        (4, 3, "node4", [], []),  # a gateway leaves: members unchanged
        (3, 1, "node2", [], []),
    ],
)
def test_the_members_left_are_what_the_etcd_role_makes_of_the_smaller_inventory(  # noqa: PLR0917 - parameters
    tmp_path: Path,
    node_count: int,
    member_count: int,
    removed: str,
    promoted: list[str],
    demoted: list[str],
) -> None:
    nodes = [f"node{index}" for index in range(1, node_count + 1)]
    site = write_site(
        tmp_path,
        {name: {"radio_node_address": f"10.9.0.{i}"} for i, name in enumerate(nodes, 1)},
        {"etcd_member_count": member_count},
    )
    result = run_playbook(site, "remove-node.yml", "-e", f"remove_node={removed}")
    plan = re.search(
        r'"msg": "members: (.*?); promoted: (.*?); becoming gateways: (.*?)"', result.stdout
    )
    assert plan, result.stdout + result.stderr
    expected = role_members([name for name in nodes if name != removed], member_count)
    assert plan.group(1).split(", ") == expected
    assert plan.group(2) == (", ".join(promoted) or "none")
    assert plan.group(3) == (", ".join(demoted) or "none")
    assert "UNREACHABLE" in result.stdout  # and nothing after the plan ran


@pytest.mark.parametrize(("node_count", "member_count"), [(2, 3), (3, 1)])
def test_removing_etcds_only_member_is_refused_before_any_node_is_touched(
    tmp_path: Path, node_count: int, member_count: int
) -> None:
    nodes = {f"node{i}": {"radio_node_address": f"10.9.0.{i}"} for i in range(1, node_count + 1)}
    site = write_site(tmp_path, nodes, {"etcd_member_count": member_count})
    result = run_playbook(site, "remove-node.yml", "-e", "remove_node=node1")
    assert result.returncode != 0
    assert "node1 is etcd's only member" in result.stdout
    assert "UNREACHABLE" not in result.stdout
