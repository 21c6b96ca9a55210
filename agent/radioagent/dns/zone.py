"""The cluster's zone as DNS answers it. Pure: a view made from the cluster state each
loop, and the answer to one question from that view.

The zone's own name answers with the nodes that take listeners now (up, Icecast
answering, not draining, under their limits), best first by the load-balancing policy's
scores, at most `max_records`; each node has its own name under the zone; NS names the
nodes that serve the zone, SOA its parameters. Anything outside the zone is refused: the
agents are authoritative only, never resolvers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from radioagent.config import ip_version
from radioagent.coordination.state import ClusterState
from radioagent.traffic.director import node_load
from radioagent.traffic.policy import parse_policy, ranked_nodes

SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 3600, 600, 86400
ADDRESS_TYPES = {"A": 4, "AAAA": 6}


class Rcode(Enum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


@dataclass(frozen=True)
class Soa:
    primary: str  # the first name server's name
    mailbox: str  # hostmaster.<zone>
    serial: int
    minimum: int  # how long resolvers keep "no such name"


@dataclass(frozen=True)
class Record:
    name: str  # lowercase, without the final dot
    rtype: str  # A, AAAA, NS, SOA, TXT
    ttl: int
    value: str | Soa  # an address, a name (NS), a text (TXT), or the SOA's fields


@dataclass(frozen=True)
class Answer:
    rcode: Rcode
    authoritative: bool = True
    answers: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()


# How long a mount is live on the leader before DNS expects every node to relay it.
ON_AIR_SETTLED_SECONDS = 10.0


@dataclass(frozen=True)
class ZoneView:
    zone: str  # lowercase, without the final dot
    ttl: int
    serial: int
    listener_addresses: tuple[str, ...]  # the apex's, best first (IPv4 and IPv6 mixed)
    nodes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node -> addresses
    nameservers: tuple[str, ...] = ()  # node names, each `<node>.<zone>`
    max_records: int = 4
    # ACME DNS-01 challenges (_acme-challenge.<name> -> values), while an order runs
    txt: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # False before the first cluster state, and while this node is cut off from etcd:
    # SERVFAIL then, so resolvers ask another nameserver rather than cache a wrong answer.
    ready: bool = True


def relaying_what_is_on_air(state: ClusterState, now: float) -> set[str]:
    """Nodes that carry live every mount live on the leader for ON_AIR_SETTLED_SECONDS:
    a node back from a reboot serves the holding audio (or nothing) until its relays come
    up, and a resolver would keep sending listeners there for the answer's TTL. A mount
    that just came on air is left out: every relay takes a loop or two to carry it, and
    the answer must not shrink to the leader meanwhile. Every node when no leader says
    (`now`: wall clock, as the statuses' times)."""
    leader = state.nodes.get(state.leader.name) if state.leader is not None else None
    if leader is None:
        return set(state.nodes)
    settled = {
        mount
        for mount in leader.live_mounts
        if now - leader.air_changed.get(mount, now) >= ON_AIR_SETTLED_SECONDS
    }
    return {name for name, status in state.nodes.items() if settled <= set(status.live_mounts)}


def zone_view(
    zone: str,
    state: ClusterState,
    nameservers: Mapping[str, str],
    *,
    ttl: int,
    max_records: int,
    now: float,
    ready: bool = True,
) -> ZoneView:
    """`nameservers`: the nodes that answer for the zone, with their addresses (from the
    inventory), so NS and their glue hold while one of them is down."""
    loads = [node_load(status, name in state.draining) for name, status in state.nodes.items()]
    relaying = relaying_what_is_on_air(state, now)
    ranked = ranked_nodes(
        parse_policy(state.settings.policy), [load for load in loads if load.name in relaying]
    )
    if not ranked:  # every node full or its Icecast restarting: an answer beats none
        ranked = sorted((load for load in loads if not load.draining), key=lambda n: n.name)
    addresses = tuple(
        state.nodes[load.name].listener_address
        for load in ranked
        if ip_version(state.nodes[load.name].listener_address) is not None
    )
    nodes = {
        name: (status.listener_address,)
        for name, status in state.nodes.items()
        if ip_version(status.listener_address) is not None
    }
    # A nameserver's name keeps the inventory's address: the glue at the parent says so.
    nodes.update({name: (address,) for name, address in nameservers.items()})
    return ZoneView(
        zone=zone.lower().rstrip("."),
        ttl=ttl,
        serial=state.revision % 2**32,
        listener_addresses=addresses,
        nodes=nodes,
        nameservers=tuple(sorted(nameservers)),
        max_records=max_records,
        txt=state.acme.txt_records(),
        ready=ready,
    )


def answer(view: ZoneView, name: str, rtype: str) -> Answer:
    """The answer to one question, `name` lowercase without the final dot."""
    if name != view.zone and not name.endswith(f".{view.zone}"):
        return Answer(Rcode.REFUSED, authoritative=False)
    if not view.ready:
        return Answer(Rcode.SERVFAIL, authoritative=False)
    if name == view.zone:
        return _apex(view, rtype)
    if name in view.txt:
        return _txt(view, name, rtype)
    return _node(view, name, rtype)


def _node(view: ZoneView, name: str, rtype: str) -> Answer:
    node = name.removesuffix(f".{view.zone}")
    if node not in view.nodes:
        return Answer(Rcode.NXDOMAIN, authority=(_soa(view),))
    if rtype in ADDRESS_TYPES:
        return _addresses(view, name, rtype, view.nodes[node])
    return Answer(Rcode.NOERROR, authority=(_soa(view),))  # the name, without such data


def _txt(view: ZoneView, name: str, rtype: str) -> Answer:
    if rtype != "TXT":
        return Answer(Rcode.NOERROR, authority=(_soa(view),))
    # A CA asks once per challenge; a cached old value would fail the next order.
    texts = tuple(Record(name, "TXT", 0, value) for value in view.txt[name])
    return Answer(Rcode.NOERROR, answers=texts)


def _apex(view: ZoneView, rtype: str) -> Answer:
    if rtype in ADDRESS_TYPES:
        return _addresses(view, view.zone, rtype, view.listener_addresses)
    if rtype == "NS":
        names = tuple(
            Record(view.zone, "NS", view.ttl, f"{node}.{view.zone}") for node in view.nameservers
        )
        return Answer(Rcode.NOERROR, answers=names, additional=_glue(view))
    if rtype == "SOA":
        return Answer(Rcode.NOERROR, answers=(_soa(view),))
    return Answer(Rcode.NOERROR, authority=(_soa(view),))


def _addresses(view: ZoneView, name: str, rtype: str, addresses: tuple[str, ...]) -> Answer:
    version = ADDRESS_TYPES[rtype]
    matching = [address for address in addresses if ip_version(address) == version]
    records = tuple(Record(name, rtype, view.ttl, a) for a in matching[: view.max_records])
    return Answer(Rcode.NOERROR, answers=records, authority=() if records else (_soa(view),))


def _soa(view: ZoneView) -> Record:
    primary = f"{view.nameservers[0]}.{view.zone}" if view.nameservers else view.zone
    fields = Soa(primary, f"hostmaster.{view.zone}", view.serial, view.ttl)
    return Record(view.zone, "SOA", view.ttl, fields)


def _glue(view: ZoneView) -> tuple[Record, ...]:
    glue = []
    for node in view.nameservers:
        for address in view.nodes.get(node, ()):
            rtype = "A" if ip_version(address) == 4 else "AAAA"
            glue.append(Record(f"{node}.{view.zone}", rtype, view.ttl, address))
    return tuple(glue)
