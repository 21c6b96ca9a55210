"""The etcd membership rule (plugins/filter/etcd_members.py), as the playbooks use it."""

from __future__ import annotations

import pytest

from tests.paths import etcd_members_filter

FILTER = etcd_members_filter()
etcd_members = FILTER.etcd_members
NODES = [f"node{index}" for index in range(1, 6)]


@pytest.mark.parametrize(
    ("nodes", "count", "members"),
    [
        (NODES, 3, ["node1", "node2", "node3"]),
        (NODES, 5, NODES),
        (NODES[:4], 5, ["node1", "node2", "node3"]),  # four would be even: three
        (NODES[:2], 3, ["node1"]),  # two members would need both up: one
        (NODES[:1], 3, ["node1"]),
        ([], 3, []),
        (NODES, 1, ["node1"]),
    ],
)
def test_the_first_nodes_in_inventory_order_an_odd_number_of_them(
    nodes: list[str], count: int, members: list[str]
) -> None:
    assert etcd_members(nodes, count) == members


def test_members_that_stay_are_taken_first_then_the_others_in_order() -> None:
    remaining = ["node1", "node3", "node4", "node5"]  # node2 removed
    assert etcd_members(remaining, 3, keep=["node1", "node3"]) == ["node1", "node3", "node4"]
    assert etcd_members(remaining, 3, keep=["node5", "node4", "node1"]) == [
        "node5",
        "node4",
        "node1",
    ]
    # A kept name that is no longer a node is ignored.
    assert etcd_members(["node1", "node3"], 3, keep=["node2", "node3"]) == ["node3"]


def test_the_filter_is_registered_under_its_name() -> None:
    assert FILTER.FilterModule().filters() == {"etcd_members": etcd_members}
