"""Test data built the same way in every unit test."""

from __future__ import annotations

from radioagent.model import NodeStatus


def node_status(name: str, **fields: object) -> NodeStatus:
    """A healthy replica's report; `fields` override any field."""
    values: dict = {
        "name": name,
        "address": "192.0.2.1",
        "icecast_port": 8001,
        "icecast_up": True,
        "role": "replica",
        "epoch": 3,
        "listeners": {},
        "bandwidth_kbps": 0.0,
        "bandwidth_limit_kbps": None,
        "listener_limit": None,
        "draining": False,
        "agent_version": "test",
    }
    values.update(fields)
    return NodeStatus(**values)
