"""Liquidsoap processes of the transcoders this node owns: started, restarted with
backoff, stopped the moment ownership is lost, logged into the agent's log.

Each process gets SIGKILL from the kernel if the agent dies (setpriv --pdeathsig), so a
crashed agent never leaves a transcoder pushing while another node takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pwd
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from radioagent.liquidsoap import OLDEST_LIQUIDSOAP, LiquidsoapVersion, liquidsoap_version
from radioagent.programmes.control import ControlError, go_on_air, prefer, read_state
from radioagent.programmes.script import preference_path, socket_directory, socket_path
from radioagent.transcoding.script import TranscoderJob, script_path
from radioagent.transcoding.state import TranscoderState

log = logging.getLogger(__name__)
REPORT_PREFIX = "radio-agent: "
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 30.0  # a run this long resets the backoff
STOP_GRACE_S = 2.0
OUTPUT_DRAIN_S = 0.5  # after it exits, for its output's end
PROGRAMME_POLL_S = 1.0  # how fresh a programme's state is (its loudness is a 3 s window)
AIR_RETRY_S = 0.2  # a promoted standby still starting: how soon it is told again


Launch = Callable[[TranscoderJob], Awaitable[asyncio.subprocess.Process]]


# The kernel kills a Liquidsoap when the agent's thread that started it dies: util-linux's
# setpriv (Essential in Debian) sets that, then execs it. Not a preexec_fn: with one,
# Python forks instead of vforking, and a fork runs gRPC's fork handler, which on Debian
# 13's build waits for gRPC's busy thread pool: the loop froze past the watchdog at
# every Liquidsoap start.
DIE_WITH_THE_AGENT = ("setpriv", "--pdeathsig", "KILL", "--")


class Transcoder:
    def __init__(
        self,
        job: TranscoderJob,
        launch: Launch,
        socket: Path | None = None,
    ) -> None:
        """`socket`: a programme's server socket, polled for its state."""
        self.job = job
        self.state = TranscoderState()
        self.preferred = ""  # a programme's preferred input, as the cluster wants it
        self._launch = launch
        self._socket = socket
        self._task: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        # A standby told to go on air, not known to be yet (it may still be starting).
        self._air_pending = False
        self._air_refused = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=self.job.mount)
        if self._socket is not None:
            self._poller = loop.create_task(self._poll(self._socket), name=f"{self.job.mount} poll")

    async def promote(self, job: TranscoderJob) -> None:
        """A standby has won its programme: its output on, no restart. A Liquidsoap that
        does not answer yet is told by the poller; a restart starts on air (`job`)."""
        self.job = job
        self._air_pending = True
        if self._socket is not None and self.state.running:
            await self._go_on_air(self._socket)

    async def _go_on_air(self, socket: Path) -> None:
        try:
            await go_on_air(socket)
        except ControlError as error:
            if not self._air_refused:  # once: it may still be starting
                log.warning("programme %s: not on air yet: %s", self.job.mount, error)
            self._air_refused = True
        else:
            self._air_refused = False
            self._air_pending = False
            log.info("programme %s: the standby is on air", self.job.mount)

    async def _poll(self, socket: Path) -> None:
        """Read the programme's state, and tell it the preferred input whenever it differs
        (after a restart it has read it from its file already)."""
        failing = False
        while not self._stopping:
            # A polling period, not a wait for a condition.
            await asyncio.sleep(AIR_RETRY_S if self._air_pending else PROGRAMME_POLL_S)
            if not self.state.running:
                self.state.programme = None
                continue
            if self._air_pending:
                await self._go_on_air(socket)
            try:
                state = await read_state(socket)
                if state.preferred != self.preferred:
                    await prefer(socket, self.preferred)
                    log.info(
                        "programme %s: preferred input %s",
                        self.job.mount,
                        self.preferred or "(automatic)",
                    )
                    state = await read_state(socket)
            except Exception as error:
                # No state rather than an old one: the status and the alerts must not go
                # on saying what a hung or restarting Liquidsoap last said.
                self.state.programme = None
                self.state.silent = None
                if not failing:
                    level = (
                        logging.WARNING
                        if isinstance(error, ControlError | ValueError)
                        else logging.ERROR
                    )
                    log.log(level, "programme %s: no state: %s", self.job.mount, error)
                failing = True
                continue
            failing = False
            self.state.programme = state
            self.state.silent = state.blank  # the programme's dead air: its safe blank

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while not self._stopping:
            started = time.monotonic()
            try:
                job = self.job  # promote() may change it while the process starts
                self._process = await self._launch(job)
                if not job.standby:
                    self._air_pending = False  # it starts on air
            except OSError as error:
                log.error("transcoder %s: cannot start Liquidsoap: %s", self.job.mount, error)
            else:
                self.state.running = True
                await self._follow_output(self._process)
                code = await self._process.wait()
                self.state.running = False
                self.state.connected = False
                self.state.programme = None  # what the next process says, once it does
                if self._stopping:
                    return
                log.warning("transcoder %s: Liquidsoap exited with %s", self.job.mount, code)
            self.state.restarts += 1
            # A launch that failed counts as a short run: a failure, like a quick exit.
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = BACKOFF_FIRST_S
                self.state.failures = 0
            else:
                self.state.failures += 1
            await asyncio.sleep(backoff)  # restart backoff, not a wait for a condition
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _follow_output(self, process: asyncio.subprocess.Process) -> None:
        if process.stdout is None:
            return
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith(REPORT_PREFIX):
                self._on_report(line.removeprefix(REPORT_PREFIX))
            elif line:
                log.info("transcoder %s: %s", self.job.mount, line)

    def _on_report(self, what: str) -> None:
        if what in ("silence", "sound"):
            self.state.silent = what == "silence"
            log.log(
                logging.WARNING if self.state.silent else logging.INFO,
                "transcoder %s: input %s",
                self.job.mount,
                "silent (dead air)" if self.state.silent else "has sound again",
            )
        elif what.startswith("on air ") or what == "output on":
            log.info("%s %s: %s", self.job.kind, self.job.mount, what)
        elif what in ("connected", "disconnected"):
            self.state.connected = what == "connected"
            log.info("transcoder %s: %s to the leader", self.job.mount, what)

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if self._task is not None:
                # Its last lines, up to the end of its output (a child of it may hold the
                # pipe open: bounded), so nothing of this process outlives the stop.
                await asyncio.wait([self._task], timeout=OUTPUT_DRAIN_S)
        tasks = [task for task in (self._task, self._poller) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.state.running = False
        self.state.programme = None


VERSION_TIMEOUT_S = 5.0  # `liquidsoap --version` takes 0.15 s with 2.1


async def installed_liquidsoap_version(command: tuple[str, ...]) -> LiquidsoapVersion:
    """What `command --version` says; the oldest version the scripts are written for when
    it says nothing usable. A child process awaited, never a blocking run: the agent's loop
    keeps renewing its lease meanwhile."""
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as error:
        log.warning("liquidsoap --version failed (%s): scripts for %s", error, OLDEST_LIQUIDSOAP)
        return OLDEST_LIQUIDSOAP
    try:
        said, _ = await asyncio.wait_for(process.communicate(), VERSION_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        log.warning(
            "liquidsoap --version gave no answer in %g s: scripts for %s",
            VERSION_TIMEOUT_S,
            OLDEST_LIQUIDSOAP,
        )
        return OLDEST_LIQUIDSOAP
    version = liquidsoap_version(said.decode("utf-8", "replace"))
    if version is None:
        log.warning("liquidsoap --version names no version: scripts for %s", OLDEST_LIQUIDSOAP)
        return OLDEST_LIQUIDSOAP
    return version


class LiquidsoapVersionProbe:
    """The installed Liquidsoap's version, asked when a script is first written and again
    whenever the binary changed (a Debian upgrade replaces it under a running agent)."""

    def __init__(self, command: tuple[str, ...]) -> None:
        self.command = command
        self._binary_seen: tuple[int, int] | None = None
        self._version: LiquidsoapVersion | None = None

    async def current(self) -> LiquidsoapVersion:
        binary = self._binary_identity()
        if self._version is None or binary != self._binary_seen:
            self._binary_seen = binary
            self._version = await installed_liquidsoap_version(self.command)
            log.info("Liquidsoap %d.%d: scripts written for it", *self._version)
        return self._version

    def _binary_identity(self) -> tuple[int, int] | None:
        found = shutil.which(self.command[0])
        try:
            status = os.stat(found) if found else None
        except OSError:
            return None
        return None if status is None else (status.st_ino, status.st_mtime_ns)


class TranscoderSupervisor:
    def __init__(self, command: tuple[str, ...], user: str | None, run_dir: Path) -> None:
        self.command = command
        self.liquidsoap_version = LiquidsoapVersionProbe(command)
        self.user = user if os.geteuid() == 0 else None  # only root can switch users
        self.run_dir = run_dir
        self._transcoders: dict[str, Transcoder] = {}
        self._preferences: dict[str, str] = {}
        # The cycle and the fence (stop_all when cut off) converge from two tasks: one at
        # a time, or the second stops what the first is already stopping.
        self._converging = asyncio.Lock()

    def set_preferences(self, preferences: dict[str, str]) -> None:
        """Each programme's preferred input ("": automatic): kept in a file its Liquidsoap
        reads at start, and sent to it by its poller."""
        for mount, transcoder in self._transcoders.items():
            wanted = preferences.get(mount, "")
            if transcoder.job.programme and wanted != transcoder.preferred:
                transcoder.preferred = wanted
                self._write_preference(mount, wanted)
        self._preferences = dict(preferences)

    def _write_preference(self, mount: str, preferred: str) -> None:
        """A failure is logged, never raised: the socket still carries the preference,
        and the converge that follows must run (it stops what this node no longer owns)."""
        path = preference_path(self.run_dir, mount)
        staged = path.with_suffix(".new")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            staged.write_text(preferred + "\n")
            staged.chmod(0o644)
            staged.replace(path)
        except OSError as error:
            log.error("programme %s: cannot keep its preferred input in %s: %s", mount, path, error)

    async def converge(
        self, jobs: dict[str, TranscoderJob], allowed: Callable[[], bool] = lambda: True
    ) -> None:
        """Run exactly `jobs`: stop what is not wanted or changed (first), start the rest.
        `allowed`, asked once the other converge (if any) is done: False runs nothing (the
        node was cut off from etcd while this one waited)."""
        async with self._converging:
            await self._converge(jobs if allowed() else {})

    async def _converge(self, jobs: dict[str, TranscoderJob]) -> None:
        for mount, transcoder in list(self._transcoders.items()):
            wanted = jobs.get(mount)
            if wanted == transcoder.job:
                continue
            if (
                wanted is not None
                and transcoder.job.standby
                and dataclasses.replace(wanted, standby=True) == transcoder.job
            ):
                log.info("programme %s: the standby goes on air", mount)
                await transcoder.promote(wanted)
            else:
                log.info("%s %s: stopping", transcoder.job.kind, mount)
                del self._transcoders[mount]
                await transcoder.stop()
        for mount, job in jobs.items():
            if mount not in self._transcoders:
                log.info("%s %s: starting", job.kind, mount)
                socket = socket_path(self.run_dir, mount) if job.programme else None
                transcoder = Transcoder(job, self._launch, socket)
                if job.programme:
                    transcoder.preferred = self._preferences.get(mount, "")
                    self._write_preference(mount, transcoder.preferred)
                self._transcoders[mount] = transcoder
                transcoder.start()

    def running_any(self) -> bool:
        """Any process, standbys included."""
        return bool(self._transcoders)

    def failing_standbys(self, failures: int) -> set[str]:
        """Standbys that failed `failures` times in a row: this node cannot run them."""
        return {
            mount
            for mount, transcoder in self._transcoders.items()
            if transcoder.job.standby and transcoder.state.failures >= failures
        }

    def standbys(self) -> tuple[str, ...]:
        """Standbys ready to take over: their Liquidsoap answers (a state read)."""
        return tuple(
            sorted(
                mount
                for mount, transcoder in self._transcoders.items()
                if transcoder.job.standby and transcoder.state.programme is not None
            )
        )

    def programme_leaders(self) -> dict[str, str]:
        """Programme on air here -> the leader its Liquidsoap pushes to."""
        return {
            mount: transcoder.job.leader
            for mount, transcoder in self._transcoders.items()
            if transcoder.job.programme and not transcoder.job.standby
        }

    def states(self) -> dict[str, TranscoderState]:
        """The jobs on air: a standby's state is not the programme's (its owner's is)."""
        return {
            mount: transcoder.state
            for mount, transcoder in self._transcoders.items()
            if not transcoder.job.standby
        }

    async def stop_all(self) -> None:
        await self.converge({})

    async def _launch(self, job: TranscoderJob) -> asyncio.subprocess.Process:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = script_path(self.run_dir, job.mount)
        path.write_text(job.script)  # holds no secret: the password comes from the environment
        path.chmod(0o644)
        home, group = str(self.run_dir), None
        extra_groups: list[int] | None = None
        account = pwd.getpwnam(self.user) if self.user is not None else None
        if account is not None:
            home, group, extra_groups = account.pw_dir, account.pw_gid, []  # no root groups
        if job.programme:
            sockets = socket_directory(self.run_dir)
            sockets.mkdir(mode=0o700, exist_ok=True)
            if account is not None:  # root runs Liquidsoap as another user: its directory
                os.chown(sockets, account.pw_uid, account.pw_gid)
        return await asyncio.create_subprocess_exec(
            *DIE_WITH_THE_AGENT,
            *self.command,
            str(path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={
                "PATH": "/usr/bin:/bin",
                "HOME": home,
                "RADIO_SOURCE_PASSWORD": job.password,
                "RADIO_PROGRAMME_STANDBY": "1" if job.standby else "0",
            },
            cwd=str(self.run_dir),
            user=self.user,
            group=group,
            extra_groups=extra_groups,
            start_new_session=True,
        )
