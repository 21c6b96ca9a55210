"""`radio-agent`: the node daemon's entry point."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import resource
import signal
import sys
import time
from pathlib import Path

from radioagent import __version__
from radioagent.acme.keeper import CertificateKeeper
from radioagent.config import AgentConfig, load_config
from radioagent.failsafe_link import FailsafeLink
from radioagent.frontdoor.certificate import CertificateError, check_served, server_context
from radioagent.frontdoor.server import FrontDoor
from radioagent.heap import limit_arenas
from radioagent.holding.feeder import HoldingFeeds
from radioagent.icecast.control import IcecastControl
from radioagent.localapi import LocalApi
from radioagent.loop import Adapters, Agent, ZoneServer, request_timeout
from radioagent.settings import DEFAULT_DNS_TTL
from radioagent.store.agent_store import AgentStore
from radioagent.traffic.prediction import report_window
from radioagent.transcoding.supervisor import TranscoderSupervisor
from radioagent.validation import ValidationError

DEFAULT_CONFIG_PATH = "/etc/radio-agent/config.yml"
EXIT_BAD_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radio-agent",
        description="Node agent of a self-healing Icecast cluster.",
    )
    parser.add_argument("--version", action="version", version=f"radio-agent {__version__}")
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG_PATH, help=f"YAML file (default {DEFAULT_CONFIG_PATH})"
    )
    parser.add_argument(
        "--check-config", action="store_true", help="validate the configuration and exit"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def raise_open_files_limit() -> None:
    """Each listener is a socket: take the hard limit on open files (Linux's default soft
    limit of 1024 would cap a node near 1,000 listeners)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def icecast_local_host(bind_address: str) -> str:
    """Where this node's agent reaches its own Icecast."""
    return "127.0.0.1" if bind_address in ("0.0.0.0", "::", "") else bind_address  # noqa: S104


def check_event_loop(config: AgentConfig) -> None:
    if config.event_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise ValidationError(["event_loop: uvloop is not installed (Debian: python3-uvloop)"])


def check_certificate(config: AgentConfig) -> None:
    """With HTTPS ports, the certificate and key must load as a pair: a foreign key or a
    file that is not PEM is the operator's to fix, before anything starts."""
    door = config.front_door
    if (
        door.tls_ports
        and door.tls_cert_file
        and door.tls_key_file
        and config.acme.directory_url is None
    ):
        try:
            check_served(door.tls_cert_file, door.https_name)
            server_context(door.tls_cert_file, door.tls_key_file)
        except CertificateError as error:
            raise ValidationError([str(error)]) from error


def build_dns(config: AgentConfig) -> ZoneServer | None:
    """The zone's server on the nodes that answer for it; imported only there, so the
    other nodes never load the DNS library (its 3 MB)."""
    if config.dns.zone is None:
        return None
    from radioagent.dns.server import DnsServer  # noqa: PLC0415 - see above
    from radioagent.dns.zone import ZoneView  # noqa: PLC0415

    # Not ready (SERVFAIL) until the agent has read the cluster state: see Agent.zone_view.
    empty = ZoneView(
        zone=config.dns.zone, ttl=DEFAULT_DNS_TTL, serial=0, listener_addresses=(), ready=False
    )
    return DnsServer(config.dns.bind_address, config.dns.port, empty)


def build_agent(config: AgentConfig) -> Agent:
    """The agent with the real adapters. They call back into the agent (the watch wakes it,
    the servers read its view), hence lambdas bound once `agent` exists."""
    agent: Agent
    store = AgentStore(
        config.etcd,
        request_timeout(config.timing),
        on_change=lambda: agent.wake(),  # noqa: PLW0108 - agent is bound below
    )
    adapters = Adapters(
        store=store,
        icecast=IcecastControl(config.icecast),
        holding=HoldingFeeds(config.icecast.port, config.icecast.source_password, config.holding),
        transcoders=TranscoderSupervisor(
            config.transcoding.liquidsoap_command,
            config.transcoding.user,
            Path(config.transcoding.run_dir),
        ),
        local_api=LocalApi(config.local_api, lambda: agent.local_view()),  # noqa: PLW0108
        front_door=FrontDoor(
            config.front_door,
            config.node_name,
            lambda: agent.snapshot(),  # noqa: PLW0108
            (icecast_local_host(config.icecast.bind_address), config.icecast.port),
            prediction_window=report_window(config.timing.loop_wait),
            store_title=store.set_title,
            answer_failsafe=None
            if config.failsafe.key is None
            else lambda query: agent.answer_failsafe(query),  # noqa: PLW0108
        ),
        dns=build_dns(config),
        certificates=None
        if config.acme.directory_url is None
        else CertificateKeeper(config, store),
        failsafe=None
        if config.failsafe.key is None
        else FailsafeLink(
            config.failsafe.key,
            config.node_name,
            time.monotonic,
            state_file=Path(config.failsafe.state_file),
        ),
    )
    agent = Agent(config, adapters)
    return agent


async def run_agent(config: AgentConfig) -> None:
    agent = build_agent(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.request_stop)
    await agent.run()


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        config = load_config(arguments.config)
        check_certificate(config)
        check_event_loop(config)
    except ValidationError as error:
        for problem in error.problems:
            print(f"radio-agent: {arguments.config}: {problem}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if arguments.check_config:
        print(f"radio-agent: {arguments.config}: ok (node {config.node_name})")
        return 0
    logging.basicConfig(
        level=arguments.log_level,
        format=f"%(asctime)s {config.node_name} %(levelname)s %(name)s: %(message)s",
    )
    # grpc logs every failed call on its own; our messages say what matters.
    logging.getLogger("grpc").setLevel(logging.ERROR)
    raise_open_files_limit()
    limit_arenas()
    if config.event_loop == "uvloop":
        import uvloop  # noqa: PLC0415 - loaded only when chosen (its 11 MB)

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(run_agent(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
