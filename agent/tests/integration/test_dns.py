"""The cluster's zone, answered by every node's agent: queried with dig and dnspython on
the wire. Node N's front door is on 127.0.0.N, so the answers tell the nodes apart."""

from __future__ import annotations

import random
import socket
import struct
import subprocess

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.harness.agents import TEST_TIMING, AgentNode, RadioCluster
from tests.harness.waiting import wait_for
from tests.integration.conftest import ZONE

pytestmark = pytest.mark.integration

NODE_ADDRESSES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def dig(node: AgentNode, *query: str) -> str:
    result = subprocess.run(
        ["dig", f"@{node.listen_address}", "-p", str(node.dns_port), "+time=2", "+tries=1", *query],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def short(node: AgentNode, name: str, rtype: str = "A", *options: str) -> list[str]:
    return dig(node, "+short", *options, name, rtype).split()


def wait_answer(node: AgentNode, expected: list[str], timeout: float) -> None:
    wait_for(
        lambda: sorted(short(node, ZONE)) == expected,
        timeout=timeout,
        what=f"the zone to answer {expected}",
        explain=lambda: f"answers {short(node, ZONE)}",
    )


def test_every_node_answers_the_zone_with_the_nodes_and_their_names(
    zone_cluster: RadioCluster,
) -> None:
    for node in zone_cluster.nodes:
        wait_answer(node, NODE_ADDRESSES, timeout=10)
        assert sorted(short(node, ZONE, "A", "+tcp")) == NODE_ADDRESSES
        assert short(node, f"node2.{ZONE}") == ["127.0.0.2"]
        assert sorted(short(node, ZONE, "NS")) == [f"node{i}.{ZONE}." for i in (1, 2, 3)]
        soa = short(node, ZONE, "SOA")
        assert soa[:2] == [f"node1.{ZONE}.", f"hostmaster.{ZONE}."]
        full = dig(node, "+norecurse", ZONE, "A")
        assert "status: NOERROR" in full
        assert " aa" in full.split("flags:")[1].split(";")[0]
        assert f"{ZONE}.\t\t20\tIN\tA" in full  # the cluster's default ttl
        assert short(node, ZONE, "AAAA") == []  # IPv4 nodes only
        assert "status: NXDOMAIN" in dig(node, f"node9.{ZONE}", "A")


def test_dnspython_gets_the_same_answers_over_udp_and_tcp(zone_cluster: RadioCluster) -> None:
    node = zone_cluster.nodes[1]
    wait_answer(node, NODE_ADDRESSES, timeout=10)
    query = dns.message.make_query(f"node3.{ZONE}", "A")
    for ask in (dns.query.udp, dns.query.tcp):
        reply = ask(query, node.listen_address, timeout=3, port=node.dns_port)
        assert reply.rcode() == dns.rcode.NOERROR
        assert [item.address for rrset in reply.answer for item in rrset] == ["127.0.0.3"]


def test_a_drained_node_leaves_the_answer_and_a_crashed_one_after_its_lease(
    zone_cluster: RadioCluster,
) -> None:
    asked = zone_cluster.nodes[0]
    wait_answer(asked, NODE_ADDRESSES, timeout=10)
    zone_cluster.drain("node2")
    # Bounds, not targets: bench/dns measures them.
    wait_answer(asked, ["127.0.0.1", "127.0.0.3"], timeout=5)
    assert short(asked, f"node2.{ZONE}") == ["127.0.0.2"]  # its own name stays
    zone_cluster.node("node3").crash()
    wait_answer(asked, ["127.0.0.1"], timeout=TEST_TIMING["ttl"] + 2 * TEST_TIMING["loop_wait"] + 3)


def test_outside_the_zone_is_refused_and_broken_packets_change_nothing(
    zone_cluster: RadioCluster,
) -> None:
    node = zone_cluster.nodes[2]
    wait_answer(node, NODE_ADDRESSES, timeout=10)
    refused = dig(node, "example.com", "A")
    assert "status: REFUSED" in refused
    assert "ANSWER: 0" in refused
    rng = random.Random(53)
    base = dns.message.make_query(f"node1.{ZONE}", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(0.2)
        for count in range(300):
            packet = bytearray(base if count % 2 else rng.randbytes(rng.randrange(1, 600)))
            for _ in range(rng.randrange(1, 5)):
                packet[rng.randrange(len(packet))] = rng.randrange(256)
            udp.sendto(bytes(packet), (node.listen_address, node.dns_port))
        udp.sendto(rng.randbytes(4000), (node.listen_address, node.dns_port))  # over 512: not read
    with socket.create_connection((node.listen_address, node.dns_port), timeout=3) as tcp:
        tcp.sendall(struct.pack("!H", 65535) + b"\0" * 10)  # longer than any query
        assert tcp.recv(1) == b""  # closed by the agent, nothing answered
    with socket.create_connection((node.listen_address, node.dns_port), timeout=3) as tcp:
        tcp.sendall(b"\x00")  # cut short: the agent waits for the rest, then gives up
    assert node.is_running()
    assert sorted(short(node, ZONE)) == NODE_ADDRESSES
    assert short(node, f"node1.{ZONE}", "A", "+tcp") == ["127.0.0.1"]
    assert (node.metric("radio_dns_answers_total", rcode="REFUSED") or 0) >= 1
    assert (node.metric("radio_dns_answers_total", rcode="FORMERR") or 0) >= 1
    assert (node.metric("radio_dns_packets_dropped_total") or 0) >= 1  # the 4000 bytes
    assert zone_cluster.nodes[0].metric("radio_dns_packets_dropped_total") == 0
