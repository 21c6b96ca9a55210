"""Failsafe on quorum loss, decided (as Patroni's failsafe mode). Pure: messages, their
authentication and the rules; `failsafe_link.py` carries them.

Without etcd quorum nobody can be elected, so the only way to two leaders is a leader
cut off from a quorum that others still reach. A leader cut off from etcd therefore asks
every node the cluster knows (those down too), directly; each acknowledges only while it is cut off
from etcd itself and knows no other leadership. With every acknowledgement in, nobody
can elect a new leader (a lease can expire only where etcd has quorum), and the leader
keeps taking sources; one missing, it steps down at retry_timeout as before. Acknowledged
replicas keep following it (relays, source pipes, their transcoders).

When quorum comes back the leader's lease may already be gone (a raft leader frozen
past the ttl revokes every lease as it wakes), so safety does not rest on the lease:
every node that hears etcd again refuses at once, the leader stops holding
retry_timeout after its last complete round at the latest, and no node takes anything
(leadership, a transcoder) within retry_timeout + 2 keepalives of the last ping it
acknowledged (`may_take`), which outlasts any hold resting on its word. The leader never
acknowledges; what keeps it from taking a replica's transcoder while that replica runs
on unaware is the same wait after it finds its own lease gone
(`election.settled_after_lease_loss`).

Messages are signed with the cluster's failsafe key (HMAC-SHA256): a forged or replayed
ping cannot make a replica follow, and a forged acknowledgement cannot keep a leader on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from radioagent.config import Timing, keepalive_interval
from radioagent.coordination.election import Leadership, Role, must_stop_leading, settle_seconds
from radioagent.coordination.state import ClusterState

PATH = "/_cluster/failsafe"
# A ping older or newer than this (wall clocks of two nodes) is refused as a replay.
MAX_CLOCK_SKEW_S = 10.0
_FIELDS = ("leader", "epoch", "to", "at", "held", "mac")
_NAME_MAX = 63
_MAC_HEX = 64


class FailsafeRefused(Exception):
    """A ping that is not one: the HTTP status and the reason, for the asker."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Ping:
    leader: str  # who asks: the leader of `epoch`, cut off from etcd
    epoch: int
    to: str  # the node asked (a ping is good for that node only)
    at_ms: int  # the leader's wall clock, in milliseconds
    # The leader holds now (its last round was complete): only then does an acknowledging
    # replica go on following it; a leader whose rounds fail is stepping down.
    held: bool = False


def _mac(key: bytes, *parts: object) -> str:
    message = "\n".join(str(part) for part in parts).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def ping_mac(key: bytes, ping: Ping) -> str:
    return _mac(key, "ping", ping.leader, ping.epoch, ping.to, ping.at_ms, int(ping.held))


def ping_target(key: bytes, ping: Ping) -> str:
    """The path and query a ping is sent as."""
    query = urlencode(
        {
            "leader": ping.leader,
            "epoch": ping.epoch,
            "to": ping.to,
            "at": ping.at_ms,
            "held": int(ping.held),
            "mac": ping_mac(key, ping),
        }
    )
    return f"{PATH}?{query}"


def parse_ping(query: str, key: bytes, me: str, now_wall: float) -> Ping:
    """The ping in a request's query, checked: well formed (400), for this node, signed
    with our key and recent (403). Raises FailsafeRefused."""
    try:
        fields = parse_qs(query, keep_blank_values=True, max_num_fields=len(_FIELDS) + 1)
    except ValueError:  # more fields than a ping has (counted before empty ones are dropped)
        fields = {}
    if set(fields) != set(_FIELDS) or any(len(values) != 1 for values in fields.values()):
        raise FailsafeRefused(400, f"a failsafe ping has exactly {', '.join(_FIELDS)}")
    value = {name: values[0] for name, values in fields.items()}
    if not all(0 < len(value[name]) <= _NAME_MAX for name in ("leader", "to")):
        raise FailsafeRefused(400, "leader and to are node names")
    if not (value["epoch"].isascii() and value["epoch"].isdigit() and len(value["epoch"]) < 19):
        raise FailsafeRefused(400, "epoch is a number")
    if not (value["at"].isascii() and value["at"].isdigit() and len(value["at"]) < 19):
        raise FailsafeRefused(400, "at is a number of milliseconds")
    if value["held"] not in ("0", "1"):
        raise FailsafeRefused(400, "held is 0 or 1")
    ping = Ping(
        value["leader"], int(value["epoch"]), value["to"], int(value["at"]), value["held"] == "1"
    )
    if not _is_mac(value["mac"]) or not hmac.compare_digest(value["mac"], ping_mac(key, ping)):
        raise FailsafeRefused(403, "not signed with this cluster's failsafe key")
    if ping.to != me:
        raise FailsafeRefused(403, f"this ping is for {ping.to}, not for {me}")
    if abs(now_wall - ping.at_ms / 1000) > MAX_CLOCK_SKEW_S:
        raise FailsafeRefused(403, f"this ping is more than {MAX_CLOCK_SKEW_S:g} s off our clock")
    return ping


def _is_mac(text: object) -> bool:
    """A hex SHA-256 digest's shape (compare_digest refuses non-ASCII strings)."""
    return (
        isinstance(text, str)
        and len(text) == _MAC_HEX
        and text.isascii()
        and all(character in "0123456789abcdef" for character in text)
    )


def cut_off_for_failsafe(now: float, last_etcd_contact: float, timing: Timing) -> bool:
    """Etcd has not answered us for two keepalives: long enough that a node still in
    touch with a quorum never says it is cut off, short enough that a leader's rounds
    find everyone so well before its fence at retry_timeout."""
    return now - last_etcd_contact >= 2 * keepalive_interval(timing)


def should_ping(now: float, last_etcd_contact: float, timing: Timing) -> bool:
    """A leader starts asking once a keepalive is half an interval late: one merely due
    (its answer on the way) is every interval's normal state, and asking then would ping
    every node each interval in a healthy cluster. A replica becomes cut off two intervals
    after its own last contact, which lags the leader's by at most one interval, so every
    cut-off replica has acknowledged a round, asked twice an interval, by retry_timeout."""
    return now - last_etcd_contact >= 1.5 * keepalive_interval(timing)


def may_take(
    now: float, last_etcd_contact: float, acknowledged_at: float | None, timing: Timing
) -> bool:
    """Whether a node of a cluster with the failsafe may take anything (campaign, claim a
    transcoder). A leader holds only on every known node's acknowledgement, for at most
    retry_timeout after the round it acknowledged; so a node takes nothing while a hold
    could still rest on its own word: within retry_timeout + 2 keepalives (one for the
    round's start, one for the clocks' steps) of the last ping it acknowledged, in this
    life or the one before (failsafe_link.py keeps it on disk). And, as without the
    failsafe, not while etcd has been silent for retry_timeout, whatever a hold says."""
    return not must_stop_leading(now, last_etcd_contact, timing.retry_timeout) and (
        acknowledged_at is None or now - acknowledged_at >= settle_seconds(timing)
    )


def refusal(
    ping: Ping, leadership: Leadership, cut_off: bool, newest_at_ms: int | None = None
) -> str | None:
    """Why this node does not acknowledge `ping`; None: it does. `newest_at_ms`: the
    newest ping from that leader this node acknowledged; one not newer is a replay."""
    if newest_at_ms is not None and ping.at_ms <= newest_at_ms:
        return "not newer than a ping already acknowledged"
    if not cut_off:
        return "this node still reaches etcd"
    if leadership.role is Role.LEADER:
        return "this node leads"
    if leadership.leader_name is not None and leadership.leader_name != ping.leader:
        return f"this node follows {leadership.leader_name}"
    if leadership.epoch is not None and leadership.epoch > ping.epoch:
        return f"this node knows a newer leadership (epoch {leadership.epoch})"
    return None


def answer_mac(key: bytes, node: str, ping: Ping, acknowledged: bool) -> str:
    return _mac(key, "answer", node, ping.leader, ping.epoch, ping.at_ms, acknowledged)


def answer_body(key: bytes, node: str, ping: Ping, why_not: str | None) -> bytes:
    acknowledged = why_not is None
    answer: dict[str, object] = {
        "node": node,
        "acknowledged": acknowledged,
        "mac": answer_mac(key, node, ping, acknowledged),
    }
    if why_not is not None:
        answer["reason"] = why_not
    return json.dumps(answer).encode()


def acknowledged(key: bytes, node: str, ping: Ping, body: bytes) -> bool:
    """Whether `body` is `node`'s signed acknowledgement of exactly `ping`."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    if not isinstance(answer, dict) or answer.get("acknowledged") is not True:
        return False
    mac = answer.get("mac")
    return (
        answer.get("node") == node
        and _is_mac(mac)
        and hmac.compare_digest(str(mac), answer_mac(key, node, ping, True))
    )


@dataclass(frozen=True)
class Peer:
    name: str
    host: str  # the cluster-internal address
    port: int  # its first front door port


def peers(state: ClusterState | None, me: str) -> tuple[Peer, ...]:
    """Every other node of the last view, those known but down too: all must acknowledge.
    A node that is not up could campaign on a side that has quorum once it comes back;
    it cannot acknowledge (no address, port 0), so the leader holds only while every
    node the cluster knows is up."""
    if state is None:
        return ()
    names = sorted((set(state.nodes) | set(state.known)) - {me})
    return tuple(_peer(name, state) for name in names)


def _peer(name: str, state: ClusterState) -> Peer:
    status = state.nodes.get(name)
    if status is None:
        return Peer(name, "", 0)
    return Peer(name, status.address, status.front_door_ports[0] if status.front_door_ports else 0)


def round_holds(answers: Mapping[str, bool], asked: tuple[Peer, ...]) -> bool:
    """A round holds when every node asked acknowledged it, and somebody was asked: a
    leader alone in its view has nobody whose return to etcd would end its hold."""
    return bool(asked) and all(answers.get(peer.name, False) for peer in asked)


def still_held(now: float, since: float | None, timing: Timing) -> bool:
    """A complete round (or an acknowledged ping, on a replica) holds for retry_timeout
    from when it was sent (received): the fence's own bound."""
    return since is not None and now - since < timing.retry_timeout
