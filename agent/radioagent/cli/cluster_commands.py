"""radioctl commands about the cluster rather than mounts: drain, handover, settings."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from radioagent.cli.output import table
from radioagent.settings import with_setting
from radioagent.store.cluster import ClusterStore
from radioagent.validation import ValidationError

EXIT_OK = 0
UNSET_SHOWN = "(unset: each agent's own)"
HANDOVER_WAIT_SECONDS = 10.0
# The request lapses by itself soon after radioctl stops waiting, so a target that never
# takes over cannot keep the others from campaigning for long.
HANDOVER_REQUEST_SECONDS = int(HANDOVER_WAIT_SECONDS) + 5


class NoLeaderChange(Exception):
    """A handover that cannot start (no leader now) or did not end (no new leader in
    time): the cluster is fine, try again (exit 1)."""


def _known_node(store: ClusterStore, name: str) -> None:
    nodes = store.read_state().nodes
    if name not in nodes:
        known = ", ".join(sorted(nodes)) or "none"
        raise ValidationError([f"node {name!r} is not in the cluster (present: {known})"])


def cmd_node_drain(store: ClusterStore, arguments: argparse.Namespace) -> int:
    _known_node(store, arguments.name)
    store.drain(arguments.name, since=int(time.time()))
    print(f"draining {arguments.name}: no new listeners go there; its listeners stay")
    return EXIT_OK


def cmd_node_undrain(store: ClusterStore, arguments: argparse.Namespace) -> int:
    deleted = store.undrain(arguments.name)
    print(f"{arguments.name}: {'takes listeners again' if deleted else 'was not draining'}")
    return EXIT_OK


def cmd_node_forget(store: ClusterStore, arguments: argparse.Namespace) -> int:
    """A node removed for good leaves the list of down nodes; a node that is up stays."""
    if arguments.name in store.read_state().nodes:
        raise ValidationError(
            [f"node {arguments.name!r} is up: stop its agent first (remove-node.yml does)"]
        )
    deleted = store.forget_node(arguments.name)
    print(f"{arguments.name}: {'forgotten' if deleted else 'was not known'}")
    return EXIT_OK


def cmd_leader_handover(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    if state.leader is None:
        raise NoLeaderChange("no leader to hand over from (the cluster is electing one)")
    leader = state.leader
    if arguments.to is not None:
        _known_node(store, arguments.to)
        if arguments.to == leader.name:
            raise ValidationError([f"--to: {arguments.to!r} already leads"])
    elif set(state.nodes) <= {leader.name}:
        raise ValidationError([f"no node but {leader.name} is up to take over"])
    # The request expires by itself if its target never takes over.
    request_lease = store.request_handover(leader, arguments.to, HANDOVER_REQUEST_SECONDS)
    started = time.monotonic()
    while time.monotonic() - started < HANDOVER_WAIT_SECONDS:  # bounded wait for the result
        current = store.leader()
        if current is not None and current.epoch != leader.epoch:
            print(
                f"leader: {current.name} (epoch {current.epoch}), "
                f"{time.monotonic() - started:.2f} s after the request"
            )
            return EXIT_OK
        time.sleep(0.05)
    store.revoke_lease(request_lease)  # withdraw the request: the old rules apply again
    raise NoLeaderChange(f"no new leader within {HANDOVER_WAIT_SECONDS:g} s; request withdrawn")


def shown_setting(value: object) -> str:
    if value is None:
        return UNSET_SHOWN
    return value if isinstance(value, str) else json.dumps(value)


def cmd_config_show(store: ClusterStore, arguments: argparse.Namespace) -> int:
    settings = store.settings()
    if arguments.json:
        print(json.dumps(settings.flat(), indent=2))
    else:
        print(
            table(
                ["SETTING", "VALUE"],
                [[key, shown_setting(item)] for key, item in settings.flat().items()],
            )
        )
    return EXIT_OK


def cmd_config_set(store: ClusterStore, arguments: argparse.Namespace) -> int:
    updated = store.update_settings(
        lambda settings: with_setting(settings, arguments.key, arguments.value)
    )
    flat = updated.flat()
    for key in [key for key in flat if key.startswith(arguments.key)]:
        print(f"{key} = {shown_setting(flat[key])}")
    return EXIT_OK


def add_cluster_commands(commands: Any) -> None:
    node = commands.add_parser("node", help="drain, undrain or forget a node")
    node_commands = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    drain = node_commands.add_parser("drain", help="send no new listeners to the node")
    drain.add_argument("name")
    drain.set_defaults(run=cmd_node_drain)
    undrain = node_commands.add_parser("undrain", help="send listeners to the node again")
    undrain.add_argument("name")
    undrain.set_defaults(run=cmd_node_undrain)
    forget = node_commands.add_parser(
        "forget", help="a node removed for good: no longer listed as down"
    )
    forget.add_argument("name")
    forget.set_defaults(run=cmd_node_forget)

    leader = commands.add_parser("leader", help="hand leadership over")
    leader_commands = leader.add_subparsers(dest="leader_command", required=True, metavar="ACTION")
    handover = leader_commands.add_parser("handover", help="the leader steps down")
    handover.add_argument("--to", metavar="NODE", help="the node that takes over")
    handover.set_defaults(run=cmd_leader_handover)

    config = commands.add_parser("config", help="cluster settings kept in etcd")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show_settings = config_commands.add_parser("show", help="every setting")
    show_settings.add_argument("--json", action="store_true")
    show_settings.set_defaults(run=cmd_config_show)
    set_setting = config_commands.add_parser("set", help="change one setting, validated")
    set_setting.add_argument("key")
    set_setting.add_argument("value")
    set_setting.set_defaults(run=cmd_config_set)
