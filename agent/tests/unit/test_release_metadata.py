"""The versions a release names in several files agree: the agent's, the collection's and
the package's; one minimum ansible-core for the collection and every role."""

from __future__ import annotations

import re

import yaml

from radioagent import __version__
from tests.paths import REPOSITORY


def read_yaml(relative: str) -> dict:
    loaded = yaml.safe_load((REPOSITORY / relative).read_text())
    assert isinstance(loaded, dict), relative
    return loaded


def test_the_collection_has_the_agents_version() -> None:
    assert read_yaml("galaxy.yml")["version"] == __version__


def test_the_agents_version_is_one_a_collection_and_a_package_accept() -> None:
    # Galaxy wants semantic versions; scripts/build-deb appends +git... to it.
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_every_role_asks_for_the_collections_minimum_ansible() -> None:
    required = read_yaml("meta/runtime.yml")["requires_ansible"]
    minimum = re.fullmatch(r">=(\d+\.\d+)(\.0)?", required)
    assert minimum, required
    roles = sorted(path.parent.parent.name for path in REPOSITORY.glob("roles/*/meta/main.yml"))
    assert roles
    found = {
        role: read_yaml(f"roles/{role}/meta/main.yml")["galaxy_info"]["min_ansible_version"]
        for role in roles
    }
    assert found == dict.fromkeys(roles, minimum.group(1))


def test_the_playbooks_find_the_etcd_rule_where_the_collection_keeps_it() -> None:
    # Playbooks run from a collection load filters from playbooks/filter_plugins only.
    linked = REPOSITORY / "playbooks" / "filter_plugins" / "etcd_members.py"
    assert linked.is_symlink()
    assert linked.resolve() == (REPOSITORY / "plugins" / "filter" / "etcd_members.py").resolve()


def test_every_playbook_has_a_name_the_collection_can_call() -> None:
    # radio.cluster.<name>: letters, digits and underscores only; a hyphenated playbook
    # is reached through its underscored twin, which imports it.
    playbooks = REPOSITORY / "playbooks"
    names = {path.stem for path in playbooks.glob("*.yml")}
    callable_names = {name for name in names if re.fullmatch(r"[a-z_][a-z0-9_]*", name)}
    for name in names - callable_names:
        twin = playbooks / f"{name.replace('-', '_')}.yml"
        assert twin.stem in callable_names, name
        assert f"import_playbook: {name}.yml" in twin.read_text()
    assert {"site", "add_node", "remove_node", "upgrade", "restore"} <= callable_names
