"""The agent's public health, leadership, status and metrics endpoints, on the wire."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request

import pytest

from tests.harness.agents import RadioCluster
from tests.harness.clients import StreamRecorder
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def answers_ok(url: str) -> bool:
    return get(url)[0] == 200


def test_health_ready_and_leader_answer_for_load_balancers(radio_cluster: RadioCluster) -> None:
    leader = radio_cluster.wait_leader()
    for node in radio_cluster.nodes:
        assert get(f"{node.front_door_url}/health")[0] == 200
        wait_for(
            functools.partial(answers_ok, f"{node.front_door_url}/ready"),
            timeout=5,
            what=f"{node.name} to be ready",
        )
        expected = 200 if node.name == leader else 503
        assert get(f"{node.front_door_url}/leader")[0] == expected, node.name


def test_ready_fails_when_the_nodes_icecast_is_down(radio_cluster: RadioCluster) -> None:
    node = radio_cluster.nodes[1]
    wait_for(lambda: get(f"{node.front_door_url}/ready")[0] == 200, timeout=5, what="ready")
    node.icecast.process.kill()
    wait_for(
        lambda: get(f"{node.front_door_url}/ready")[0] == 503,
        timeout=5,
        what="not ready without Icecast",
    )
    _, _, body = get(f"{node.front_door_url}/ready")
    assert b"Icecast does not answer" in body


def test_status_and_metrics_show_the_cluster_and_this_nodes_listeners(
    radio_cluster: RadioCluster,
) -> None:
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": "dj-secret"})
    leader = radio_cluster.wait_leader()
    node = radio_cluster.nodes[2]
    node.wait_serving("/live.mp3")
    listener = StreamRecorder(f"{node.front_door_url}/_stream/live.mp3").start()
    try:

        def listener_counted() -> bool:
            _, _, body = get(f"{node.front_door_url}/metrics")
            return (
                f'radio_mount_listeners{{mount="live.mp3",node="{node.name}"}} 1.0'.encode() in body
            )

        wait_for(listener_counted, timeout=10, what="the listener in the metrics")
        status, headers, body = get(f"{node.front_door_url}/api/v1/status")
        document = json.loads(body)
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == "*"
        assert document["leader"]["name"] == leader
        assert sorted(document["nodes"]) == ["node1", "node2", "node3"]
        assert "source_password" not in json.dumps(document)
        _, _, metrics = get(f"{radio_cluster.node(leader).front_door_url}/metrics")
        assert f'radio_node_leader{{node="{leader}"}} 1.0'.encode() in metrics
        assert b"radio_agent_build_info" in metrics
        node.wait_front_door_serving("/live.mp3")  # a listener request: served or redirected

        def metric_values() -> dict[str, float]:
            _, _, metrics = get(f"{node.front_door_url}/metrics")
            return {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in metrics.decode().splitlines()
                if line and not line.startswith("#")
            }

        wait_for(
            lambda: (
                metric_values()[
                    f'radio_mount_sent_bytes_total{{mount="live.mp3",node="{node.name}"}}'
                ]
                > 0
            ),
            timeout=5,
            what="proxied bytes in the metrics",
        )
        values = metric_values()
        assert (
            values[f'radio_listener_requests_total{{node="{node.name}",outcome="here"}}']
            + values[f'radio_listener_requests_total{{node="{node.name}",outcome="redirect"}}']
            >= 1
        )
    finally:
        listener.stop()
