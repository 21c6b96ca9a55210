"""The access log: one JSON line per listener, source and title request, written when it
ends (a stream when its connection closes), to the journal under its own identifier
(`journalctl -t radio-agent-access -o cat`), or to stderr outside systemd.

Pages, health checks, metrics and HLS are not logged: monitoring would flood it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from systemd import journal

JOURNAL_IDENTIFIER = "radio-agent-access"
MAX_USER_AGENT = 256  # characters kept: the head bounds it anyway, the journal need not

Sink = Callable[[str], None]


@dataclass(slots=True)
class AccessRecord:
    kind: str  # "listener", "source" or "title"
    client: str
    method: str
    mount: str  # the path asked for: a mount, or what a refused request named
    user_agent: str
    started: float  # Unix time
    started_monotonic: float
    status: int = 0  # 0: no answer was sent (the client left first)
    bytes: int = 0  # sent to a listener; received from a source


def access_line(record: AccessRecord, ended_monotonic: float) -> str:
    return json.dumps(
        {
            "time": datetime.fromtimestamp(record.started, UTC).isoformat(timespec="milliseconds"),
            "kind": record.kind,
            "client": record.client,
            "method": record.method,
            "mount": record.mount,
            "status": record.status,
            "bytes": record.bytes,
            "seconds": round(max(0.0, ended_monotonic - record.started_monotonic), 3),
            "user_agent": record.user_agent[:MAX_USER_AGENT],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def new_record(kind: str, client: str, method: str, path: str, user_agent: str) -> AccessRecord:
    return AccessRecord(kind, client, method, path, user_agent, time.time(), time.monotonic())


def default_sink(enabled: bool) -> Sink | None:
    """The journal when systemd reads the agent's output (it sets JOURNAL_STREAM), else
    stderr; None when the log is off."""
    if not enabled:
        return None
    if os.environ.get("JOURNAL_STREAM"):
        return lambda line: journal.send(
            line, SYSLOG_IDENTIFIER=JOURNAL_IDENTIFIER, PRIORITY=str(journal.LOG_INFO)
        )
    return lambda line: print(line, file=sys.stderr, flush=True)


class AccessLog:
    def __init__(self, sink: Sink | None) -> None:
        self.sink = sink
        self.failures = 0  # lines the sink could not take (a full or gone journal)

    def write(self, record: AccessRecord) -> None:
        if self.sink is None:
            return
        try:
            self.sink(access_line(record, time.monotonic()))
        except OSError:
            self.failures += 1  # the log must never take a listener down
