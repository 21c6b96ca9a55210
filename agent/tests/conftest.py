"""For every tier: at the end of the session every process the harness started, and
anything those processes started, must be gone; the session fails if not, after killing
them. SIGTERM and SIGHUP interrupt the run like Ctrl-C, so teardown runs then too.

With pytest-xdist each worker sweeps its own services; what it found goes to the
controller (workeroutput), which says it and fails the run: a worker's own exit status
and output are not the run's.

The fixtures that run real services live in tests/integration/conftest.py, so the unit
tier loads without etcd3 or grpc.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Generator

import pytest

from tests.harness.processes import (
    KEPT_RUN_ENV,
    kept_logs,
    kill_processes,
    new_run_name,
    processes_left_in_started_sessions,
    record_failure,
    stop_all_started,
)

HARNESS_PROBLEMS = "harness_problems"
_worker_problems: list[str] = []  # the controller's: what its workers' sweeps found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI cancel or a `timeout` wrapper sends SIGTERM: turn it into an interrupt so that
    # fixture teardown and the session's final sweep still stop every service.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    if not hasattr(config, "workerinput"):  # the controller: its workers share one run
        os.environ.setdefault(KEPT_RUN_ENV, new_run_name())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failure in setup, call or teardown: the services' directories keep their files."""
    report = yield
    if report.failed:
        record_failure(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kept = kept_logs()
    if kept is not None:
        terminalreporter.write_line(f"logs and configs of the failed tests' services: {kept}")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """xdist, in the controller: a worker ended; keep what its sweep found."""
    output = getattr(node, "workeroutput", None) or {}
    _worker_problems.extend(
        f"{getattr(node, 'gateway', node)}: {problem}"
        for problem in output.get(HARNESS_PROBLEMS, [])
    )


def sweep() -> list[str]:
    """Stop what the harness started and kill what those left; what was wrong."""
    forgotten = stop_all_started()
    left_running = processes_left_in_started_sessions()
    kill_processes(list(left_running))
    problems = []
    if forgotten:
        problems.append(f"fixtures left running (now stopped): {', '.join(forgotten)}")
    if left_running:
        problems.append(f"processes our services started were still running: {left_running}")
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = sweep()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller says it
        workeroutput[HARNESS_PROBLEMS] = problems
        return
    problems += _worker_problems
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(f"HARNESS TEARDOWN FAILURE: {problem}", red=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
