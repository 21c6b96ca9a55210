"""The one-command demo: three testbed machines built by the project's own playbooks, a
test source playing into the cluster, and the stream and status page reachable from
this host.

    demo.py up     # image (once), 3 nodes, site.yml, radios.yml, a studio, forwarders
    demo.py down   # stops the studio and the forwarders, then the testbed

The nodes live on a private subnet that only the testbed's namespaces see. Forwarders on
127.0.0.1:8001-8003 reach node1-node3's front doors from the controller namespace, and
the cluster serves every listener where it arrives (`proxy_everything`), since the nodes'
own addresses in a redirect would not be reachable from here. Everything the demo starts
stops by itself after DEMO_HOURS, or with `down`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import testbed

REPOSITORY = Path(__file__).resolve().parents[2]
INVENTORY = REPOSITORY / "inventory" / "demo"
VENV_BIN = REPOSITORY / ".venv" / "bin"
DEMO_DIR = testbed.BASE_DIR / "demo"
SOURCE_PID = testbed.RUN_DIR / "demo-source.pid"
FORWARDER_PIDS = testbed.RUN_DIR / "demo-forwarders.pid"
NODES = ("node1", "node2", "node3")
FIRST_LOCAL_PORT = 8001
DEMO_HOURS = 2
TONE_SECONDS = 60
SOURCE_PASSWORD = "demo-source-password"  # noqa: S105 - the demo radio file sets it too
STUDIO_RETRY_SECONDS = 2
STUDIO_WRITE_TIMEOUT_US = 5_000_000
CLONE_NEWNET = 0x40000000


def log(message: str) -> None:
    print(f"demo: {message}", flush=True)


def build_agent_package() -> None:
    """The agent's Debian package from this checkout (make deb), which the role installs:
    built again only when the packaged files changed."""
    subprocess.run(
        [str(REPOSITORY / "scripts" / "build-deb")],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )


def playbook(name: str) -> None:
    build_agent_package()
    started = time.monotonic()
    subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(INVENTORY), f"playbooks/{name}"],
        cwd=REPOSITORY,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"},
        check=True,
        timeout=1800,
    )
    log(f"{name}: {time.monotonic() - started:.0f} s")


def radioctl(*arguments: str) -> str:
    return testbed.run_in("node1", ["radioctl", *arguments]).stdout


def make_tone(path: Path) -> None:
    """A minute of a 440 Hz tone, MP3 128 kbps: easy to recognise, cheap to loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"sine=frequency=440:duration={TONE_SECONDS}", "-c:a", "libmp3lame"),
            *("-b:a", "128k", "-ar", "44100", "-ac", "2", str(path)),
        ],
        check=True,
        timeout=60,
    )


def start_source(tone: Path) -> int:
    """The demo's studio (`demo.py studio`): its own session, so `down` stops it whole."""
    process = subprocess.Popen(
        [sys.executable, __file__, "studio", str(tone)],
        stdin=subprocess.DEVNULL,
        stdout=(DEMO_DIR / "source.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    SOURCE_PID.write_text(f"{process.pid}\n")
    return process.pid


class Studio:
    """A studio's encoder, as ffmpeg with a retry loop around it: PUT of the tone looped
    into `mount` through a node's front door. ffmpeg does not reconnect by itself: when
    it ends (its node died), it starts again after STUDIO_RETRY_SECONDS through the next
    node, as an encoder pointed at the cluster's name would. A studio on a node that
    stays up is never cut: leader changes ride through."""

    def __init__(
        self,
        nodes: Sequence[str],
        mount: str,
        password: str,
        tone: Path,
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.nodes = tuple(nodes)
        self.mount = mount
        self.password = password
        self.tone = tone
        self.command_prefix = tuple(command_prefix)  # e.g. ip netns exec, from the host
        self.connections: list[str] = []  # the node of each connection, in order
        self.process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for node in itertools.cycle(self.nodes):
            if self._stop.is_set() or time.monotonic() >= deadline:
                return
            url = f"icecast://source:{self.password}@{testbed.node_address(node)}:8000/{self.mount}"
            self.connections.append(node)
            log(f"studio: {self.mount} through {node}")
            self.process = subprocess.Popen(
                [
                    *self.command_prefix,
                    *("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning", "-re"),
                    *("-stream_loop", "-1", "-i", str(self.tone), "-c:a", "copy"),
                    *("-content_type", "audio/mpeg", "-f", "mp3"),
                    # A dead node sends no reset: without a write timeout ffmpeg would
                    # wait for TCP to give up (many minutes) before the retry.
                    *("-rw_timeout", str(STUDIO_WRITE_TIMEOUT_US), url),
                ],
                stdin=subprocess.DEVNULL,
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if self.process.poll() is None:
                self._end_process()
                return
            log(f"studio: through {node} ended; again in {STUDIO_RETRY_SECONDS} s")
            self._stop.wait(STUDIO_RETRY_SECONDS)  # an encoder's reconnect delay

    def start(self, seconds: float) -> Studio:
        self._thread = threading.Thread(target=self.run, args=(seconds,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._end_process()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _end_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cmd_studio(tone: str) -> int:
    """The demo's studio, from the host: through node1 first; ends after DEMO_HOURS."""
    prefix = ("ip", "netns", "exec", testbed.CONTROLLER_NS)
    Studio(NODES, "live.mp3", SOURCE_PASSWORD, Path(tone), prefix).run(DEMO_HOURS * 3600)
    return 0


def start_forwarders() -> int:
    process = subprocess.Popen(
        [sys.executable, __file__, "forward"],
        stdin=subprocess.DEVNULL,
        stdout=(DEMO_DIR / "forwarders.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    FORWARDER_PIDS.write_text(f"{process.pid}\n")
    return process.pid


def heard(port: int, path: str, nbytes: int = 32768, timeout: float = 5.0) -> bool:
    """A listener on this host's forwarder gets `nbytes` of the stream."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status == 200 and len(response.read(nbytes)) == nbytes
    except OSError:
        return False
    finally:
        connection.close()


def wait_heard(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not heard(port, path):
        if time.monotonic() > deadline:
            raise testbed.TestbedError(f"no audio from 127.0.0.1:{port}{path} in {timeout:.0f} s")
        time.sleep(1)  # polling a stream URL: nothing to wait on but the answer


def check_playlist(port: int, mount: str) -> str:
    """The mount's .m3u as this host fetches it points at a URL this host can play."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", f"/{mount}.m3u")
        response = connection.getresponse()
        body = response.read(65536).decode()
    finally:
        connection.close()
    urls = [line for line in body.splitlines() if line and not line.startswith("#")]
    expected = f"http://127.0.0.1:{port}/{mount}"
    if response.status != 200 or not urls or urls[0] != expected:
        raise testbed.TestbedError(f"/{mount}.m3u from 127.0.0.1:{port}: {body!r}, not {expected}")
    return urls[0]


def operating_notes() -> list[str]:
    """What the end of `make demo` tells a newcomer: the commands that operate the demo."""
    testbed_py = "python3 molecule/testbed/testbed.py"
    return [
        f"operate it:  {testbed_py} exec node1 -- radioctl status   (any node, any radioctl",
        "             command: mount list, config show, node drain node2, leader handover ...)",
        f"crash node2: {testbed_py} kill node2; bring it back: {testbed_py} up --nodes node2",
        f"logs:        {testbed_py} exec node1 -- journalctl -u radio-agent -u icecast2 -u etcd"
        " -n 50   (transcoders log into radio-agent's journal)",
    ]


def cmd_up() -> int:
    started = time.monotonic()
    testbed.build_image()
    testbed.up(NODES)
    playbook("site.yml")
    playbook("radios.yml")
    radioctl("config", "set", "proxy_everything", "true")
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    tone = DEMO_DIR / "tone.mp3"
    make_tone(tone)
    stop_demo_processes()
    start_source(tone)
    start_forwarders()
    listen = f"http://127.0.0.1:{FIRST_LOCAL_PORT}/live.mp3"
    wait_heard(FIRST_LOCAL_PORT, "/live.mp3")
    wait_heard(FIRST_LOCAL_PORT + 2, "/low.mp3")
    playlist = check_playlist(FIRST_LOCAL_PORT + 1, "live.mp3")
    log(f"up in {time.monotonic() - started:.0f} s; a 440 Hz tone plays into live.mp3")
    for index, node in enumerate(NODES):
        port = FIRST_LOCAL_PORT + index
        log(f"{node}: listen http://127.0.0.1:{port}/live.mp3 (or /low.mp3, 48 kbps)")
    log(f"playlists: http://127.0.0.1:{FIRST_LOCAL_PORT + 1}/live.mp3.m3u points at {playlist}")
    log(f"status page: http://127.0.0.1:{FIRST_LOCAL_PORT}/  (every node has one)")
    for line in operating_notes():
        log(line)
    log(f"e.g. mpv {listen}   |   tear down: make demo-down")
    return 0


def stop_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)  # its own session: ip netns exec and ffmpeg alike
    path.unlink(missing_ok=True)


def stop_demo_processes() -> None:
    stop_pid_file(SOURCE_PID)
    stop_pid_file(FORWARDER_PIDS)


def cmd_down() -> int:
    stop_demo_processes()
    testbed.down()
    log("down")
    return 0


# --- forwarders: host loopback -> the nodes' front doors ---------------------------------


def enter_controller_namespace() -> None:
    """Sockets created from now on live in the controller namespace; the listening
    sockets made before stay on the host's loopback."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{testbed.CONTROLLER_NS}") as namespace:
        if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the controller namespace failed")


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def forwarder(
    address: str,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(address, 80), 5
            )
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    return handle


async def forward_all(sockets: Sequence[socket.socket]) -> None:
    servers = [
        await asyncio.start_server(forwarder(testbed.node_address(node)), sock=listening)
        for node, listening in zip(NODES, sockets, strict=True)
    ]
    try:
        await asyncio.sleep(DEMO_HOURS * 3600)  # the demo's lifetime: it stops by itself
    finally:
        for server in servers:
            server.close()


def cmd_forward() -> int:
    sockets = []
    for index in range(len(NODES)):
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(("127.0.0.1", FIRST_LOCAL_PORT + index))
        listening.listen(128)
        sockets.append(listening)
    enter_controller_namespace()
    asyncio.run(forward_all(sockets))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "forward", "studio"])
    parser.add_argument("tone", nargs="?", help="studio: the MP3 file it plays")
    arguments = parser.parse_args(argv)
    command = arguments.command
    try:
        if command == "studio":
            if arguments.tone is None:
                parser.error("studio needs the tone file")
            return cmd_studio(arguments.tone)
        return {"up": cmd_up, "down": cmd_down, "forward": cmd_forward}[command]()
    except (testbed.TestbedError, subprocess.CalledProcessError) as error:
        log(f"failed: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
