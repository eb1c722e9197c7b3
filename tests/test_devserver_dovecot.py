"""Tests for devservers.dovecot: a real private Dovecot IMAP with a checkpassword passdb (no Django)."""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devservers.dovecot import DovecotInstance, mail_owner_ids, start_dovecot

PYTHON = "/usr/bin/python3"
MARKER = "marker-7f3a"

pytestmark = pytest.mark.skipif(
    not (Path("/usr/sbin/dovecot").exists() and Path(PYTHON).exists()),
    reason="needs dovecot-imapd (/usr/sbin/dovecot) and /usr/bin/python3",
)

# Accepts only alice/s3cret, only if start_dovecot's env reached it (MARKER); HOME etc. come from env too.
CHECKPASSWORD = f"""\
import os
import sys

data = b""
while chunk := os.read(3, 1024):
    data += chunk
user, password = data.split(b"\\0")[:2]
if user == b"alice" and password == b"s3cret" and os.environ.get("MARKER") == {MARKER!r}:
    os.environ.update(
        USER="alice",
        HOME=os.environ["MAIL_HOME"],
        userdb_uid=os.environ["MAIL_UID"],
        userdb_gid=os.environ["MAIL_GID"],
        EXTRA="userdb_uid userdb_gid",
    )
    os.execv(sys.argv[1], sys.argv[1:])
sys.exit(1)
"""

Starter = Callable[[Path, str], DovecotInstance]


def session_processes(sid: int) -> list[str]:
    """Command lines of the live processes in session sid (the server's whole process tree)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, NotADirectoryError):
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def wait_for_log(inst: DovecotInstance, text: str, timeout: float = 2.0) -> str:
    """The log once it contains text (the log process writes asynchronously); the log as it is otherwise."""
    deadline = time.monotonic() + timeout
    while text not in (log := inst.log_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return log


def login(inst: DovecotInstance, user: str, password: str) -> imaplib.IMAP4:
    """A logged-in IMAP connection (raises imaplib.IMAP4.error when refused)."""
    conn = imaplib.IMAP4(*inst.address, timeout=5)
    try:
        conn.login(user, password)
    except BaseException:
        conn.shutdown()
        raise
    return conn


@pytest.fixture(scope="module")
def mail_home() -> Iterator[Path]:
    # Outside pytest's tmp dirs: they are 0700 root, and the `dovecot` user (mail owner) cannot traverse them.
    base = Path(tempfile.mkdtemp(prefix="dovecot-home-", dir="/tmp"))
    try:
        base.chmod(0o755)
        home = base / "alice"
        home.mkdir()
        os.chown(home, *mail_owner_ids())
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def start(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mail_home: Path
) -> Starter:
    """start(directory, marker): a Dovecot whose program gets MARKER=marker, stopped at module teardown."""
    program = tmp_path_factory.mktemp("checkpassword") / "checkpassword.py"
    program.write_text(CHECKPASSWORD)  # in a 0700 root dir: fine, the auth process runs it as root
    uid, gid = mail_owner_ids()

    def starter(directory: Path, marker: str) -> DovecotInstance:
        env = {
            "PATH": "/usr/bin:/bin",
            "MARKER": marker,
            "MAIL_HOME": str(mail_home),
            "MAIL_UID": str(uid),
            "MAIL_GID": str(gid),
        }
        inst = start_dovecot(directory, checkpassword=[PYTHON, str(program)], env=env, stop_at_exit=False)
        request.addfinalizer(inst.stop)
        return inst

    return starter


@pytest.fixture(scope="module")
def dovecot(start: Starter, tmp_path_factory: pytest.TempPathFactory) -> DovecotInstance:
    return start(tmp_path_factory.mktemp("dovecot"), MARKER)


def test_files_are_private_to_the_instance(dovecot: DovecotInstance) -> None:
    text = (dovecot.directory / "dovecot.conf").read_text()
    conf = "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))
    assert "!include" not in conf
    assert "/etc/" not in conf
    assert "ssl = no\n" in conf
    assert f"base_dir = {dovecot.directory}/run\n" in conf
    assert f"    address = 127.0.0.1\n    port = {dovecot.port}\n" in conf
    wrapper = (dovecot.directory / "checkpassword.sh").read_text()
    assert f"export MARKER={MARKER}\n" in wrapper
    assert wrapper.rstrip().endswith('checkpassword.py "$@"')
    assert os.access(dovecot.directory / "checkpassword.sh", os.X_OK)
    assert dovecot.address == ("127.0.0.1", dovecot.port)
    assert dovecot.running
    assert int((dovecot.directory / "run" / "master.pid").read_text()) == dovecot.pid


def test_login_and_select_inbox(dovecot: DovecotInstance, mail_home: Path) -> None:
    conn = login(dovecot, "alice", "s3cret")
    try:
        assert conn.select("INBOX") == ("OK", [b"0"])
    finally:
        conn.logout()
    assert (mail_home / "cur").is_dir()  # Dovecot made the Maildir in HOME, as the mail user
    assert (mail_home / "cur").stat().st_uid == mail_owner_ids()[0]
    assert "imap-login: Info: Login: user=<alice>" in wait_for_log(dovecot, "Login: user=<alice>")


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("bob", "s3cret")])
def test_refused_login(dovecot: DovecotInstance, user: str, password: str) -> None:
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        login(dovecot, user, password)
    refusal = f"checkpassword({user},127.0.0.1,"
    log = wait_for_log(dovecot, refusal)
    assert refusal in log
    assert "Login failed (status=1)" in log


def test_env_reaches_the_program(start: Starter, tmp_path: Path) -> None:
    other = start(tmp_path / "srv", "some-other-marker")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        login(other, "alice", "s3cret")


def test_stop_leaves_no_process(start: Starter, tmp_path: Path) -> None:
    inst = start(tmp_path / "srv", MARKER)
    login(inst, "alice", "s3cret").logout()
    assert any("dovecot/auth" in cmd for cmd in session_processes(inst.pid))
    inst.stop()
    assert not inst.running
    assert session_processes(inst.pid) == []
    with pytest.raises(OSError), socket.create_connection(inst.address, timeout=1):
        pass
    inst.stop()  # idempotent


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sequence"):
        start_dovecot(tmp_path, checkpassword="/bin/true")
    with pytest.raises(ValueError, match="environment variable name"):
        start_dovecot(tmp_path, checkpassword=["/bin/true"], env={"NOT-A-NAME": "x"})
    with pytest.raises(ValueError, match="interpret"):
        start_dovecot(tmp_path / "with space", checkpassword=["/bin/true"])
    with pytest.raises(ValueError, match="too long"):
        start_dovecot(tmp_path / ("x" * 80), checkpassword=["/bin/true"])
