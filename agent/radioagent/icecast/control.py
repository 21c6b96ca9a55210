"""Talk to the node's Icecast: write its config and reload it only when the text changed,
read its stats, disconnect sources. Thin I/O around render.py and stats.py."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import tempfile
import time
from pathlib import Path

import aiohttp

from radioagent.config import IcecastSettings
from radioagent.icecast.stats import IcecastStats, parse_admin_stats

log = logging.getLogger(__name__)
RELOAD_TIMEOUT_SECONDS = 10.0
ADMIN_TIMEOUT_SECONDS = 2.0


class IcecastError(Exception):
    """Icecast could not be reloaded or did not answer; the message says what failed."""


class IcecastUnresponsive(IcecastError):
    """Icecast took the connection, or left it pending, and did not answer in time: hung
    or overloaded, as opposed to refusing (not running)."""


class IcecastControl:
    def __init__(self, settings: IcecastSettings) -> None:
        self.settings = settings
        self.config_path = Path(settings.config_path)
        self._session: aiohttp.ClientSession | None = None
        # What Icecast was last told to load; a failed reload leaves this unchanged, so
        # the next cycle tries again even though the file already holds the new text.
        self._applied_text: str | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}/admin"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auth=aiohttp.BasicAuth(self.settings.admin_user, self.settings.admin_password),
                timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_SECONDS),
            )
        return self._session

    def current_config(self) -> str | None:
        try:
            return self.config_path.read_text()
        except FileNotFoundError:
            return None

    async def apply_config(self, text: str) -> bool:
        """Write `text` if the file differs and reload Icecast unless it already runs this
        text; True if it reloaded. The file is replaced atomically, keeping its owner and
        mode: Icecast never reads half a file."""
        if text == self._applied_text:
            return False
        if self.current_config() != text:
            self._write(text)
        await self.reload()
        self._applied_text = text
        return True

    def _write(self, text: str) -> None:
        directory = self.config_path.parent
        handle, temporary = tempfile.mkstemp(prefix=".icecast.xml.", dir=directory)
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text)
            if self.config_path.exists():
                current = self.config_path.stat()
                os.chown(temporary, current.st_uid, current.st_gid)
                os.chmod(temporary, current.st_mode & 0o7777)
            else:
                os.chmod(temporary, 0o640)
            os.replace(temporary, self.config_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def reload(self) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.settings.reload_command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), RELOAD_TIMEOUT_SECONDS)
        except TimeoutError as error:
            process.kill()
            await process.wait()
            raise IcecastError(
                f"reload command {list(self.settings.reload_command)} timed out"
            ) from error
        if process.returncode != 0:
            raise IcecastError(
                f"reload command {list(self.settings.reload_command)} exited with "
                f"{process.returncode}: {output.decode(errors='replace').strip()}"
            )

    async def read_stats(self) -> IcecastStats:
        try:
            async with self._http().get(f"{self.admin_url}/stats") as response:
                if response.status != 200:
                    raise IcecastError(f"admin stats answered {response.status}")
                return parse_admin_stats(await response.read())
        except TimeoutError as error:
            message = f"admin stats: no answer in {ADMIN_TIMEOUT_SECONDS} s"
            raise IcecastUnresponsive(message) from error
        except aiohttp.ClientConnectorError as error:
            # A connect that timed out: the accept queue is full, nobody takes from it.
            if error.os_error.errno == errno.ETIMEDOUT:
                raise IcecastUnresponsive(f"admin stats: {error}") from error
            raise IcecastError(f"admin stats: {type(error).__name__} {error}") from error
        except (aiohttp.ClientError, ValueError) as error:
            raise IcecastError(f"admin stats: {type(error).__name__} {error}") from error

    async def kill_source(self, mount_path: str) -> bool:
        """Disconnect the source of a mount (a reload does not). True if one was there;
        False if the mount had none (Icecast answers 400 "Source does not exist")."""
        try:
            async with self._http().get(
                f"{self.admin_url}/killsource", params={"mount": mount_path}
            ) as response:
                body = await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as error:
            raise IcecastError(f"killsource {mount_path}: {error}") from error
        if response.status == 200:
            return True
        if response.status in (400, 404) and "does not exist" in body.lower():
            return False
        raise IcecastError(f"killsource {mount_path} answered {response.status}: {body[:120]}")

    def request_restart(self) -> bool:
        """Ask for Icecast's restart by writing the file a path unit watches (False: no
        file is configured, or it cannot be written)."""
        name = self.settings.restart_request_file
        if name is None:
            return False
        try:
            Path(name).write_text(f"{time.time():.3f}\n")
        except OSError as error:
            log.error("icecast: cannot ask for a restart through %s: %s", name, error)
            return False
        return True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
