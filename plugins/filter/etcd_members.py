"""Which nodes are etcd's members: the one rule the etcd role, remove-node.yml, the
firewall, the agents' DNS and the monitoring role share (and remove-node's test imports).

    {{ groups['radio_nodes'] | etcd_members(etcd_member_count) }}
    {{ remaining | etcd_members(etcd_member_count, keep=current_members) }}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DOCUMENTATION = r"""
name: etcd_members
short_description: The nodes that are etcd members
description:
  - The first O(count) nodes, taking those in O(keep) first (in their order), then the
    others in inventory order; clipped to the number of nodes and rounded down to an odd
    number, since an even member count tolerates no more failures than the odd one below
    it and needs one more machine up. The other nodes run the etcd gateway.
positional: count
options:
  _input:
    description: The cluster's nodes, in inventory order.
    type: list
    elements: str
    required: true
  count:
    description: etcd_member_count, the most members wanted (odd, at least 1).
    type: int
    required: true
  keep:
    description: Current members that stay members if there is room (remove-node.yml).
    type: list
    elements: str
    default: []
"""

RETURN = r"""
_value:
  description: The members, in the order the role joins them.
  type: list
  elements: str
"""


def etcd_members(nodes: Sequence[str], count: int, keep: Iterable[str] = ()) -> list[str]:
    nodes = list(nodes)
    kept = [node for node in keep if node in nodes]
    candidates = kept + [node for node in nodes if node not in kept]
    slots = min(int(count), len(candidates))
    if slots > 0 and slots % 2 == 0:
        slots -= 1
    return candidates[:slots]


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"etcd_members": etcd_members}
