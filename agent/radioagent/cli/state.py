"""radioctl's read of the cluster: everything under the prefix, decoded like the agent."""

from __future__ import annotations

from radioagent.cli.connection import ClusterConnection
from radioagent.coordination.state import ClusterState, KeyValue, decode_cluster_state


def read_state(connection: ClusterConnection) -> ClusterState:
    response = connection.client().get_prefix_response(connection.layout.root)
    entries = [
        KeyValue(
            kv.key.decode(errors="replace"), kv.value, kv.create_revision, kv.mod_revision, kv.lease
        )
        for kv in response.kvs
    ]
    return decode_cluster_state(connection.layout, entries, response.header.revision)
