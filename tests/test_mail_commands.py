"""The mail users' command-line contract: account_auth, account_password and the checkpassword protocol."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from devservers.ports import free_port
from devservers.slapd import SlapdInstance
from directory_sync.models import DirectorySettings, SignIn
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.accounts import create_account
from tests.directory_helpers import configure, new_directory, sync
from tests.servers import ROOT, manage_py_env

PASSWORD = "Cmd-Passw0rd-1"


def run(
    command: str, address: str, stdin: str, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, Any]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out = io.StringIO()
    code = 0
    try:
        call_command(command, address, *args, stdout=out)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(out.getvalue())


@pytest.fixture
def synced(slapd: SlapdInstance, domain: Domain) -> str:
    directory = new_directory(slapd)
    dn = directory.add_person("cody", mail="cody@example.com", userPassword=PASSWORD)
    configure(domain, directory)
    sync(domain)
    return dn


@pytest.mark.django_db
def test_account_auth_prints_the_contract_and_exits_by_outcome(
    synced: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, data = run("account_auth", "CODY@example.com", PASSWORD + "\n", monkeypatch)
    assert (code, data) == (
        0,
        {"ok": True, "account": "cody@example.com", "reason": "ok", "message": "Signed in."},
    )
    code, data = run("account_auth", "cody@example.com", "wrong\n", monkeypatch)
    assert (code, data["ok"], data["reason"], data["account"]) == (
        1,
        False,
        "bad_password",
        "cody@example.com",
    )
    code, data = run("account_auth", "nobody@example.com", PASSWORD, monkeypatch)
    assert (code, data["reason"], data["account"]) == (1, "unknown", None)
    assert SignIn.objects.filter(channel="command").count() == 3


@pytest.mark.django_db
def test_a_password_with_spaces_and_no_line_end_is_read_whole(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_account(domain=domain, username="spacey", password=" two words ")
    assert run("account_auth", "spacey@example.com", " two words \r\n", monkeypatch)[0] == 0
    assert run("account_auth", "spacey@example.com", " two words ", monkeypatch)[0] == 0
    assert run("account_auth", "spacey@example.com", "two words\n", monkeypatch)[0] == 1


@pytest.mark.django_db
def test_a_bad_client_address_is_refused_with_what_to_give(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.management.base import CommandError

    monkeypatch.setattr(sys, "stdin", io.StringIO("x\n"))
    with pytest.raises(CommandError, match="--client takes an IP address"):
        call_command("account_auth", "a@example.com", "--client", "evil;rm", stdout=io.StringIO())


@pytest.mark.django_db
def test_account_password_changes_the_directory_password(
    synced: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, data = run("account_password", "cody@example.com", f"{PASSWORD}\nshort\n", monkeypatch)
    assert (code, data["reason"]) == (1, "policy")
    assert "too short" in data["message"]
    code, data = run("account_password", "cody@example.com", f"{PASSWORD}\nCmd-Passw0rd-2\n", monkeypatch)
    assert (code, data["ok"], data["reason"]) == (0, True, "ok")
    assert run("account_auth", "cody@example.com", "Cmd-Passw0rd-2\n", monkeypatch)[0] == 0
    code, data = run("account_password", "cody@example.com", f"{PASSWORD}\nCmd-Passw0rd-3\n", monkeypatch)
    assert (code, data["reason"]) == (1, "bad_password")
    code, data = run("account_password", "cody@example.com", "Cmd-Passw0rd-2\n", monkeypatch)
    assert (code, data["reason"], data["message"]) == (
        1,
        "policy",
        "Enter a new password (at most 1024 characters).",
    )


REPLY = """import json, os, sys
keys = ("USER", "HOME", "userdb_uid", "userdb_gid", "EXTRA", "TCPREMOTEIP")
with open(sys.argv[1], "w") as out:
    json.dump({key: os.environ.get(key) for key in keys}, out)
"""


def checkpassword(
    credentials: bytes, reply: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[bytes]:
    """Run `manage.py checkpassword` as a mail server does: credentials on file descriptor 3."""
    read_end, write_end = os.pipe()
    os.write(write_end, credentials)
    os.close(write_end)
    try:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "checkpassword", *reply],
            pass_fds=(3,), preexec_fn=lambda: os.dup2(read_end, 3), env=env, capture_output=True,
            timeout=60, cwd=ROOT,
        )  # fmt: skip
    finally:
        os.close(read_end)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_checkpassword_hands_the_mailbox_to_the_reply_program(synced: str, tmp_path: Path) -> None:
    account = Account.objects.get(username="cody")
    reply = tmp_path / "reply.py"
    reply.write_text(REPLY)
    seen = tmp_path / "seen.json"
    env = manage_py_env(TCPREMOTEIP="203.0.113.5", EXTRA="userdb_quota_rule")
    done = checkpassword(
        b"Cody@Example.com\0" + PASSWORD.encode() + b"\0" + b"1700000000\0",
        [sys.executable, str(reply), str(seen)],
        env,
    )
    assert done.returncode == 0, done.stderr.decode()
    handed = json.loads(seen.read_text())
    root = Path(env["MAIL_ROOT"]).resolve()
    assert handed["USER"] == "cody@example.com"
    assert handed["HOME"] == str(root / account.mailbox_path)
    assert (int(handed["userdb_uid"]), int(handed["userdb_gid"])) == (
        os.stat(root).st_uid,
        os.stat(root).st_gid,
    )
    assert handed["EXTRA"] == "userdb_quota_rule userdb_uid userdb_gid"
    record = SignIn.objects.get(account=account)
    assert (record.channel, record.client, record.reason) == ("imap", "203.0.113.5", "ok")
    assert PASSWORD.encode() not in done.stderr + done.stdout

    refused = checkpassword(
        b"cody@example.com\0wrong\0" + b"1\0", [sys.executable, str(reply), str(seen)], env
    )
    assert refused.returncode == 1
    assert b"bad_password" in refused.stderr and b"wrong" not in refused.stderr.replace(b"bad_password", b"")
    garbled = checkpassword(b"no separators", [sys.executable, str(reply), str(seen)], env)
    assert garbled.returncode == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_checkpassword_says_temporary_when_the_directory_is_down(synced: str, tmp_path: Path) -> None:
    DirectorySettings.objects.update(host=f"ldap://127.0.0.1:{free_port()}", backup_host="")
    done = checkpassword(
        b"cody@example.com\0" + PASSWORD.encode() + b"\0" + b"1\0", ["/bin/true"], manage_py_env()
    )
    assert done.returncode == 111, done.stderr.decode()
    assert b"connection refused" in done.stderr.lower()
