"""Real Liquidsoap as the `liquidsoap` user: a test tone pushed into an Icecast mount."""

from __future__ import annotations

from pathlib import Path

import jinja2

from radioagent.liquidsoap import liquidsoap_string

from .icecast import IcecastServer
from .ports import LOOPBACK
from .processes import ManagedProcess, ServiceDirectory
from .waiting import StopWaiting, wait_for

LIQUIDSOAP_USER = "liquidsoap"
# Liquidsoap 2.1 takes ~2.6 s to start; more on a loaded 2-core machine.
START_TIMEOUT_SECONDS = 30.0
ENCODERS = {
    "mp3": "%mp3(bitrate=128, samplerate=44100, stereo=true)",
    # Constant bitrate: a sine at a VBR quality is a few kbps, so libvorbis filled a 4 KB
    # page only every 2-4 s, and listeners waited that long for live audio.
    "vorbis": "%vorbis.cbr(samplerate=44100, channels=2, bitrate=96)",
    "opus": "%opus(bitrate=64, samplerate=48000, channels=2)",
}


def render_tone_script(
    *,
    port: int,
    mount: str,
    password: str,
    user: str,
    encoder: str,
    frequency: float,
    titles: str | None = None,
    title_every: float = 2.0,
    level_file: Path | None = None,
) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - Liquidsoap script, not HTML; strings go through liq_string
    )
    environment.filters["liq_string"] = liquidsoap_string
    return environment.get_template("tone.liq.j2").render(
        host=LOOPBACK,
        port=port,
        mount=mount,
        password=password,
        user=user,
        encoder=ENCODERS[encoder],
        frequency=f"{float(frequency)!r}",
        titles=titles,
        title_every=f"{float(title_every)!r}",
        level_file=None if level_file is None else str(level_file),
    )


class LiquidsoapTone:
    def __init__(
        self,
        icecast: IcecastServer,
        mount: str,
        *,
        password: str | None = None,
        user: str = "source",
        encoder: str = "mp3",
        frequency: float = 440.0,
        port: int | None = None,
        live_mount: str | None = None,
        titles: str | None = None,
        level_file: bool = False,
    ) -> None:
        """Pushes to `port` (default: the Icecast's own, or a front door's) and is up once
        `icecast` lists `live_mount` (default: `mount`). With `titles`, a new title
        ("<titles> 1", "<titles> 2", ...) every 2 s: ICY updates for MP3, in-band
        comments (a new chained stream) for Ogg. With `level_file`, `set_level` changes
        the tone's level while it stays connected."""
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {sorted(ENCODERS)}, not {encoder!r}")
        self.icecast = icecast
        self.mount = mount
        self.live_mount = live_mount or mount
        self.directory = ServiceDirectory("liquidsoap", owner=LIQUIDSOAP_USER)
        self.level_path = self.directory.path / "level" if level_file else None
        script = render_tone_script(
            port=port or icecast.port,
            mount=mount,
            user=user,
            encoder=encoder,
            frequency=frequency,
            titles=titles,
            level_file=self.level_path,
            password=password if password is not None else icecast.settings.source_password,
        )
        self.script_path = self.directory.write("tone.liq", script)
        self.process = ManagedProcess(
            "liquidsoap",
            ["liquidsoap", str(self.script_path)],
            self.directory.path / "liquidsoap.log",
            user=LIQUIDSOAP_USER,
            cwd=self.directory.path,
            env={"HOME": str(self.directory.path), "PATH": "/usr/bin:/bin"},
        )

    def start(self) -> None:
        self.process.start()

        def mount_live() -> bool:
            if not self.process.is_running():
                raise StopWaiting(self.process.describe_exit())
            return self.live_mount in self.icecast.all_sources()

        wait_for(
            mount_live,
            timeout=START_TIMEOUT_SECONDS,
            what=f"Liquidsoap's tone on Icecast mount {self.live_mount}",
            explain=lambda: (
                f"--- liquidsoap.log\n{self.process.log_tail()}" + self.icecast.error_log_tail()
            ),
        )

    def set_level(self, level: float) -> None:
        """0.0: digital silence (still connected); 1.0: the full tone. Liquidsoap reads it
        within 0.1 s."""
        if self.level_path is None:
            raise ValueError("this tone was started without level_file")
        self.directory.write("level.tmp", f"{level!r}\n", mode=0o644).replace(self.level_path)

    def stop(self) -> None:
        self.process.stop()
        self.directory.remove()
