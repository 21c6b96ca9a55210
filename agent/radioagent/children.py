"""Short-lived Python children of the agent: work whose libraries the agent should not
keep in memory for the rest of its life (an ACME order, reading a certificate) runs in a
`python3 -m radioagent...` process of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import radioagent


def python_module(module: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run `module` of this package in a child, with the
    agent's own Python and this very package (wherever it is installed)."""
    package_parent = Path(radioagent.__file__).resolve().parent.parent
    return [sys.executable, "-m", module], {**os.environ, "PYTHONPATH": str(package_parent)}
