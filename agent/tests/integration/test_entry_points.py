"""The console scripts the agent's project declares are installed and runnable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from radioagent import __version__

pytestmark = pytest.mark.integration

SCRIPTS_DIR = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["radio-agent", "radioctl"])
def test_console_script_reports_its_version(script: str) -> None:
    result = subprocess.run(
        [str(SCRIPTS_DIR / script), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{script} {__version__}"


@pytest.mark.parametrize(
    "command", [["radio-agent", "--no-such-option"], ["radioctl", "status", "--no-such-option"]]
)
def test_console_script_with_an_unknown_option_exits_2(command: list[str]) -> None:
    result = subprocess.run(
        [str(SCRIPTS_DIR / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr
