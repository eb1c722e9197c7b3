"""Internal helpers: running tools, polling, and signalling daemonized processes by pid safely."""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

# Children we spawned, by pid, so that they are reaped as soon as stop()/kill() sees them die. PID 1 on these
# machines reaps orphans only lazily (seconds later), so a double-forked daemon lingers as a zombie meanwhile.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def find_tool(name: str) -> str:
    """Locate an executable on PATH or in the sbin directories (often missing from non-root PATHs)."""
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN_DIRS:
        candidate = Path(d) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(
        f"required program {name!r} not found (install it, e.g. apt-get install slapd ldap-utils)"
    )


def format_cmd(cmd: Sequence[str | os.PathLike[str]]) -> str:
    """Render a command line for error messages."""
    return shlex.join(os.fspath(c) for c in cmd)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    input: str | None = None,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; raise RuntimeError with the command and its stderr on failure."""
    try:
        res = subprocess.run(
            [os.fspath(c) for c in cmd],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"command timed out after {timeout:.0f} s: {format_cmd(cmd)}") from exc
    if res.returncode != 0:
        detail = (res.stderr.strip() or res.stdout.strip() or "(no output)")[-4000:]
        raise RuntimeError(f"command failed (exit {res.returncode}): {format_cmd(cmd)}\n{detail}")
    return res


def poll(predicate: Callable[[], bool], timeout: float, max_interval: float = 0.05) -> bool:
    """Call predicate with exponential backoff until it is true (-> True) or timeout passes (-> False)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, max_interval)


def pid_alive(pid: int, name: str) -> bool:
    """True if pid is a live (non-zombie) process whose command line mentions name (guards pid reuse)."""
    if pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:  # our own child: waitpid is the truth (a zombie leader may still have live threads)
        return child.poll() is None
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").exists():  # not Linux: best effort
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X", "x"):
        # Dead but not reaped yet (PID 1 reaps orphans seconds late). A zombie thread-group leader whose other
        # threads are still exiting (sockets and mmaps not yet released) still counts as alive.
        try:
            return len(os.listdir(proc / "task")) > 1
        except OSError:
            return False
    return name.encode() in cmdline


def send_signal(pid: int, name: str, sig: signal.Signals) -> bool:
    """Send sig to pid if it is still our process; return False if it is already gone."""
    if not pid_alive(pid, name):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stopped(pid: int) -> bool:
    """True once every thread of pid is stopped by SIGSTOP (a signal is delivered asynchronously: a server
    thread already running may answer one more request before it stops)."""
    try:
        tasks = list((Path("/proc") / str(pid) / "task").iterdir())
        states = [(task / "stat").read_text().rsplit(")", 1)[-1].split()[0] for task in tasks]
    except OSError:
        return True
    return all(state in ("T", "t") for state in states)


def terminate(pid: int, name: str, timeout: float = 10.0) -> None:
    """SIGTERM (and SIGCONT, in case it is paused) then wait; SIGKILL if it does not exit within timeout."""
    if not send_signal(pid, name, signal.SIGTERM):
        return
    send_signal(pid, name, signal.SIGCONT)
    if poll(lambda: not pid_alive(pid, name), timeout):
        reap(pid)
        return
    kill(pid, name)


def kill(pid: int, name: str, timeout: float = 10.0) -> None:
    """SIGKILL and wait until the process is gone."""
    if not send_signal(pid, name, signal.SIGKILL):
        reap(pid)
        return
    if not poll(lambda: not pid_alive(pid, name), timeout):
        raise RuntimeError(f"{name} pid {pid} did not die after SIGKILL")
    reap(pid)


def tail(path: Path, limit: int = 3000, offset: int = 0) -> str:
    """Last limit characters of a log file (from byte offset on), or a placeholder."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace").strip()
    except OSError:
        return f"({path} not readable)"
    return text[-limit:] if text else f"({path} is empty)"


def spawn_detached(cmd: Sequence[str | os.PathLike[str]], log: Path) -> subprocess.Popen[bytes]:
    """Start cmd in its own session (immune to the terminal's Ctrl-C), output appended to log."""
    with log.open("ab") as fh:
        fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {format_cmd(cmd)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(
            [os.fspath(c) for c in cmd],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def reap(pid: int) -> None:
    """Collect the exit status of a dead child we spawned (no-op for other pids or live children)."""
    proc = _CHILDREN.get(pid)
    if proc is not None and proc.poll() is not None:
        del _CHILDREN[pid]


class Stoppable(Protocol):
    def stop(self) -> None: ...


_STARTED: list[Stoppable] = []
_ATEXIT_PID: list[int] = []


def _stop_started() -> None:
    """atexit hook: stop the servers this process started (never from a forked child)."""
    if _ATEXIT_PID and _ATEXIT_PID[0] != os.getpid():
        return
    for inst in reversed(_STARTED):
        try:
            inst.stop()
        except Exception:  # noqa: S112 - best effort at interpreter exit
            continue


def stop_at_exit(inst: Stoppable) -> None:
    """Stop inst when this process exits (servers of tests and benchmarks never outlive them)."""
    if not _ATEXIT_PID:
        _ATEXIT_PID.append(os.getpid())
        atexit.register(_stop_started)
    if inst not in _STARTED:
        _STARTED.append(inst)


class SavedInstance:
    """A server described in <directory>/instance.json, so a later process can stop what this one started.

    Subclasses are dataclasses with a `directory` field; `urls()` adds what is derived (never stored twice).
    """

    directory: Path

    def urls(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        """JSON-able description including the URLs."""
        data = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]
        data.update(self.urls())
        return data

    def save(self) -> None:
        """Write directory/instance.json (atomically)."""
        path = self.directory / "instance.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls: type[_Saved], directory: Path) -> _Saved:
        """Re-create the instance description saved in directory/instance.json."""
        data = json.loads((Path(directory) / "instance.json").read_text())
        names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


_Saved = TypeVar("_Saved", bound=SavedInstance)
