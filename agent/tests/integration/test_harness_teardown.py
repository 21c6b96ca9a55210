"""The harness's own safety net: a test that forgets a service fails the session, and the
service is stopped anyway; a failed test's services keep their files. Each as a run of
its own, plain and with a pytest-xdist worker (as `make test` runs): a worker's output
and exit status are not the run's, so what it finds must reach the controller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import AGENT_DIR

pytestmark = pytest.mark.integration

FORGETFUL_TEST = """
import os
from pathlib import Path
from tests.harness.icecast import IcecastServer

def test_starts_icecast_and_forgets_it():
    server = IcecastServer()
    server.start()
    Path(os.environ["TOLD"]).write_text(str(server.process.pid))
"""
WORKERS = pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["plain", "xdist"])


def inner_run(test_file: Path, workers: list[str], environment: dict[str, str]) -> tuple[int, str]:
    """A separate pytest session with the harness loaded as a plugin, outside this tree
    (a run of its own: not this run's name for kept logs); its exit code and output."""
    inner = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.conftest", "-s", "-q"),
            *("-p", "no:cacheprovider", "--rootdir", str(test_file.parent), *workers),
            str(test_file),
        ],
        cwd=AGENT_DIR,
        env={
            **{name: value for name, value in os.environ.items() if name != "RADIO_TEST_RUN"},
            **environment,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = inner.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        inner.terminate()  # the harness turns SIGTERM into an interrupt and cleans up
        output, _ = inner.communicate(timeout=30)
    return inner.returncode, output


@WORKERS
def test_a_forgotten_service_fails_the_session_and_is_stopped(
    tmp_path: Path, workers: list[str]
) -> None:
    test_file = tmp_path / "test_forgetful.py"
    test_file.write_text(FORGETFUL_TEST)
    told = tmp_path / "told"

    returncode, output = inner_run(test_file, workers, {"TOLD": str(told)})

    assert "1 passed" in output, output
    assert returncode == 1, output
    assert "HARNESS TEARDOWN FAILURE" in output
    forgotten_pid = int(told.read_text())
    assert not Path(f"/proc/{forgotten_pid}").exists()


KEPT_LOGS_TESTS = """
import os
from pathlib import Path
import pytest
from tests.harness.icecast import IcecastServer

@pytest.fixture
def icecast():
    server = IcecastServer()
    server.start()
    yield server
    server.stop()

def test_fails_with_icecast_running(icecast):
    Path(os.environ["TOLD"], "kept").write_text(str(icecast.directory.path))
    assert False

def test_passes_with_icecast_running(icecast):
    Path(os.environ["TOLD"], "gone").write_text(str(icecast.directory.path))
"""


@WORKERS
def test_a_failed_tests_service_directory_is_kept_and_a_passing_ones_is_not(
    tmp_path: Path, workers: list[str]
) -> None:
    test_file = tmp_path / "test_kept.py"
    test_file.write_text(KEPT_LOGS_TESTS)
    told = tmp_path / "told"  # what the inner tests tell (a worker's output is lost)
    told.mkdir()
    kept_root = tmp_path / "kept"
    _, output = inner_run(
        test_file, workers, {"RADIO_TEST_LOGS": str(kept_root), "TOLD": str(told)}
    )
    assert "1 failed, 1 passed" in output, output
    kept_directory = Path((told / "kept").read_text())
    gone_directory = Path((told / "gone").read_text())
    (run,) = kept_root.iterdir()
    assert f"failed tests' services: {run}" in output
    (failed_test,) = run.iterdir()
    assert "test_fails_with_icecast_running" in failed_test.name
    kept = failed_test / kept_directory.name
    assert "<icecast>" in (kept / "icecast.xml").read_text()
    assert (kept / "stdout.log").is_file()
    assert not list(kept_root.rglob(gone_directory.name))
    assert not kept_directory.exists()  # removed all the same
