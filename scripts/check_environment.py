"""Check that the dev/CI environment is what the project's files say it should be.

- the agent's runtime dependencies import from Debian's packages, as on a node;
- the installed Ansible collections satisfy the pins in requirements.yml (Galaxy is
  unreachable here, so they come from the `ansible` bundle; this keeps the two honest);
- the service binaries and users the test harness needs exist.

Exits 1 with one line per problem.
"""

from __future__ import annotations

import importlib
import json
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO_DIR = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON_DIR = "/usr/lib/python3/dist-packages"
AGENT_RUNTIME_MODULES = ("etcd3", "aiohttp", "jinja2", "prometheus_client", "dnslib")
# Test agents run on Debian's own Python (tests/harness/agents.py): these must import there,
# where ansible-lint's newer cryptography in the virtualenv does not shadow Debian's.
DEBIAN_ONLY_MODULES = ("yaml", "acme.client", "josepy", "cryptography.x509")
SERVICE_BINARIES = (
    "etcd",
    "etcdctl",
    "icecast2",
    "liquidsoap",
    "ffmpeg",
    "ffprobe",
    "wrk",
    "dig",
    "certutil",
    "pebble",
)
SERVICE_USERS = ("icecast2", "liquidsoap")


def runtime_module_problems() -> list[str]:
    problems = []
    for module_name in AGENT_RUNTIME_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            problems.append(f"agent dependency {module_name} does not import: {error}")
            continue
        if not str(module.__file__).startswith(DEBIAN_PYTHON_DIR):
            problems.append(
                f"agent dependency {module_name} comes from {module.__file__}, "
                f"not from Debian's {DEBIAN_PYTHON_DIR}"
            )
    return problems


def debian_python_problems() -> list[str]:
    imports = "; ".join(f"import {module}" for module in DEBIAN_ONLY_MODULES)
    result = subprocess.run(
        ["/usr/bin/python3", "-c", imports], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return [f"Debian's python3 cannot import the agent's modules: {result.stderr.strip()}"]
    return []


def installed_collections() -> dict[str, str]:
    """Name -> version of every collection ansible sees; CalledProcessError if it fails."""
    listing = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-galaxy"),
            "collection",
            "list",
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    versions: dict[str, str] = {}
    # The first path in the listing wins, as it does for ansible itself.
    for collections in json.loads(listing.stdout).values():
        for name, details in collections.items():
            versions.setdefault(name, details["version"])
    return versions


def version_spec(pin: str) -> SpecifierSet:
    """Galaxy accepts a bare version ("1.2.3") or comparisons ("==1.2.3", ">=1,<2")."""
    pin = str(pin).strip()
    return SpecifierSet(pin if pin[0] in "<>=!" else f"=={pin}")


def collection_problems(requirements_file: Path, installed: dict[str, str]) -> list[str]:
    problems = []
    requirements = yaml.safe_load(requirements_file.read_text())
    for entry in requirements.get("collections", []):
        # Galaxy accepts a bare name as well as a mapping with name and version.
        requirement = {"name": entry} if isinstance(entry, str) else entry
        name, pin = requirement["name"], requirement.get("version", "*")
        if name not in installed:
            problems.append(f"collection {name} ({pin}) from requirements.yml is not installed")
        elif pin != "*" and Version(installed[name]) not in version_spec(pin):
            problems.append(f"collection {name} is {installed[name]}, requirements.yml pins {pin}")
    return problems


def system_problems() -> list[str]:
    problems = [
        f"{binary} not found on PATH" for binary in SERVICE_BINARIES if not shutil.which(binary)
    ]
    for user in SERVICE_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            problems.append(f"user {user} does not exist (its Debian package creates it)")
    return problems


def main() -> int:
    try:
        installed = installed_collections()
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"check-environment: cannot list Ansible collections: {error}", file=sys.stderr)
        return 1
    problems = (
        runtime_module_problems()
        + debian_python_problems()
        + collection_problems(REPO_DIR / "requirements.yml", installed)
        + system_problems()
    )
    for problem in problems:
        print(f"check-environment: {problem}", file=sys.stderr)
    if not problems:
        print("check-environment: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
