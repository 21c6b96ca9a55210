"""radioctl's read of the cluster: everything under the prefix, decoded like the agent."""

from __future__ import annotations

from radioagent.cli.connection import ClusterConnection
from radioagent.coordination.state import ClusterState, decode_range_response


def read_state(connection: ClusterConnection) -> ClusterState:
    response = connection.client().get_prefix_response(connection.layout.root)
    return decode_range_response(connection.layout, response)
