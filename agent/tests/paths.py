"""Where the repository's files are, for every test tier: computed once, here, from this
package's place in the tree (agent/tests/)."""

from __future__ import annotations

from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parents[1]
REPOSITORY = AGENT_DIR.parent
TEMPLATES_DIR = REPOSITORY / "templates"  # the product's templates, as the role installs them
EXAMPLE_CONFIG = AGENT_DIR / "config.example.yml"
