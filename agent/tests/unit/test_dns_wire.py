"""DNS messages on the wire (dnslib both ways): replies, truncation, EDNS, and packets
that must get an error or nothing; a fuzz of broken packets never raises."""

from __future__ import annotations

import random

import pytest
from dnslib import CLASS, EDNS0, QTYPE, RCODE, DNSLabel, DNSQuestion, DNSRecord

from radioagent.dns.wire import MAX_QUERY_BYTES, reply_to
from radioagent.dns.zone import ZoneView

ZONE = "stream.example.org"
VIEW = ZoneView(
    zone=ZONE,
    ttl=20,
    serial=5,
    listener_addresses=tuple(f"192.0.2.{i}" for i in range(1, 4)),
    nodes={"node1": ("192.0.2.1",)},
    nameservers=("node1",),
)


def ask(query: DNSRecord, view: ZoneView = VIEW, *, over_udp: bool = True) -> DNSRecord:
    reply = reply_to(query.pack(), view, over_udp=over_udp)
    assert reply is not None
    return DNSRecord.parse(reply.data)


def test_a_query_for_the_zone_gets_authoritative_addresses_and_no_recursion() -> None:
    query = DNSRecord.question("Stream.Example.Org.", "A")  # names are case-blind
    reply = ask(query)
    assert reply.header.id == query.header.id
    assert (reply.header.aa, reply.header.ra, reply.header.rcode) == (1, 0, RCODE.NOERROR)
    assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert {rr.ttl for rr in reply.rr} == {20}
    assert str(reply.q.qname) == "Stream.Example.Org."


def test_outside_the_zone_is_refused_even_when_recursion_is_desired() -> None:
    reply = ask(DNSRecord.question("example.com", "A"))
    assert (reply.header.rcode, reply.header.aa, reply.rr) == (RCODE.REFUSED, 0, [])


def many_nodes(count: int) -> ZoneView:
    """A zone of `count` IPv6 nodes, all given in one answer."""
    addresses = tuple(f"2001:db8::{i:x}" for i in range(1, count + 1))
    return ZoneView(zone=ZONE, ttl=20, serial=5, listener_addresses=addresses, max_records=count)


def test_a_big_answer_is_truncated_over_udp_and_whole_over_tcp() -> None:
    many = many_nodes(39)
    query = DNSRecord.question(ZONE, "AAAA")
    truncated = ask(query, many)
    assert truncated.header.tc == 1
    assert truncated.rr == []
    assert str(truncated.q.qname) == f"{ZONE}."
    whole = ask(query, many, over_udp=False)
    assert (whole.header.tc, len(whole.rr)) == (0, 39)
    # With EDNS the client may take up to 1232 bytes over UDP: 39 AAAA records fit.
    query.add_ar(EDNS0(udp_len=4096))
    edns = ask(query, many)
    assert (edns.header.tc, len(edns.rr)) == (0, 39)
    assert [rr.rtype for rr in edns.ar] == [QTYPE.OPT]


def test_other_classes_are_refused_and_other_opcodes_not_implemented() -> None:
    chaos = DNSRecord()
    chaos.add_question(DNSQuestion("version.bind", QTYPE.TXT, CLASS.CH))
    assert ask(chaos).header.rcode == RCODE.REFUSED
    update = DNSRecord.question(ZONE, "A")
    update.header.opcode = 5
    assert ask(update).header.rcode == RCODE.NOTIMP


def test_two_questions_are_a_format_error() -> None:
    query = DNSRecord.question(ZONE, "A")
    query.add_question(DNSQuestion(f"node1.{ZONE}", QTYPE.A))
    assert ask(query).header.rcode == RCODE.FORMERR


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x00" * 11,  # shorter than a header
        DNSRecord.question(ZONE, "A").reply().pack(),  # a response: never answered
        b"\x00" * (MAX_QUERY_BYTES + 1),
    ],
)
def test_what_is_not_a_query_gets_no_reply(packet: bytes) -> None:
    assert reply_to(packet, VIEW, over_udp=True) is None


def test_a_query_that_cannot_be_read_gets_formerr_with_its_id() -> None:
    packet = bytearray(DNSRecord.question(ZONE, "A").pack())
    packet[12] = 0xC0  # a compression pointer where the name starts: to itself
    packet[13] = 12
    reply = reply_to(bytes(packet), VIEW, over_udp=True)
    assert reply is not None
    assert reply.data[:2] == packet[:2]
    assert DNSRecord.parse(reply.data).header.rcode == RCODE.FORMERR


def test_broken_packets_never_raise() -> None:
    """Random bytes, and real queries with bytes flipped or cut: each gets a reply or
    none, never an exception."""
    rng = random.Random(1553)
    base = DNSRecord.question(f"node1.{ZONE}", "A").pack()
    for _ in range(3000):
        if rng.random() < 0.3:
            packet = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        else:
            mutated = bytearray(base[: rng.randrange(12, len(base) + 1)])
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            packet = bytes(mutated)
        reply = reply_to(packet, VIEW, over_udp=True)
        if reply is not None:
            assert len(reply.data) <= 1232


def test_flags_the_query_set_are_not_echoed_and_a_dotted_label_is_not_ours() -> None:
    query = DNSRecord.question(ZONE, "A")
    query.header.ad = query.header.cd = 1
    reply = ask(query)
    assert (reply.header.ad, reply.header.cd, reply.header.tc) == (0, 0, 0)
    dotted = DNSRecord.question(ZONE, "A")
    dotted.q.qname = DNSLabel([b"node1.evil", b"stream", b"example", b"org"])
    refused = ask(dotted)
    assert (refused.header.rcode, refused.rr) == (RCODE.REFUSED, [])


def test_a_truncated_reply_keeps_the_opt_record_and_an_unready_zone_is_servfail() -> None:
    many = many_nodes(59)
    query = DNSRecord.question(ZONE, "AAAA")
    query.add_ar(EDNS0(udp_len=4096))
    truncated = ask(query, many)
    assert truncated.header.tc == 1
    assert [rr.rtype for rr in truncated.ar] == [QTYPE.OPT]
    unready = ZoneView(zone=ZONE, ttl=20, serial=0, listener_addresses=(), ready=False)
    assert ask(DNSRecord.question(ZONE, "A"), unready).header.rcode == RCODE.SERVFAIL
