"""radioctl cert: the cluster's certificate as etcd holds it (never its key), and an
operator's request for a new one."""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Any

from radioagent.acme.renewal import ALERT_DAYS_LEFT, next_try, renew_at
from radioagent.acme.state import AcmeState
from radioagent.coordination.state import ClusterState
from radioagent.store.cluster import ClusterStore

EXIT_OK = 0
DAY = 86400


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def certificate_document(state: ClusterState, now: float) -> dict[str, Any]:
    """What `cert status --json` prints. Pure."""
    acme: AcmeState = state.acme
    certificate = acme.certificate
    document: dict[str, Any] = {
        "certificate": None,
        "ordering": acme.ordering,
        "renewal_requested": acme.renewal_requested is not None,
        "last_failure": None,
        "https_nodes": sorted(name for name, node in state.nodes.items() if node.tls_ports),
    }
    if certificate is not None:
        document["certificate"] = {
            "names": list(certificate.names),
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "days_left": round((certificate.not_after - now) / DAY, 1),
            "renew_at": renew_at(certificate),
            "ordered_by": certificate.ordered_by,
            "ordered_at": certificate.ordered_at,
        }
    if acme.failure is not None:
        document["last_failure"] = {
            "at": acme.failure.at,
            "node": acme.failure.node,
            "error": acme.failure.error,
            "retry_at": acme.failure.retry_at,
        }
    return document


def certificate_text(state: ClusterState, now: float) -> str:
    """What `cert status` prints. Pure."""
    acme = state.acme
    certificate = acme.certificate
    if certificate is None:
        lines = ["certificate: none yet"]
    else:
        days_left = (certificate.not_after - now) / DAY
        lines = [
            f"certificate: {', '.join(certificate.names)}",
            f"  valid: {_when(certificate.not_before)} to {_when(certificate.not_after)} "
            f"({days_left:.1f} days left)",
            f"  renewal: from {_when(renew_at(certificate))} (two thirds of its lifetime)",
            f"  ordered by {certificate.ordered_by} at {_when(certificate.ordered_at)}",
        ]
        if days_left < ALERT_DAYS_LEFT:
            lines.append(
                f"  WARNING: under {ALERT_DAYS_LEFT} days left: renewals are failing "
                "(README: runbook for RadioCertificateExpiresSoon)"
            )
    if acme.ordering is not None:
        lines.append(f"ordering now: {acme.ordering}")
    if acme.renewal_requested is not None:
        lines.append("renewal requested: the next node loop orders one")
    if acme.failure is not None:
        lines.append(
            f"last failure: {_when(acme.failure.at)} on {acme.failure.node}: {acme.failure.error}"
        )
        lines.append(f"  next try from {_when(next_try(acme))} at the earliest")
    serving = sorted(name for name, node in state.nodes.items() if node.tls_ports)
    lines.append(f"nodes with HTTPS: {', '.join(serving) or 'none'}")
    return "\n".join(lines)


def cmd_cert_status(store: ClusterStore, arguments: argparse.Namespace) -> int:
    state = store.read_state()
    if arguments.json:
        print(json.dumps(certificate_document(state, time.time()), indent=2, sort_keys=True))
    else:
        print(certificate_text(state, time.time()))
    return EXIT_OK


def cmd_cert_renew(store: ClusterStore, arguments: argparse.Namespace) -> int:
    store.request_renewal(time.time())
    print("renewal requested: a node orders a new certificate within a loop (radioctl cert status)")
    return EXIT_OK


def add_cert_commands(commands: Any) -> None:
    cert = commands.add_parser("cert", help="the cluster's HTTPS certificate (ACME)")
    cert_commands = cert.add_subparsers(dest="cert_command", required=True, metavar="ACTION")
    status = cert_commands.add_parser("status", help="names, validity, renewal, last failure")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_cert_status)
    renew = cert_commands.add_parser("renew", help="order a new certificate now")
    renew.set_defaults(run=cmd_cert_renew)
