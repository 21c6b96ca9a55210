"""bench/chaos's checker: what it asserts from outside the machines, on the wire and in
the host's /proc, while faults come and go.

- at no sampled instant do two nodes answer `/leader` with 200;
- a listener on a node the current fault did not touch never drops;
- a transcoded mount's Liquidsoap never runs on two machines at once, and never on none
  for longer than its takeover bound;
- after a fault heals, every mount is heard on every node within the recovery bound, and
  every transcoder claim in etcd is held by a node that runs it.

What it found goes into the campaign's records (bench/campaign.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import testbed
from campaign import FaultRecord, Stretch, Violation
from checks import ETCDCTL, Listener
from nemesis import liquidsoap_pids

SAMPLE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 1.0


def leads(node: str) -> bool:
    """The node's front door says it leads (200 on /leader); silence is "no"."""
    connection = http.client.HTTPConnection(testbed.node_address(node), 80, timeout=PROBE_TIMEOUT_S)
    try:
        connection.request("GET", "/leader")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def transcoder_hosts(nodes: Sequence[str], mount: str) -> list[str]:
    """The machines that run `mount`'s transcoder, one entry per process."""
    return [node for node in nodes for _ in liquidsoap_pids(node, f"transcoder-{mount}.liq")]


def orphaned_claims(nodes: Sequence[str], prefix: str) -> list[str]:
    """Transcoder claims in etcd whose owner does not run that transcoder. Read through
    the first node whose etcd answers (a member may still be rejoining after the heal)."""
    listed = _first_answer(
        nodes, ["sh", "-c", ETCDCTL + f"get --prefix {prefix}transcoders/ -w json"]
    )
    found = []
    for entry in json.loads(listed.stdout).get("kvs", []):
        mount = _b64(entry["key"]).removeprefix(f"{prefix}transcoders/")
        owner = _b64(entry["value"])
        if owner not in transcoder_hosts(nodes, mount):
            found.append(f"{mount} claimed by {owner}, which does not run it")
    return found


def _first_answer(nodes: Sequence[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`argv` in each node in turn, up to 3 rounds; the last failure if none answers."""
    failure: testbed.TestbedError | None = None
    for _ in range(3):
        for node in nodes:
            try:
                return testbed.run_in(node, argv)
            except testbed.TestbedError as error:
                failure = error
    assert failure is not None  # noqa: S101 - nodes is never empty
    raise failure


def _b64(text: str) -> str:
    return base64.b64decode(text).decode()


class Checker:
    """Samples the invariants in a thread until `stop()`; violations go to the fault
    the campaign says is current (`current`), or to a record of its own between faults."""

    def __init__(
        self,
        nodes: Sequence[str],
        transcoded: Sequence[str],
        takeover_bound_s: float,
        listeners: dict[str, Listener],
    ) -> None:
        self.nodes = tuple(nodes)
        self.transcoded = tuple(transcoded)
        self.takeover_bound_s = takeover_bound_s
        self.listeners = listeners  # node -> its listener; the campaign replaces dropped ones
        self.started = time.monotonic()
        self.current: FaultRecord | None = None
        self.between = FaultRecord(0, "none", "", 0.0)
        self.exempt: set[str] = set()  # nodes the current fault touches
        self.samples = 0
        self._missing_since: dict[str, float] = {}
        self._leaderless = Stretch()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the listeners and the exempt nodes
        self._pool = ThreadPoolExecutor(max_workers=len(self.nodes))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> float:
        return time.monotonic() - self.started

    def report(self, kind: str, detail: str) -> None:
        record = self.current or self.between
        record.violations.append(Violation(round(self.now(), 2), kind, detail))
        print(f"chaos: VIOLATION {kind}: {detail}", flush=True)

    def forgive(self, node: str) -> None:
        """The fault on `node` is over: its listener (dropped, or open but silent after a
        machine died under it) is closed, for the campaign to replace; not a violation."""
        with self._lock:
            listener = self.listeners.pop(node, None)
            if listener is not None:
                listener.close()
            self.exempt.discard(node)

    def listen(self, node: str, listener: Listener) -> None:
        """A new listener on `node`, watched from the next sample."""
        with self._lock:
            self.listeners[node] = listener

    def start(self) -> Checker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.sample()

    def sample(self) -> None:
        self.samples += 1
        leading = [
            n for n, yes in zip(self.nodes, self._pool.map(leads, self.nodes), strict=True) if yes
        ]
        if len(leading) > 1:
            self.report("two_leaders", f"{', '.join(leading)} answer /leader")
        leaderless_for = self._leaderless.observe(not leading, self.now())
        for mount in self.transcoded:
            hosts = transcoder_hosts(self.nodes, mount)
            if len(hosts) > 1:
                self.report("transcoder_twice", f"{mount} on {', '.join(hosts)}")
            if hosts:
                self._missing_since.pop(mount, None)
            else:
                since = self._missing_since.setdefault(mount, self.now())
                if self.now() - since > self.takeover_bound_s:
                    self.report(
                        "transcoder_missing", f"{mount} nowhere for {self.now() - since:.0f} s"
                    )
                    self._missing_since[mount] = self.now()  # once per bound, not per sample
        with self._lock:
            record = self.current or self.between
            record.leaderless_s = max(record.leaderless_s, leaderless_for)
            for node, listener in list(self.listeners.items()):
                if node not in self.exempt and listener.connected():
                    gap = round(time.monotonic() - listener.last_byte_at, 2)
                    record.listener_gap_s = max(record.listener_gap_s, gap)
                if node not in self.exempt and listener_dropped(listener):
                    self.report("listener_dropped", f"the listener on {node}: {_reason(listener)}")
                    if self.listeners.get(node) is listener:
                        self.listeners.pop(node)


def listener_dropped(listener: Listener) -> bool:
    return not listener.connected()


def _reason(listener: Listener) -> str:
    return str(listener.error or "the stream ended")
