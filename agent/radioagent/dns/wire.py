"""DNS messages in and out, on dnslib (Debian's python3-dnslib): a query's bytes to the
reply's bytes. Pure. A packet that is not a query gets no reply (so two servers can never
answer each other forever); one that is a query but unusable gets FORMERR or NOTIMP.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import AAAA, CLASS, EDNS0, NS, QTYPE, RR, SOA, TXT, A, DNSError, DNSLabel, DNSRecord

from radioagent.dns.zone import (
    SOA_EXPIRE,
    SOA_REFRESH,
    SOA_RETRY,
    Rcode,
    Record,
    Soa,
    ZoneView,
    answer,
)

UDP_PLAIN_BYTES = 512  # a reply over UDP without EDNS
UDP_EDNS_BYTES = 1232  # the most we send over UDP whatever a client offers (DNS flag day 2020)
# A query is small (one question, perhaps an OPT record): bigger packets are not read at
# all, which also keeps dnslib's name decoding (recursive on compression pointers) short.
MAX_QUERY_BYTES = 512
HEADER_BYTES = 12
OPCODE_QUERY = 0
CLASS_ANY = 255  # dnslib names it "*"


@dataclass(frozen=True)
class Reply:
    data: bytes
    rcode: Rcode
    truncated: bool = False


def reply_to(packet: bytes, view: ZoneView, *, over_udp: bool) -> Reply | None:
    """The reply to `packet`, or None when it gets none."""
    if len(packet) < HEADER_BYTES or len(packet) > MAX_QUERY_BYTES or packet[2] & 0x80:
        return None  # not a DNS query's header, or a response (QR set)
    query = _query(packet)
    if isinstance(query, Reply):
        return query
    question = query.q
    offered = next((rr.rclass for rr in query.ar if rr.rtype == QTYPE.OPT), None)
    reply = _reply(query, offered)
    # A label holding a dot would read as two: no such name is ours.
    if question.qclass not in (CLASS.IN, CLASS_ANY) or any(b"." in x for x in question.qname.label):
        return _finish(reply, Rcode.REFUSED, aa=False)
    name = str(question.qname).rstrip(".").lower()
    decided = answer(view, name, QTYPE.get(question.qtype, str(question.qtype)))
    for record in decided.answers:
        reply.add_answer(_rr(record))
    for record in decided.authority:
        reply.add_auth(_rr(record))
    for record in decided.additional:
        reply.add_ar(_rr(record))
    data = _finish(reply, decided.rcode, aa=decided.authoritative).data
    limit = max(UDP_PLAIN_BYTES, min(offered or 0, UDP_EDNS_BYTES))
    if over_udp and len(data) > limit:
        # Question kept, records dropped, TC set: the client asks again over TCP.
        short = _reply(query, offered)
        short.header.tc = 1
        return Reply(
            _finish(short, decided.rcode, aa=decided.authoritative).data, decided.rcode, True
        )
    return Reply(data, decided.rcode)


def _reply(query: DNSRecord, offered: int | None) -> DNSRecord:
    """An empty reply to `query`: its id, question and RD; AA set, no AD, CD or TC carried
    over; our OPT record when the query had one."""
    reply = query.reply(ra=0, aa=1)
    reply.header.ad = reply.header.cd = reply.header.tc = 0
    if offered is not None:
        reply.add_ar(EDNS0(udp_len=UDP_EDNS_BYTES))
    return reply


def _query(packet: bytes) -> DNSRecord | Reply:
    """The query with its one question, or the error reply it gets."""
    try:
        query = DNSRecord.parse(packet)
    except (DNSError, ValueError, IndexError, UnicodeError, RecursionError):
        return _bare(packet, Rcode.FORMERR)
    if query.header.opcode != OPCODE_QUERY:
        return _bare(packet, Rcode.NOTIMP)
    if len(query.questions) != 1:
        return _bare(packet, Rcode.FORMERR)
    return query


def _finish(reply: DNSRecord, rcode: Rcode, *, aa: bool) -> Reply:
    reply.header.rcode = rcode.value
    reply.header.aa = int(aa)
    return Reply(reply.pack(), rcode)


def _bare(packet: bytes, rcode: Rcode) -> Reply:
    """A header-only reply to a query that could not be read: its id and opcode kept,
    QR set, no question."""
    flags = (packet[2] & 0x78) | 0x80  # opcode kept, QR set; AA, TC, RD clear
    header = packet[:2] + bytes([flags, rcode.value]) + bytes(8)
    return Reply(header, rcode)


def _rr(record: Record) -> RR:
    value = record.value
    rdata: A | AAAA | NS | SOA | TXT
    if record.rtype == "TXT" and isinstance(value, str):
        rdata = TXT(value)
    elif record.rtype == "A":
        rdata = A(value)
    elif record.rtype == "AAAA":
        rdata = AAAA(value)
    elif record.rtype == "NS":
        rdata = NS(DNSLabel(value))
    elif isinstance(value, Soa):
        rdata = SOA(
            DNSLabel(value.primary),
            DNSLabel(value.mailbox),
            (value.serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, value.minimum),
        )
    else:
        raise TypeError(f"no {record.rtype} record from {value!r}")
    return RR(record.name, getattr(QTYPE, record.rtype), rdata=rdata, ttl=record.ttl)
