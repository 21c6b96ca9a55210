"""make deb (scripts/build-deb) on a clone of this repository's last commit: a lintian-clean
package named after the tree it was built from, holding the agent, its commands, its
templates, its unit and its account; built once per tree; a tree without a version is
refused."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.paths import REPOSITORY

BUILD_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("deb") / "repository"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(target)], check=True)
    return target


def git(clone: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=clone, check=True, capture_output=True, text=True
    ).stdout.strip()


def build(clone: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(clone / "scripts" / "build-deb")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], check=True, capture_output=True, text=True
    ).stdout.strip()


def contents(deb: Path) -> set[str]:
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    return {line.split()[-1].removeprefix(".") for line in listing.splitlines()}


def packaged_file(deb: Path, path: str) -> str:
    tar = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
    ).stdout
    return subprocess.run(
        ["tar", "--extract", "--to-stdout", f".{path}"],
        input=tar,
        check=True,
        capture_output=True,
    ).stdout.decode()


@pytest.fixture(scope="module")
def built(clone: Path) -> Path:
    result = build(clone)
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1])


def test_the_package_is_named_after_the_commit_it_was_built_from(clone: Path, built: Path) -> None:
    commits, commit = (
        git(clone, "rev-list", "--count", "HEAD"),
        git(clone, "rev-parse", "--short=10", "HEAD"),
    )
    version = field(built, "Version")
    assert re.fullmatch(rf"\d+\.\d+\.\d+\+git{commits}\.{commit}", version)
    assert built.name == f"radio-agent_{version}_all.deb"
    # radio-agent --version and /metrics read it from here.
    init = packaged_file(built, "/usr/lib/python3/dist-packages/radioagent/__init__.py")
    assert f'__version__ = "{version}"' in init


def test_the_package_holds_the_agent_its_templates_unit_and_account(built: Path) -> None:
    files = contents(built)
    for path in (
        "/usr/bin/radio-agent",
        "/usr/bin/radioctl",
        "/usr/lib/python3/dist-packages/radioagent/daemon.py",
        "/usr/share/radio-agent/templates/icecast.xml.j2",
        "/usr/share/radio-agent/templates/transcoder.liq.j2",
        "/usr/share/radio-agent/templates/programme.liq.j2",
        "/usr/lib/sysusers.d/radio-agent.conf",
    ):
        assert path in files
    # debhelper puts units in /lib on Debian 12, /usr/lib from Debian 13 on.
    assert files & {
        "/lib/systemd/system/radio-agent.service",
        "/usr/lib/systemd/system/radio-agent.service",
    }
    assert not [path for path in files if "/tests/" in path or "__pycache__" in path]
    depends = {name.strip().split()[0] for name in field(built, "Depends").split(",")}
    assert {
        "python3-etcd3",
        "python3-aiohttp",
        "python3-yaml",
        "python3-systemd",
        "icecast2",
    } <= depends


def test_lintian_finds_no_error(built: Path) -> None:
    result = subprocess.run(
        ["lintian", "--fail-on", "error", str(built)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_same_tree_is_not_built_again(clone: Path, built: Path) -> None:
    before = built.stat().st_mtime_ns
    again = build(clone)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Path(again.stdout.strip().splitlines()[-1]) == built
    assert "already built" in again.stderr
    assert built.stat().st_mtime_ns == before


def test_a_changed_tree_is_another_version(clone: Path, built: Path) -> None:
    built_version = field(built, "Version")
    init = clone / "agent" / "radioagent" / "__init__.py"
    original = init.read_text()
    init.write_text(original + "# a change\n")
    try:
        result = build(clone)
    finally:
        init.write_text(original)
    assert result.returncode == 0, result.stderr[-2000:]
    changed = Path(result.stdout.strip().splitlines()[-1])
    assert changed.name.startswith(built.name.removesuffix("_all.deb") + ".m")
    newer = ["dpkg", "--compare-versions", field(changed, "Version"), "gt", built_version]
    assert subprocess.run(newer, check=False).returncode == 0
    assert not built.exists()  # build/ keeps the one package the roles will install
    # Back to the committed tree: its package again, though its version is the lower one.
    again = build(clone)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Path(again.stdout.strip().splitlines()[-1]) == built
    assert not changed.exists()


def test_the_version_a_tree_would_have_is_printed_without_a_build(clone: Path, built: Path) -> None:
    printed = subprocess.run(
        [str(clone / "scripts" / "build-deb"), "--print-version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert printed == field(built, "Version")


def test_a_tree_without_a_version_is_refused(clone: Path) -> None:
    init = clone / "agent" / "radioagent" / "__init__.py"
    original = init.read_text()
    init.write_text(original.replace("__version__ = ", "version = "))
    try:
        result = build(clone)
    finally:
        init.write_text(original)
    assert result.returncode == 1
    assert "no __version__ line" in result.stderr
