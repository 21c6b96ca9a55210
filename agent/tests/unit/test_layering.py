"""The shape the code keeps: only the cluster store speaks etcd or knows its keys."""

from __future__ import annotations

import ast
from pathlib import Path

import radioagent

PACKAGE = Path(radioagent.__file__).parent
STORE = PACKAGE / "store"
ETCD_ONLY = ("etcd3", "grpc", "radioagent.store.keys")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
    return names


def test_only_the_store_imports_etcd_or_its_key_layout() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if STORE not in path.parents
        for name in imported_modules(path)
        if name.startswith(ETCD_ONLY)
    }
    assert not offenders


def test_the_check_sees_the_store_s_own_imports() -> None:
    """Guards the test above against finding nothing because it reads nothing."""
    assert "etcd3" in imported_modules(STORE / "client.py")
    assert "radioagent.store.keys" in imported_modules(STORE / "cluster.py")
