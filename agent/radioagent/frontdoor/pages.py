"""The front door's own pages: health, readiness, leadership, status and metrics, each a
function of the agent's snapshot (metrics also of the door's counters). Pure."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from radioagent.frontdoor.metrics import metrics_text
from radioagent.frontdoor.status_page import render_status_page
from radioagent.frontdoor.view import AgentSnapshot, FrontDoorStats
from radioagent.status import mount_document, status_document

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True, slots=True)
class PageBody:
    body: bytes
    content_type: str
    status: int = 200


def health(view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool) -> PageBody:
    """Alive: the agent's loop ran recently."""
    if not view.alive:
        return PageBody(f"loop stalled for {view.seconds_since_cycle:.0f} s\n".encode(), TEXT, 503)
    return PageBody(b"ok\n", TEXT)


def ready(view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool) -> PageBody:
    is_ready, reason = view.readiness()
    return PageBody(f"{reason}\n".encode(), TEXT, 200 if is_ready else 503)


def leader(view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool) -> PageBody:
    """200 on the leader only."""
    if view.leading:
        return PageBody(f"leader (epoch {view.epoch})\n".encode(), TEXT)
    return PageBody(b"not the leader\n", TEXT, 503)


def status_json(
    view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool
) -> PageBody:
    document = _document(view, internal)
    if document is None:
        return PageBody(b'{"error": "no cluster state read yet"}', JSON, 503)
    return PageBody(json.dumps(document, sort_keys=True).encode(), JSON)


def mount_json(
    name: str, view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool
) -> PageBody:
    """/api/v1/mounts/<name>: one mount, now playing and its last titles."""
    if view.state is None:
        return PageBody(b'{"error": "no cluster state read yet"}', JSON, 503)
    document = mount_document(view.state, name)
    if document is None:
        return PageBody(b'{"error": "no such mount"}', JSON, 404)
    return PageBody(json.dumps(document, sort_keys=True).encode(), JSON)


def status_html(
    view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool
) -> PageBody:
    document = _document(view, internal)
    if document is None:
        return PageBody(b"No cluster state read from etcd yet.\n", TEXT, 503)
    return PageBody(render_status_page(document).encode(), HTML)


def metrics(view: AgentSnapshot, stats: Callable[[], FrontDoorStats], internal: bool) -> PageBody:
    """Only for the internal networks (monitoring, the nodes): the rest get 403."""
    if not internal:
        return PageBody(b"/metrics is for the cluster's monitoring only\n", TEXT, 403)
    return PageBody(metrics_text(view, stats()), CONTENT_TYPE_LATEST)


# What the status shows of each node only to the internal networks: where its etcd,
# Icecast and agent listen, which listeners never need (they are sent to public_address).
INTERNAL_NODE_FIELDS = ("address", "icecast_port")


def _document(view: AgentSnapshot, internal: bool) -> dict[str, Any] | None:
    if view.state is None:
        return None
    document = status_document(view.state)
    if not internal:
        for node in document["nodes"].values():
            for name in INTERNAL_NODE_FIELDS:
                node.pop(name, None)
    document["node"] = view.node_name
    for name, mount in document["mounts"].items():
        mount["listeners_last_hour"] = view.listeners_last_hour.get(name, [])
    return document


# (snapshot, the door's counters, whether the client is on an internal network)
Renderer = Callable[[AgentSnapshot, Callable[[], FrontDoorStats], bool], PageBody]
API_PREFIX = "/api/"
MOUNT_API_PREFIX = "/api/v1/mounts/"

# Each page takes the snapshot and a reader of the door's counters (called by /metrics
# only: counting walks every hub).
PAGES: dict[str, Renderer] = {
    "/health": health,
    "/ready": ready,
    "/leader": leader,
    "/api/v1/status": status_json,
    "/metrics": metrics,
    "/": status_html,
    "/status": status_html,
}


def page_for(path: str) -> Renderer | None:
    """The page at `path`, if there is one."""
    if path.startswith(MOUNT_API_PREFIX):
        name = path.removeprefix(MOUNT_API_PREFIX)
        return functools.partial(mount_json, name) if name and "/" not in name else None
    return PAGES.get(path)
