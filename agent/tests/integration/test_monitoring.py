"""Debian's Prometheus scraping live agents, with the project's alert rules and dashboard:
dead air pages and clears, and every dashboard query runs against real metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest

from radioagent.settings import ClusterSettings
from tests.harness.agents import RadioCluster, connect_source
from tests.harness.clients import SourceClient
from tests.harness.icecast import REPO_DIR
from tests.harness.media import AudioSample
from tests.harness.prometheus import PrometheusServer, dashboard_expressions
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

DASHBOARD = REPO_DIR / "roles/monitoring/files/grafana/radio-cluster.json"
PASSWORD = "dj-secret"


@pytest.fixture
def prometheus(radio_cluster: RadioCluster) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        {node.name: urlparse(node.front_door_url).netloc for node in radio_cluster.nodes}
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


def dead_air_firing(prometheus: PrometheusServer) -> set[str]:
    return {
        alert["labels"]["mount"]
        for alert in prometheus.firing()
        if alert["labels"]["alertname"] == "RadioDeadAir"
    }


def test_dead_air_pages_and_clears_and_the_dashboard_queries_run(
    radio_cluster: RadioCluster,
    prometheus: PrometheusServer,
    source_client_factory: Callable[..., SourceClient],
    long_mp3_audio: AudioSample,
) -> None:
    radio_cluster.set_settings(ClusterSettings(dead_air_seconds=2))
    radio_cluster.store().create_mount({"name": "live.mp3", "source_password": PASSWORD})
    radio_cluster.store().create_mount({"name": "talk.mp3", "source_password": PASSWORD})
    radio_cluster.store().create_mount(  # its transcoder feeds it, silence while live.mp3 is off
        {
            "name": "low.mp3",
            "source_password": "transcoder-secret",
            "transcode": {"parent": "live.mp3", "format": {"codec": "mp3", "bitrate_kbps": 48}},
        }
    )
    radio_cluster.wait_leader()
    wait_for(
        lambda: dead_air_firing(prometheus) >= {"live.mp3", "talk.mp3"},
        timeout=20,
        what="RadioDeadAir firing for the mounts without a studio",
        explain=lambda: str(prometheus.api("alerts")) + prometheus.process.log_tail(),
    )
    source = wait_for(
        lambda: connect_source(
            radio_cluster.nodes[0], source_client_factory, "/live.mp3", PASSWORD, long_mp3_audio
        ),
        timeout=10,
        what="the studio connected",
    )
    wait_for(
        lambda: dead_air_firing(prometheus) == {"talk.mp3"},
        timeout=30,
        what="RadioDeadAir cleared for the studio's and the transcoder's mounts",
        explain=lambda: str(prometheus.api("alerts")),
    )
    assert prometheus.query("sum(radio_node_leader)")["data"]["result"][0]["value"][1] == "1"

    expressions = dashboard_expressions(DASHBOARD)
    assert len(expressions) >= 10
    for expression in expressions:
        answer = prometheus.query(expression)
        assert answer["status"] == "success", f"{expression}: {answer}"
    wait_for(  # rate() needs two scrapes of the byte counters with audio in between
        lambda: all(prometheus.query(expression)["data"]["result"] for expression in expressions),
        timeout=15,
        what="every dashboard query to return data",
        explain=lambda: "\n".join(
            e for e in expressions if not prometheus.query(e)["data"]["result"]
        ),
    )
    source.stop()
