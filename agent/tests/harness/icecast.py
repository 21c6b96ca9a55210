"""Real Icecast 2.4 on loopback, run as the `icecast2` user, configured from the
project's own `templates/icecast.xml.j2`."""

from __future__ import annotations

import base64
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from xml.etree import ElementTree

import jinja2

from tests.paths import REPOSITORY as REPO_DIR  # noqa: F401 - other modules import it from here
from tests.paths import TEMPLATES_DIR

from .ports import LOOPBACK, free_port
from .processes import ManagedProcess, ServiceDirectory
from .waiting import wait_for

ICECAST_USER = "icecast2"
START_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class IcecastMount:
    name: str
    password: str | None = None
    username: str = "source"
    max_listeners: int | None = None
    fallback_mount: str | None = None
    hidden: bool = False


@dataclass(frozen=True)
class IcecastRelay:
    server: str
    port: int
    mount: str
    local_mount: str


@dataclass(frozen=True)
class IcecastSettings:
    source_password: str = "source-secret"
    admin_user: str = "admin"
    admin_password: str = "admin-secret"
    relay_password: str = "relay-secret"
    mounts: tuple[IcecastMount, ...] = ()
    relays: tuple[IcecastRelay, ...] = ()
    relay_retry_seconds: int = 1
    clients: int = 200
    sources: int = 20
    log_level: int = 3


def render_icecast_config(settings: IcecastSettings, port: int, directory: Path) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    context = {
        "hostname": LOOPBACK,
        "location": "test harness",
        "admin_email": "harness@localhost",
        "listen_sockets": [{"address": LOOPBACK, "port": port}],
        "limits": {
            "clients": settings.clients,
            "sources": settings.sources,
            "queue_size": 524288,
            "burst_size": 65536,
            "source_timeout": 10,
        },
        "source_password": settings.source_password,
        "relay_password": settings.relay_password,
        "admin_user": settings.admin_user,
        "admin_password": settings.admin_password,
        "relay_retry_seconds": settings.relay_retry_seconds,
        "mounts": settings.mounts,
        "relays": settings.relays,
        "paths": {
            "logdir": str(directory),
            "webroot": "/usr/share/icecast2/web",
            "adminroot": "/usr/share/icecast2/admin",
            "pidfile": str(directory / "icecast.pid"),
        },
        "log_level": settings.log_level,
    }
    return environment.get_template("icecast.xml.j2").render(context)


class IcecastServer:
    def __init__(self, settings: IcecastSettings | None = None) -> None:
        self.settings = settings or IcecastSettings()
        self.port = free_port()
        self.directory = ServiceDirectory("icecast", owner=ICECAST_USER)
        self.config_path = self.directory.write(
            "icecast.xml", render_icecast_config(self.settings, self.port, self.directory.path)
        )
        self.process = ManagedProcess(
            "icecast2",
            ["icecast2", "-c", str(self.config_path)],
            self.directory.path / "stdout.log",
            user=ICECAST_USER,
            cwd=self.directory.path,
        )

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_started()

    def launch(self) -> None:
        """Start the process without waiting: several start side by side."""
        self.process.start()

    def wait_started(self) -> None:
        self.process.wait_serving(
            lambda: bool(self.status()),
            timeout=START_TIMEOUT_SECONDS,
            what="Icecast to serve its status",
            explain=self.error_log_tail,
        )

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.base_url}/status-json.xsl", timeout=2) as response:
            # Icecast 2.4 writes raw control characters from stream titles into this JSON.
            return json.loads(response.read().decode("utf-8", errors="replace"), strict=False)

    def live_mounts(self) -> dict[str, dict]:
        """Mounts with a connected source, keyed by path. Icecast gives one source as an
        object and several as a list; this hides that quirk."""
        sources = self.status()["icestats"].get("source", [])
        if isinstance(sources, dict):
            sources = [sources]
        return {urlparse(source["listenurl"]).path: source for source in sources}

    def all_sources(self) -> set[str]:
        """Mounts with a source, hidden ones included (from the admin interface)."""
        request = urllib.request.Request(
            f"{self.base_url}/admin/stats",
            headers={
                "Authorization": "Basic "
                + base64.b64encode(
                    f"{self.settings.admin_user}:{self.settings.admin_password}".encode()
                ).decode()
            },
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            root = ElementTree.fromstring(response.read())
        return {source.get("mount", "") for source in root.iter("source")}

    def wait_mount_live(self, mount: str, timeout: float = 15.0) -> dict:
        return wait_for(
            lambda: self.live_mounts().get(mount),
            timeout=timeout,
            what=f"a source on Icecast mount {mount}",
        )

    def error_log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.directory.path / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n--- error.log\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        # SIGKILL: Icecast takes about a second to act on SIGTERM and holds nothing worth
        # saving here. A test of graceful shutdown calls process.stop() itself.
        self.process.kill()
        self.directory.remove()
