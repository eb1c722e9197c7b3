"""Private redis-server instances on 127.0.0.1 (no persistence) for Celery/cache tests."""

from __future__ import annotations

import re
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _proc
from .ports import free_port

__all__ = ["RedisInstance", "start_redis"]

START_TIMEOUT = 10.0
_PROC_NAME = "redis-server"
_BIND_FAILURE = re.compile(
    r"address already in use|could not create server tcp listening socket", re.IGNORECASE
)


def _ping(port: int, timeout: float = 1.0) -> bool:
    """True if a RESP PING to 127.0.0.1:port gets +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _server_pid(port: int, timeout: float = 1.0) -> int | None:
    """The process_id that the redis server on 127.0.0.1:port reports in INFO server, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"INFO server\r\n")
            buf = b""
            while b"process_id:" not in buf or not re.search(rb"process_id:\d+\r\n", buf):
                chunk = s.recv(4096)
                if not chunk:
                    return None
                buf += chunk
    except OSError:
        return None
    m = re.search(rb"process_id:(\d+)\r\n", buf)
    return int(m.group(1)) if m else None


@dataclass
class RedisInstance(_proc.SavedInstance):
    """A running (or stopped) private redis-server; see start_redis."""

    directory: Path
    port: int
    pid: int

    def __post_init__(self) -> None:
        """Normalise the directory path."""
        self.directory = Path(self.directory)

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True if the redis-server process is alive (it may be paused)."""
        return _proc.pid_alive(self.pid, _PROC_NAME)

    def ping(self) -> bool:
        """True if the server answers PING."""
        return _ping(self.port)

    def urls(self) -> dict[str, Any]:
        return {"url": self.url}

    def stop(self) -> None:
        """SIGTERM redis-server and wait for it to exit; idempotent, safe from atexit and if already gone."""
        _proc.terminate(self.pid, _PROC_NAME)
        if not self.running:
            (self.directory / "redis.pid").unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL redis-server (simulates the broker dying) and wait until it is gone."""
        _proc.kill(self.pid, _PROC_NAME)

    def pause(self) -> None:
        """SIGSTOP redis-server (a hung broker)."""
        if not _proc.send_signal(self.pid, _PROC_NAME, signal.SIGSTOP):
            raise RuntimeError(f"redis-server pid {self.pid} is not running")

    def resume(self) -> None:
        """SIGCONT a paused redis-server."""
        if not _proc.send_signal(self.pid, _PROC_NAME, signal.SIGCONT):
            raise RuntimeError(f"redis-server pid {self.pid} is not running")

    def restart(self) -> None:
        """Start redis-server again on the same port (data is not persisted)."""
        if self.running:
            self.stop()
        self.pid = _launch(self.directory, self.port)
        self.save()


class _BindError(RuntimeError):
    """redis-server could not bind its port."""


def _launch(directory: Path, port: int) -> int:
    """Start redis-server in its own session on 127.0.0.1:port and wait for PONG; return its pid.

    Runs with --daemonize no as our child in its own session (log in directory/redis.log) rather than
    --daemonize yes, so that we see and reap its exit at once (PID 1 here reaps orphans only seconds later).
    """
    log = directory / "redis.log"
    cmd = [
        _proc.find_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--pidfile", str(directory / "redis.pid"),
        "--logfile", str(log), "--dir", str(directory),
    ]  # fmt: skip
    offset = log.stat().st_size if log.exists() else 0
    proc = _proc.spawn_detached(cmd, directory / "redis.out")

    def failure(reason: str) -> RuntimeError:
        log_text = _proc.tail(log, offset=offset)
        text = f"{reason}\ncommand: {_proc.format_cmd(cmd)}\nredis log ({log}):\n{log_text}"
        return _BindError(text) if _BIND_FAILURE.search(log_text) else RuntimeError(text)

    def ready() -> bool:
        rc = proc.poll()
        if rc is not None:
            _proc.reap(proc.pid)
            raise failure(f"redis-server exited with status {rc} while starting")
        # A PONG alone could come from another server holding the port: check that it is our process.
        return _server_pid(port) == proc.pid

    if not _proc.poll(ready, START_TIMEOUT):
        _proc.kill(proc.pid, _PROC_NAME)
        raise failure(f"redis-server did not answer PING on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")
    return proc.pid


def start_redis(directory: Path, *, stop_at_exit: bool = True) -> RedisInstance:
    """Start a private redis-server on a free 127.0.0.1 port with no persistence, files in directory."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if (d / "instance.json").exists():
        try:
            old: RedisInstance | None = RedisInstance.load(d)
        except (ValueError, KeyError, OSError):
            old = None
        if old is not None and old.running:
            raise RuntimeError(f"a redis-server (pid {old.pid}) is already running in {d}; stop it first")
    for attempt in range(2):
        port = free_port()
        try:
            pid = _launch(d, port)
        except _BindError:
            if attempt == 1:
                raise
            continue
        break
    inst = RedisInstance(directory=d, port=port, pid=pid)
    inst.save()
    if stop_at_exit:
        _proc.stop_at_exit(inst)
    return inst
