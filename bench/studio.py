"""Studio benchmark: song titles, and studios across leader changes, on real etcd (3
members), 3 Icecasts and 3 agents on loopback.

Each round runs two clusters one after the other, the same way:
- `ride_through`: the agents as they ship (a studio's audio waits in the front door
  while no leader takes it);
- `today`: `studio_backlog_seconds: 0`, the behaviour before riding through: a leader
  change cuts every studio and its encoder reconnects.
In each, two studios stream pink noise (every block of it unique) through the front door:
one through a node that survives (mount a.mp3), one through the leader (b.mp3). Like an
encoder, a studio whose connection drops reconnects after `--retry` seconds (to its node,
or to another one if its node is gone) and goes on from the audio of that moment: what
was played meanwhile is lost. Listeners on the two other nodes record both mounts.
Measured around a leader crash (agent and Icecast killed) and then a graceful handover
(radioctl's request):
- studio reconnections; seconds of studio audio a listener never got (the largest skip
  in what it received); the extra delay once recovered (how much later than before the
  change a listener hears the studio); listeners dropped on surviving nodes;
- title propagation: 20 updates sent to the nodes in turn, seconds until ICY listeners
  on every node have each (ride_through cluster).
The last stdout line is one JSON object; bench/results/studio.json gets the same.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import quote

from benchlib import agent_pid, report, require_root, running_cluster

from tests.harness.agents import AgentNode, RadioCluster  # benchlib put agent/ on the path
from tests.harness.clients import SourceClient, StreamRecorder, listen
from tests.harness.media import AudioSample, make_mp3
from tests.harness.ports import LOOPBACK
from tests.harness.titles import TitleListener
from tests.harness.waiting import wait_for

DJ_CREDENTIAL = "dj-secret"
BLOCK = 1024
TITLE_UPDATES = 20
SETTLE_SECONDS = 6.0  # after a change, how long to let listeners catch up before judging


@dataclass
class Studio:
    """An encoder on a raw socket: real-time audio, reconnecting after `retry` seconds."""

    nodes: list[AgentNode]  # where it connects: the first that is up
    mount: str
    audio: AudioSample
    retry: float
    reconnects: int = 0
    position: int = 0  # bytes of `audio` played so far (sent or lost)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _client: SourceClient | None = None

    def start(self) -> Studio:
        self._connect()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _connect(self) -> None:
        for node in self.nodes:
            if not node.is_running():
                continue
            client = SourceClient(
                LOOPBACK, node.front_door_port, f"/{self.mount}", password=DJ_CREDENTIAL
            )
            try:
                if client.connect(timeout=2).status == 200:
                    self._client = client
                    return
            except OSError:
                pass
            client.stop()
        self._client = None

    def _run(self) -> None:
        rate = self.audio.bytes_per_second
        data = self.audio.data
        started = time.monotonic()
        burst = int(2 * rate)
        while not self._stop.is_set() and self.position < len(data):
            due = min(len(data), int((time.monotonic() - started) * rate) + burst)
            client = self._client
            if client is not None and due > self.position:
                try:
                    client.send(data[self.position : due])
                except OSError:
                    client.stop()
                    self._client = None
            self.position = due  # played, whether it went out or not
            if self._client is None:
                if self._stop.wait(self.retry):
                    break
                self.reconnects += 1
                self._connect()
                continue
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            self._client.stop()


def studio_skips(received: bytes, sent: bytes) -> list[int]:
    """For consecutive blocks of the studio's own bytes in what a listener received, the
    studio bytes between them (0: none; negative: some came twice)."""
    positions = [
        position
        for start in range(0, len(received) - BLOCK, BLOCK)
        if (position := sent.find(received[start : start + BLOCK])) >= 0
    ]
    return [later - (earlier + BLOCK) for earlier, later in itertools.pairwise(positions)]


def delay_seconds(listener: StreamRecorder, studio: Studio) -> float | None:
    """How far behind the studio a listener is now: the audio it played minus what the
    listener last got of it."""
    played = studio.position
    tail = bytes(listener.body[-4 * BLOCK :])
    for start in range(len(tail) - BLOCK, -1, -BLOCK):
        position = studio.audio.data.find(tail[start : start + BLOCK])
        if position >= 0:
            return (played - (position + BLOCK + len(tail) - start - BLOCK)) / (
                studio.audio.bytes_per_second
            )
    return None


def takes_source(node: AgentNode, mount: str) -> bool:
    return f"/_live/{mount}" in node.icecast.all_sources()


def heard_everywhere(listeners: list[StreamRecorder], audio: bytes, since: int) -> bool:
    return all(
        len(listener.body) > since + 8 * BLOCK
        and audio.find(bytes(listener.body[-2 * BLOCK : -BLOCK])) >= 0
        for listener in listeners
    )


def measure_change(
    cluster: RadioCluster,
    studios: dict[str, Studio],
    listeners: dict[str, list[StreamRecorder]],
    *,
    crash: bool,
) -> dict:
    leader = cluster.node(cluster.wait_leader())
    before = {
        mount: statistics.median(
            value for listener in listeners[mount] if (value := delay_seconds(listener, studio))
        )
        for mount, studio in studios.items()
    }
    reconnects = {mount: studio.reconnects for mount, studio in studios.items()}
    marks = {mount: [len(listener.body) for listener in listeners[mount]] for mount in studios}
    if crash:
        leader.crash()
    else:
        store = cluster.store()
        record = store.leader()
        if record is None:
            raise RuntimeError("no leader to hand over from")
        store.request_handover(record, None, 30)
    new_leader = cluster.node(cluster.wait_leader(timeout=30, other_than=leader.name))
    for mount, studio in studios.items():
        wait_for(
            partial(takes_source, new_leader, mount), timeout=60, what=f"{mount} on the new leader"
        )
        wait_for(
            partial(heard_everywhere, listeners[mount], studio.audio.data, min(marks[mount])),
            timeout=60,
            what=f"{mount} heard again",
        )
    time.sleep(SETTLE_SECONDS)  # let the listeners run on a while: the delay is judged then
    result = {}
    for mount, studio in studios.items():
        after = [
            value for listener in listeners[mount] if (value := delay_seconds(listener, studio))
        ]
        skips = [
            skip
            for listener, mark in zip(listeners[mount], marks[mount], strict=True)
            for skip in studio_skips(
                bytes(listener.body[max(0, mark - 64 * BLOCK) :]), studio.audio.data
            )
        ]
        result[mount] = {
            "reconnects": studio.reconnects - reconnects[mount],
            "audio_lost_s": round(max(0, *skips) / studio.audio.bytes_per_second, 3),
            "extra_delay_s": round(statistics.median(after) - before[mount], 3),
        }
    return {"leader_was": leader.name, "studios": result}


def measure_titles(cluster: RadioCluster) -> list[float]:
    """Seconds from sending each title to a node until ICY listeners on every node have it."""
    listeners = [TitleListener(f"{node.front_door_url}/_stream/a.mp3") for node in cluster.nodes]
    token = base64.b64encode(f"source:{DJ_CREDENTIAL}".encode()).decode()
    propagation = []
    try:
        wait_for(lambda: all(listener.bytes_read for listener in listeners), timeout=10, what="ICY")
        for index in range(TITLE_UPDATES):
            node = cluster.nodes[index % len(cluster.nodes)]
            title = f"Bench title {index} {time.time():.0f}"
            sent = time.monotonic()
            answer = listen(
                f"{node.front_door_url}/admin/metadata?mount=/a.mp3&mode=updinfo&song={quote(title)}",
                4096,
                timeout=5,
                headers={"Authorization": f"Basic {token}"},
            )
            if answer.status != 200:
                raise RuntimeError(f"title refused: {answer.status} {answer.body!r}")
            arrivals = [listener.wait_title(title, timeout=10) for listener in listeners]
            propagation.append(max(arrivals) - sent)
    finally:
        for listener in listeners:
            listener.close()
    return propagation


def one_cluster(audio: AudioSample, *, ride_through: bool, retry: float) -> dict:
    front_door: dict[str, object] = {} if ride_through else {"studio_backlog_seconds": 0}
    studios: dict[str, Studio] = {}
    listeners: dict[str, list[StreamRecorder]] = {}
    with running_cluster(3, etcd_members=3, front_door=front_door) as cluster:
        try:
            store = cluster.store()
            for mount in ("a.mp3", "b.mp3"):
                store.create_mount({"name": mount, "source_password": DJ_CREDENTIAL})
            leader = cluster.node(cluster.wait_leader())
            survivor, third = [node for node in cluster.nodes if node is not leader]
            for node in cluster.nodes:
                for mount in ("a.mp3", "b.mp3"):
                    node.wait_serving(f"/{mount}")
            # a.mp3 through a node that survives; b.mp3 through the leader. Each falls
            # back on the other nodes when its own is gone.
            studios["a.mp3"] = Studio([survivor, third, leader], "a.mp3", audio, retry).start()
            studios["b.mp3"] = Studio([leader, survivor, third], "b.mp3", audio, retry).start()
            listeners = {
                mount: [
                    StreamRecorder(
                        f"{node.front_door_url}/_stream/{mount}", max_seconds=600
                    ).start()
                    for node in (survivor, third)
                ]
                for mount in studios
            }
            for mount, studio in studios.items():
                wait_for(
                    partial(heard_everywhere, listeners[mount], studio.audio.data, 0),
                    timeout=30,
                    what=f"{mount} on the listeners",
                )
            time.sleep(SETTLE_SECONDS)  # a steady delay to compare with
            titles = measure_titles(cluster) if ride_through else []
            crash = measure_change(cluster, studios, listeners, crash=True)
            # The crashed leader's listeners are gone with it; the survivors' must stay.
            handover = measure_change(cluster, studios, listeners, crash=False)
            dropped = sum(
                not listener.connected
                for mount_listeners in listeners.values()
                for listener in mount_listeners
            )
            return {
                "crash": crash,
                "handover": handover,
                "title_propagation_s": [round(value, 3) for value in titles],
                "listeners_dropped": dropped,
                "listeners_watched": sum(len(value) for value in listeners.values()),
                "agent_pids": [agent_pid(node) for node in cluster.nodes if node.is_running()],
            }
        finally:
            for studio in studios.values():
                studio.stop()
            for mount_listeners in listeners.values():
                for listener in mount_listeners:
                    listener.stop()


def summarise(rounds: list[dict], key: str) -> dict:
    """The worst of every round for the studio through a surviving node (a.mp3) and the
    one through the leader (b.mp3), in each kind of change."""
    summary: dict[str, object] = {}
    for change in ("crash", "handover"):
        for mount, who in (("a.mp3", "surviving"), ("b.mp3", "on_leader")):
            results = [one[key][change]["studios"][mount] for one in rounds]
            summary[f"{change}_studio_{who}"] = {
                "reconnects": max(result["reconnects"] for result in results),
                "audio_lost_s": max(result["audio_lost_s"] for result in results),
                "extra_delay_s": max(result["extra_delay_s"] for result in results),
            }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--retry", type=float, default=2.0, help="an encoder's wait before reconnecting (s)"
    )
    arguments = parser.parse_args()
    if arguments.rounds < 1:
        parser.error("--rounds must be at least 1")
    require_root(parser)
    media_dir = Path(tempfile.mkdtemp(prefix="radio-bench-"))
    rounds = []
    try:
        audio = make_mp3(media_dir / "noise.mp3", seconds=240)
        for number in range(arguments.rounds):
            one = {
                "ride_through": one_cluster(audio, ride_through=True, retry=arguments.retry),
                "today": one_cluster(audio, ride_through=False, retry=arguments.retry),
            }
            rounds.append(one)
            print(f"round {number + 1}: {one}", flush=True)
    finally:
        for file in media_dir.iterdir():
            file.unlink()
        media_dir.rmdir()
    titles = [value for one in rounds for value in one["ride_through"]["title_propagation_s"]]
    ours = summarise(rounds, "ride_through")
    surviving = [ours["crash_studio_surviving"], ours["handover_studio_surviving"]]
    summary = {
        "rounds": arguments.rounds,
        "encoder_retry_s": arguments.retry,
        "title_propagation_median_s": round(statistics.median(titles), 3),
        "title_propagation_max_s": round(max(titles), 3),
        "studio_reconnects_surviving": max(result["reconnects"] for result in surviving),
        "studio_audio_lost_s_surviving": max(result["audio_lost_s"] for result in surviving),
        "studio_extra_delay_s": max(result["extra_delay_s"] for result in surviving),
        "listeners_dropped": sum(one["ride_through"]["listeners_dropped"] for one in rounds),
        "listeners_watched": sum(one["ride_through"]["listeners_watched"] for one in rounds),
        "ride_through": ours,
        "today": {
            **summarise(rounds, "today"),
            "listeners_dropped": sum(one["today"]["listeners_dropped"] for one in rounds),
        },
    }
    report("studio", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
