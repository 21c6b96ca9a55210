"""The harness's own safety net: a test that forgets a service fails the session, and the
service is stopped anyway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import AGENT_DIR

pytestmark = pytest.mark.integration

FORGETFUL_TEST = """
from tests.harness.icecast import IcecastServer

def test_starts_icecast_and_forgets_it():
    server = IcecastServer()
    server.start()
    print("FORGOTTEN PID", server.process.pid)
"""


def test_a_forgotten_service_fails_the_session_and_is_stopped(tmp_path: Path) -> None:
    test_file = tmp_path / "test_forgetful.py"
    test_file.write_text(FORGETFUL_TEST)

    # A separate pytest session with the harness loaded as a plugin, outside this tree.
    inner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-s",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        cwd=AGENT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = inner.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        inner.terminate()  # the harness turns SIGTERM into an interrupt and cleans up
        output, _ = inner.communicate(timeout=30)

    assert "1 passed" in output, output
    assert inner.returncode == 1, output
    assert "HARNESS TEARDOWN FAILURE" in output
    forgotten_pid = int(output.split("FORGOTTEN PID ")[1].split()[0])
    assert not Path(f"/proc/{forgotten_pid}").exists()
