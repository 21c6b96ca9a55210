"""Where the repository's files are, for every test tier: computed once, here, from this
package's place in the tree (agent/tests/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

AGENT_DIR = Path(__file__).resolve().parents[1]
REPOSITORY = AGENT_DIR.parent
TEMPLATES_DIR = REPOSITORY / "templates"  # the product's templates, as the package holds them
EXAMPLE_CONFIG = AGENT_DIR / "config.example.yml"
FILTER_PLUGINS_DIR = REPOSITORY / "plugins" / "filter"  # the Ansible filters (ansible.cfg)


def etcd_members_filter() -> ModuleType:
    """plugins/filter/etcd_members.py, loaded from its file: Ansible finds it by path, not
    as a package, so tests do the same."""
    spec = importlib.util.spec_from_file_location(
        "etcd_members_filter", FILTER_PLUGINS_DIR / "etcd_members.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
