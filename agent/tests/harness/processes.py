"""Start, signal and stop service processes by PID, and remember every one we started.

Each process gets its own session (so a Ctrl-C aimed at pytest does not reach it half way),
its output in a log file, and optionally a service user. The registry lets the session end
stop anything a test forgot, and check that nothing it started is still alive.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .waiting import StopWaiting, wait_for

STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 40

_started: list[ManagedProcess] = []
# Every process we start leads its own session; its children stay in that session unless
# they daemonize on purpose, so these ids find whatever our services left behind.
_started_session_ids: set[int] = set()
_created_directories: list[ServiceDirectory] = []


class ManagedProcess:
    """One service process; `stop()` is safe to call in any state, any number of times."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        user: str | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.user = user
        self.cwd = cwd
        self.env = env
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running as PID {self.pid}")
        # None for all three: run as we are (Popen's defaults).
        uid: int | None = None
        gid: int | None = None
        extra_groups: list[int] | None = None
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            uid, gid, extra_groups = account.pw_uid, account.pw_gid, []
        with self.log_path.open("ab") as log_file:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
                user=uid,
                group=gid,
                extra_groups=extra_groups,
            )
        _started.append(self)
        _started_session_ids.add(self._popen.pid)

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.pid

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def exit_code(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def send_signal(self, signum: int) -> None:
        if self._popen is not None and self._popen.poll() is None:  # is_running()
            self._popen.send_signal(signum)

    def _kill_group(self) -> None:
        """SIGKILL whatever the service started in its session (its process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung machine)."""
        self.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap: a crash, with no chance to clean up."""
        if self._popen is None:
            return
        self.send_signal(signal.SIGKILL)
        self._popen.wait()
        self._kill_group()
        _forget_session_if_empty(self.pid)

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the grace period."""
        if self._popen is None:
            return
        if self.is_running():
            self._popen.send_signal(signal.SIGTERM)
            self._popen.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            try:
                self._popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        self._popen.wait()
        self._kill_group()
        _forget_session_if_empty(self.pid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe_exit(self) -> str:
        return f"{self.name} (PID {self.pid}) exited with {self.exit_code()}:\n{self.log_tail()}"

    def wait_serving(
        self,
        serving: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        explain: Callable[[], str] = lambda: "",
    ) -> None:
        """Until `serving()` is true; fails at once (with its log and `explain()`) if the
        process exits first, instead of waiting out the timeout."""

        def check() -> bool:
            if not self.is_running():
                raise StopWaiting(self.describe_exit() + explain())
            return serving()

        wait_for(check, timeout=timeout, what=what, explain=lambda: self.log_tail() + explain())


def stop_all_started() -> list[str]:
    """Stop every process this harness started and remove its directories; return the
    names of the processes that were still running."""
    leftovers = []
    for process in _started:
        if process.is_running():
            leftovers.append(f"{process.name} (PID {process.pid})")
        process.stop()
    _started.clear()
    for directory in _created_directories:
        directory.remove()
    _created_directories.clear()
    return leftovers


def session_id_of(pid: int) -> int | None:
    """The session id of a live process (field 6 of /proc/PID/stat); None if it is gone
    or a zombie (dead, waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    state, _, _, session = stat.rpartition(")")[2].split()[:4]
    return None if state == "Z" else int(session)


def _forget_session_if_empty(session_id: int) -> None:
    """Once nothing lives in a session, its id may be reused by anyone: stop watching it."""
    if not any(
        session_id_of(int(entry.name)) == session_id
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
    ):
        _started_session_ids.discard(session_id)


def kill_processes(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def processes_left_in_started_sessions() -> dict[int, str]:
    """Live processes (PID: command) in a session the harness started, like a service's
    child that outlived it. Other processes on the machine are not ours to judge, which
    keeps parallel test sessions from blaming each other."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and session_id_of(int(entry.name)) in _started_session_ids:
            try:
                found[int(entry.name)] = (entry / "comm").read_text().strip()
            except OSError:  # ended while we looked
                continue
    return found


class ServiceDirectory:
    """A temporary directory owned by a service user (pytest's tmp_path is root-only)."""

    def __init__(self, prefix: str, owner: str | None = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"radio-test-{prefix}-"))
        self.path.chmod(0o755)
        if owner is not None:
            account = pwd.getpwnam(owner)
            os.chown(self.path, account.pw_uid, account.pw_gid)
        self.owner = owner
        _created_directories.append(self)

    def write(self, name: str, text: str, mode: int = 0o640) -> Path:
        """Write a file the owner can read (configs hold passwords: not world-readable)."""
        file_path = self.path / name
        file_path.write_text(text)
        file_path.chmod(mode)
        if self.owner is not None:
            account = pwd.getpwnam(self.owner)
            os.chown(file_path, account.pw_uid, account.pw_gid)
        return file_path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
