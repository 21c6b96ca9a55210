"""Keep etcd's raft leadership off the radio leader's machine. Pure.

When one machine holds both, its death combines a raft election, etcd's extension of
every lease on a raft leader change (etcd-io/etcd#9395) and a radio election: a crash
failover measured 21.8 s with ttl 15 s. So the radio leader, finding its own member
leading raft, hands raft leadership to another member (etcd's MoveLeader).
"""

from __future__ import annotations

from collections.abc import Mapping

# A member whose log is further behind the leader's than this is not offered leadership:
# etcd would refuse every write while it catches up (or until the transfer is aborted).
MAX_RAFT_LAG = 20


def raft_move_targets(
    leading: bool, my_member: str, raft_leader: int | None, members: Mapping[int, str]
) -> tuple[int, ...]:
    """The members to offer raft leadership to, in the order to try them (by name), or
    none to leave it. `members`: id -> name (an unstarted member has no name yet and is
    never a target); `raft_leader`: its id."""
    if not leading or raft_leader is None or members.get(raft_leader) != my_member:
        return ()
    others = sorted((name, member_id) for member_id, name in members.items() if name)
    return tuple(member_id for name, member_id in others if name != my_member)


def ready_to_lead(leader: int, leader_index: int, follows: int, index: int) -> bool:
    """Whether a member that answered (following `follows`, its log at `index`) can take
    raft leadership at once: it follows this leader and its log is caught up. A dead or
    lagging target would keep etcd refusing writes for its whole transfer."""
    return follows == leader and leader_index - index <= MAX_RAFT_LAG
