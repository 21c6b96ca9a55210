"""Start, signal and stop service processes by PID, and remember every one we started.

Each process gets its own session (so a Ctrl-C aimed at pytest does not reach it half way),
its output in a log file, and optionally a service user. The registry lets the session end
stop anything a test forgot, and check that nothing it started is still alive.

A directory removed after a failure (a test's, or a bench round's, recorded with
`record_failure`) since it was made is first copied, logs and configs, under
`kept_logs_root()`: the servers' own account of what went wrong outlives the teardown.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.paths import REPOSITORY

from .waiting import StopWaiting, wait_for

STOP_GRACE_SECONDS = 5.0
LOG_TAIL_LINES = 40
KEPT_LOGS_ENV = "RADIO_TEST_LOGS"
KEPT_LOGS_DEFAULT = REPOSITORY / ".test-logs"  # ignored by git
KEPT_RUNS = 5  # older runs' kept logs are pruned when a run keeps its first
KEPT_FILE_MAX_BYTES = 8 * 1024 * 1024  # a log bigger than that is not the one to read

_started: list[ManagedProcess] = []
# Every process we start leads its own session; its children stay in that session unless
# they daemonize on purpose, so these ids find whatever our services left behind.
_started_session_ids: set[int] = set()
_created_directories: list[ServiceDirectory] = []
# What failed so far in this run, in order: a directory made before a failure keeps its
# files when it goes.
_failures: list[str] = []
# One name per test run: pytest's controller sets it for its workers (conftest.py); a
# process on its own (a bench) makes its own.
KEPT_RUN_ENV = "RADIO_TEST_RUN"


def new_run_name() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"


_own_run_name = new_run_name()


def record_failure(name: str) -> None:
    """A test or a bench round failed: the service directories alive now keep their
    files when they are removed."""
    _failures.append(name)


def kept_logs_root() -> Path:
    """Where this run keeps the files of the directories a failure touched."""
    run = os.environ.get(KEPT_RUN_ENV) or _own_run_name
    return Path(os.environ.get(KEPT_LOGS_ENV, KEPT_LOGS_DEFAULT)) / run


def kept_logs() -> Path | None:
    """This run's kept logs, if a failure kept any."""
    root = kept_logs_root()
    return root if root.is_dir() else None


def _keep_files(source: Path, target: Path) -> None:
    """Copy the regular files under `source` (sockets, FIFOs and huge files left out)."""
    for path in source.rglob("*"):
        with contextlib.suppress(OSError):  # a file may go while we copy
            if path.is_file() and path.stat().st_size <= KEPT_FILE_MAX_BYTES:
                destination = target / path.relative_to(source)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


def _prune_kept_runs(root: Path) -> None:
    """Only the newest KEPT_RUNS runs' kept logs stay (they are named by start time)."""
    runs = sorted(entry for entry in root.parent.iterdir() if entry.is_dir())
    for old in runs[:-KEPT_RUNS]:
        shutil.rmtree(old, ignore_errors=True)


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
        self._failures_before = len(_failures)
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
        if self.path.is_dir() and len(_failures) > self._failures_before:
            root = kept_logs_root()
            first_run_kept = not root.exists()
            failed = "".join(c if c.isalnum() or c in "-_." else "_" for c in _failures[-1])
            _keep_files(self.path, root / failed[:150] / self.path.name)
            if first_run_kept:
                _prune_kept_runs(root)
        shutil.rmtree(self.path, ignore_errors=True)
