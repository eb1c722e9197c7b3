"""A real IMAP server signs our users in: a private Dovecot whose passdb is `manage.py checkpassword`, serving
the Maildir the console created, with the password the person keeps in the directory."""

from __future__ import annotations

import imaplib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from devservers.dovecot import DovecotInstance, mail_owner_ids, start_dovecot
from devservers.slapd import SlapdInstance
from icewarp_admin.mailserver.models import Account, Domain
from tests.directory_helpers import configure, new_directory, sync
from tests.servers import ROOT, manage_py_env

pytestmark = [
    pytest.mark.skipif(not Path("/usr/sbin/dovecot").exists(), reason="needs dovecot-imapd"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "Imap-Passw0rd-1"
CHILD_ENV = ("PATH", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "SECRETS_ENCRYPTION_KEYS",
             "MAIL_ROOT", "CONFIG_DIR", "MAIL_OWNER", "VAR_DIR")  # fmt: skip


@pytest.fixture
def dovecot_mail_root(settings: Any) -> Iterator[Path]:
    """A mail root Dovecot's unprivileged processes can reach (pytest's own folders are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="mailroot-", dir="/tmp"))
    root.chmod(0o711)
    settings.MAIL_ROOT = root
    settings.MAIL_OWNER = "dovecot"
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_mail_root: Path, tmp_path: Path) -> Iterator[DovecotInstance]:
    env = manage_py_env(VAR_DIR=str(tmp_path / "var"))
    # Dovecot's socket paths must stay short: pytest's folders (per xdist worker) are too deep.
    folder = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
    instance = start_dovecot(
        folder,
        checkpassword=[sys.executable, str(ROOT / "manage.py"), "checkpassword"],
        env={name: env[name] for name in CHILD_ENV if name in env},
        stop_at_exit=False,
    )
    yield instance
    instance.stop()
    shutil.rmtree(folder, ignore_errors=True)


def imap_login(server: DovecotInstance, user: str, password: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4(*server.address, timeout=30)
    imap.login(user, password)
    return imap


def refused(server: DovecotInstance, user: str, password: str) -> str:
    with pytest.raises(imaplib.IMAP4.error) as failure:
        imap_login(server, user, password)
    return str(failure.value)


def test_dovecot_signs_a_synced_person_in_and_serves_the_console_made_maildir(
    slapd: SlapdInstance, domain: Domain, dovecot: DovecotInstance, dovecot_mail_root: Path
) -> None:
    directory = new_directory(slapd)
    directory.add_person("ivy", mail=["ivy@example.com", "ivy.ink@example.com"], userPassword=PASSWORD)
    configure(domain, directory)
    assert sync(domain).status == "succeeded"
    account = Account.objects.get(username="ivy")
    mailbox = dovecot_mail_root / account.mailbox_path
    uid, gid = mail_owner_ids()
    assert (mailbox.stat().st_uid, mailbox.stat().st_gid) == (uid, gid)
    assert (mailbox.parent.stat().st_uid, mailbox.parent.stat().st_gid) == (uid, gid)
    # A message already in the console-made Maildir: the IMAP server must show this very folder.
    for sub in ("new", "cur", "tmp"):
        (mailbox / sub).mkdir()
        os.chown(mailbox / sub, uid, gid)
    message = mailbox / "new" / "1700000000.M1P1.test"
    message.write_bytes(b"From: a@example.com\r\nSubject: hello\r\n\r\nHi Ivy\r\n")
    os.chown(message, uid, gid)

    imap = imap_login(dovecot, "ivy.ink@example.com", PASSWORD)
    status, data = imap.select("INBOX")
    assert (status, data) == ("OK", [b"1"])
    imap.logout()

    assert "AUTHENTICATIONFAILED" in refused(dovecot, "ivy@example.com", "Wrong-Passw0rd-1")
    assert "AUTHENTICATIONFAILED" in refused(dovecot, "nobody@example.com", PASSWORD)

    # The person changes the password on the self-service pages; the next IMAP login takes the new one only.
    response = Client(REMOTE_ADDR="192.0.2.44").post(
        "/me/password/",
        {"address": "ivy@example.com", "current_password": PASSWORD, "new_password": "Imap-Passw0rd-2",
         "new_password_again": "Imap-Passw0rd-2"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()
    imap = imap_login(dovecot, "ivy@example.com", "Imap-Passw0rd-2")
    assert imap.select("INBOX")[0] == "OK"
    imap.logout()
    assert "AUTHENTICATIONFAILED" in refused(dovecot, "ivy@example.com", PASSWORD)
    assert "checkpassword" in dovecot.log_text()
