"""Private Dovecot IMAP server on 127.0.0.1 whose passdb is a checkpassword program we give (mail tests)."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _proc
from .ports import free_port

__all__ = ["DovecotInstance", "mail_owner_ids", "start_dovecot"]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_PROC_NAME = "dovecot"
_MAIL_USER = "dovecot"
_BIND_FAILURE = re.compile(r"address already in use", re.IGNORECASE)
# Dovecot's config syntax gives meaning to quotes, $, %, <, #, { and } and ends a value at the line end.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+,:@=-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Dovecot's longest unix socket below the directory; a socket path must fit in sun_path (108 bytes with NUL).
_LONGEST_SOCKET = "run/token-login/imap-urlauth"
_SUN_PATH_MAX = 107


def mail_owner_ids() -> tuple[int, int]:
    """uid and gid of the `dovecot` user, a valid non-root owner for test Maildirs."""
    try:
        entry = pwd.getpwnam(_MAIL_USER)
    except KeyError:
        raise RuntimeError(f"user {_MAIL_USER!r} not found (install dovecot-core)") from None
    return entry.pw_uid, entry.pw_gid


def _config_path(path: Path) -> str:
    """path as a Dovecot config value; refuse characters that the config syntax would interpret."""
    text = str(path)
    if not _PLAIN_PATH.fullmatch(text):
        raise ValueError(f"path {text!r} has characters Dovecot's config would interpret; use a plain path")
    return text


def _config(directory: Path, port: int, mail_location: str, greeting: str) -> str:
    """Text of dovecot.conf: self-contained (no !include of /etc/dovecot), every path under directory."""
    run = _config_path(directory / "run")
    return f"""\
# Written by devservers.dovecot: a private test instance on 127.0.0.1; nothing of /etc/dovecot is used.
base_dir = {run}
state_dir = {run}
log_path = {_config_path(directory / "dovecot.log")}
login_greeting = {greeting}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_debug = no
# Refusals would answer after 2 s (with 0: ~0.5 s).
auth_failure_delay = 0
mail_location = {mail_location}
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 100
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
# No auth penalty: after a refusal, the next logins from 127.0.0.1 would wait 2-15 s.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
# The checkpassword program runs in the auth process: as root it can run anything (e.g. a venv under /root).
service auth {{
  user = root
}}
passdb {{
  driver = checkpassword
  args = {_config_path(directory / "checkpassword.sh")}
}}
userdb {{
  driver = prefetch
}}
"""


def _wrapper(checkpassword: Sequence[str], env: Mapping[str, str]) -> str:
    """Text of checkpassword.sh: export env, then exec the command line with Dovecot's arguments appended."""
    lines = [
        "#!/bin/sh",
        "# Written by devservers.dovecot: Dovecot runs passdb programs with a cleared environment.",
    ]
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL character")
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(f'exec {shlex.join(checkpassword)} "$@"')
    return "\n".join(lines) + "\n"


def _read_greeting(port: int, timeout: float = 1.0) -> bytes:
    """First line the server on 127.0.0.1:port sends, or b"" if none."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(1024)
                if not chunk:
                    break
                buf += chunk
            return buf.split(b"\n", 1)[0]
    except OSError:
        return b""


def _tree_pids(master: int) -> list[int]:
    """Live processes of the Dovecot whose master has pid master (the session spawn_detached started)."""
    try:
        comm = (Path("/proc") / str(master) / "stat").read_text().split("(", 1)[1].rsplit(")", 1)[0]
    except (OSError, IndexError):
        comm = None  # master gone: what is left of its session are its orphans
    if comm is not None and comm != _PROC_NAME:
        return []  # the pid now belongs to another program, and so does the session of that id
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[3]) == master and fields[0] not in ("Z", "X", "x"):
            pids.append(int(entry.name))
    return pids


def _signal_tree(master: int, sig: signal.Signals, signalled: set[int]) -> bool:
    """Send sig to those not signalled yet (the master may respawn some); True once all are gone."""
    pids = _tree_pids(master)
    for pid in pids:
        if pid not in signalled:
            signalled.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    return not pids and not _proc.pid_alive(master, _PROC_NAME)


def _stop_tree(master: int) -> None:
    """SIGTERM a Dovecot master and the processes it started, wait until all are gone (SIGKILL after 10 s)."""
    # The master alone takes ~1 s to exit on SIGTERM and leaves login processes that still have a client (and
    # auth, log, anvil ...) running: signalling the whole tree at once ends it in milliseconds.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if _proc.poll(functools.partial(_signal_tree, master, sig, set()), STOP_TIMEOUT):
            break
    _proc.reap(master)


@dataclass
class DovecotInstance(_proc.SavedInstance):
    """A running (or stopped) private Dovecot; see start_dovecot."""

    directory: Path
    port: int
    pid: int

    def __post_init__(self) -> None:
        """Normalise the directory path."""
        self.directory = Path(self.directory)

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the IMAP listener, e.g. for imaplib.IMAP4(*inst.address)."""
        return ("127.0.0.1", self.port)

    @property
    def running(self) -> bool:
        """True if the Dovecot master process is alive."""
        return _proc.pid_alive(self.pid, _PROC_NAME)

    def urls(self) -> dict[str, Any]:
        return {"url": f"imap://127.0.0.1:{self.port}"}

    def log_text(self) -> str:
        """Everything in directory/dovecot.log (logins, refusals, errors), or "" if there is none yet."""
        try:
            return (self.directory / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM the master and its children, wait until all are gone (SIGKILL after 10 s); idempotent."""
        _stop_tree(self.pid)


class _BindError(RuntimeError):
    """Dovecot could not bind its IMAP port."""


def _launch(directory: Path, port: int, mail_location: str) -> int:
    """Start Dovecot in its own session, wait for its greeting on 127.0.0.1:port; return the master pid."""
    # -F (foreground) keeps the master our child, not daemonized, so that we see and reap its exit at once
    # (see _proc.spawn_detached); what it prints before its log is set up goes to directory/dovecot.out.
    run = directory / "run"
    # A stale master.pid naming a reused pid would make Dovecot refuse to start ("already running").
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    run.chmod(0o755)  # Dovecot's unprivileged processes work inside it; it creates login/ etc. itself
    greeting = f"devservers dovecot {secrets.token_hex(8)} ready."
    conf = directory / "dovecot.conf"
    conf.write_text(_config(directory, port, mail_location, greeting))
    log, out = directory / "dovecot.log", directory / "dovecot.out"
    cmd = [_proc.find_tool("dovecot"), "-F", "-c", str(conf)]
    log_offset = log.stat().st_size if log.exists() else 0
    out_offset = out.stat().st_size if out.exists() else 0
    proc = _proc.spawn_detached(cmd, out)

    def failure(reason: str) -> RuntimeError:
        log_text = _proc.tail(log, offset=log_offset)
        out_text = _proc.tail(out, offset=out_offset)
        text = (
            f"{reason}\ncommand: {_proc.format_cmd(cmd)}\ndovecot log ({log}):\n{log_text}\n"
            f"dovecot output ({out}):\n{out_text}"
        )
        return _BindError(text) if _BIND_FAILURE.search(log_text + out_text) else RuntimeError(text)

    def ready() -> bool:
        rc = proc.poll()
        if rc is not None:
            _stop_tree(proc.pid)
            raise failure(f"dovecot exited with status {rc} while starting")
        # A greeting alone could come from another server holding the port: ours carries a random token.
        line = _read_greeting(port)
        return line.startswith(b"* OK") and greeting.encode() in line

    if not _proc.poll(ready, START_TIMEOUT):
        _stop_tree(proc.pid)
        raise failure(f"dovecot did not greet on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")
    try:
        pid = int((run / "master.pid").read_text().strip())
    except (OSError, ValueError) as exc:
        _stop_tree(proc.pid)
        raise failure(f"dovecot greeted but {run / 'master.pid'} is unreadable: {exc}") from exc
    if pid != proc.pid:
        _stop_tree(proc.pid)
        raise failure(f"{run / 'master.pid'} names pid {pid}, but the master we started is {proc.pid}")
    return pid


def start_dovecot(
    directory: Path,
    *,
    checkpassword: Sequence[str],
    env: Mapping[str, str] | None = None,
    mail_location: str = "maildir:~",
    port: int | None = None,
    stop_at_exit: bool = True,
) -> DovecotInstance:
    """Start a private Dovecot IMAP on 127.0.0.1 whose passdb runs checkpassword with env (None: PATH)."""
    if isinstance(checkpassword, str) or not checkpassword:
        raise TypeError("checkpassword must be a non-empty sequence of arguments, not a string")
    if "\n" in mail_location or "\r" in mail_location:
        raise ValueError(f"mail_location must be one line: {mail_location!r}")
    d = Path(directory).resolve()
    _config_path(d)
    if len(os.fsencode(d / _LONGEST_SOCKET)) > _SUN_PATH_MAX:
        limit = _SUN_PATH_MAX - len(_LONGEST_SOCKET) - 1
        raise ValueError(f"directory path too long for Dovecot's unix sockets (at most {limit} bytes): {d}")
    d.mkdir(parents=True, exist_ok=True)
    if (d / "instance.json").exists():
        try:
            old: DovecotInstance | None = DovecotInstance.load(d)
        except (ValueError, TypeError, KeyError, OSError):
            old = None
        if old is not None and old.running:
            raise RuntimeError(f"a dovecot (pid {old.pid}) is already running in {d}; stop it first")
    if env is None:
        env = {"PATH": os.environ.get("PATH", os.defpath)}
    wrapper = d / "checkpassword.sh"
    wrapper.write_text(_wrapper(checkpassword, env))
    wrapper.chmod(0o700)  # it may carry secrets in env; only the auth process (root) runs it
    for attempt in range(2):
        chosen = free_port() if port is None else port
        try:
            pid = _launch(d, chosen, mail_location)
        except _BindError:
            if attempt == 1 or port is not None:
                raise
            continue
        break
    inst = DovecotInstance(directory=d, port=chosen, pid=pid)
    inst.save()
    if stop_at_exit:
        _proc.stop_at_exit(inst)
    return inst
