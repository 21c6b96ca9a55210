"""Shared values for unit tests: a valid agent config pointing at the repo's templates."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from radioagent.config import AgentConfig, parse_config
from tests.paths import TEMPLATES_DIR


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: a Unix socket's path must stay under 108
    bytes, and pytest's tmp_path under its workers (popen-gw0/...) does not."""
    with tempfile.TemporaryDirectory(prefix="rt-") as directory:
        yield Path(directory)


@pytest.fixture
def templates_dir() -> str:
    """The repository's templates/, where the agent's templates_dir points in unit tests."""
    return str(TEMPLATES_DIR)


@pytest.fixture
def agent_config(templates_dir: str) -> AgentConfig:
    return parse_config(
        {
            "node": {"name": "node1", "address": "10.0.0.1"},
            "icecast": {
                "port": 8001,
                "admin_password": "admin-secret",
                "source_password": "node-internal",
                "config_path": "/etc/icecast2/icecast.xml",
                "reload_command": ["true"],
            },
            "templates_dir": templates_dir,
        }
    )
