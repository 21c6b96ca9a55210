"""The harness's ports: under pytest-xdist each worker draws from its own slice."""

from __future__ import annotations

from tests.harness.ports import ALL_SERVICE_PORTS, worker_port_range


def test_each_worker_has_its_own_slice_and_a_lone_run_the_whole_range() -> None:
    first = worker_port_range({"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "2"})
    second = worker_port_range({"PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"})
    assert first[0] == ALL_SERVICE_PORTS[0]
    assert first[1] < second[0]
    assert second[1] <= ALL_SERVICE_PORTS[1]
    assert second[1] - second[0] > 5000  # plenty for a worker's services
    assert worker_port_range({}) == ALL_SERVICE_PORTS
    one = {"PYTEST_XDIST_WORKER": "gw0", "PYTEST_XDIST_WORKER_COUNT": "1"}
    assert worker_port_range(one) == ALL_SERVICE_PORTS
    assert worker_port_range({"PYTEST_XDIST_WORKER": "odd", "PYTEST_XDIST_WORKER_COUNT": "2"}) == (
        ALL_SERVICE_PORTS
    )
