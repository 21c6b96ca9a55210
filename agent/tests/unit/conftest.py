"""Shared values for unit tests: a valid agent config pointing at the repo's templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from radioagent.config import AgentConfig, parse_config

REPO_TEMPLATES = str(Path(__file__).resolve().parents[3] / "templates")


@pytest.fixture
def agent_config() -> AgentConfig:
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
            "templates_dir": REPO_TEMPLATES,
        }
    )
