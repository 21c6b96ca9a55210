"""Keep etcd's raft leadership off the radio leader's machine. Pure.

When one machine holds both, its death combines a raft election, etcd's extension of
every lease on a raft leader change (etcd-io/etcd#9395) and a radio election: a crash
failover measured 21.8 s with ttl 15 s. So the radio leader, finding its own member
leading raft, hands raft leadership to another member (etcd's MoveLeader).
"""

from __future__ import annotations

from collections.abc import Mapping


def raft_move_target(
    leading: bool, my_member: str, raft_leader: int | None, members: Mapping[int, str]
) -> int | None:
    """The member to hand raft leadership to, or None to leave it. `members`: id -> name
    (an unstarted member has no name yet and is never a target); `raft_leader`: its id."""
    if not leading or raft_leader is None or members.get(raft_leader) != my_member:
        return None
    others = sorted((name, member_id) for member_id, name in members.items() if name)
    return next((member_id for name, member_id in others if name != my_member), None)
