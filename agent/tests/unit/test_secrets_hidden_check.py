"""The default scenario's check that a converge at -vv --diff shows no generated secret
(molecule/testbed/checks.py secrets-hidden) fails when one is shown."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.paths import REPOSITORY

KEY_BODY = "MHcCAQEEIBq1c2VjcmV0LWtleS1ib2R5LWZvci10aGUtdGVzdC0wMTIzNDU2Nzg5"


def checks() -> ModuleType:
    sys.path.insert(0, str(REPOSITORY / "molecule" / "testbed"))
    return importlib.import_module("checks")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "credentials").mkdir()
    for name, secret in (
        ("node1-icecast-admin", "A" * 32),
        ("node1-icecast-source", "B" * 32),
        ("cluster-failsafe-key", "C" * 48),
    ):
        (tmp_path / "credentials" / name).write_text(secret + "\n")
    (tmp_path / "pki" / "etcd").mkdir(parents=True)
    (tmp_path / "pki" / "etcd" / "node1-client.key").write_text(
        f"-----BEGIN EC PRIVATE KEY-----\n{KEY_BODY}\n-----END EC PRIVATE KEY-----\n"
    )
    return tmp_path


def test_an_output_without_secrets_passes(site: Path, tmp_path: Path) -> None:
    log = tmp_path / "site.log"
    log.write_text("TASK [etcd : Install]\nchanged: [node1]\nPLAY RECAP\nnode1 : ok=3\n")
    checks().check_secrets_hidden(str(log), str(site))


@pytest.mark.parametrize(
    ("shown", "name"),
    [
        ("+  admin_password: " + "A" * 32, "node1-icecast-admin"),
        ('"content": "' + KEY_BODY[4:60] + '"', "node1-client.key"),
        ("key: " + "C" * 48, "cluster-failsafe-key"),
    ],
)
def test_a_secret_in_the_output_fails_naming_it(
    site: Path, tmp_path: Path, shown: str, name: str
) -> None:
    log = tmp_path / "site.log"
    log.write_text(f"--- before\n+++ after\n{shown}\nPLAY RECAP\nnode1 : ok=3\n")
    module = checks()
    with pytest.raises(module.CheckFailed, match=name):
        module.check_secrets_hidden(str(log), str(site))
