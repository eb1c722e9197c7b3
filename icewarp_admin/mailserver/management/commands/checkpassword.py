"""The checkpassword protocol (D. J. Bernstein's, as Dovecot's `passdb { driver = checkpassword }` runs it):
a mail server signs our users in through the same authentication as the self-service pages.

`manage.py checkpassword PROGRAM [ARGS...]` reads `user\\0password\\0timestamp\\0` from file descriptor 3.
Signed in, it sets USER (the account's address), HOME (its Maildir under the mail root), userdb_uid and
userdb_gid (the mailbox owner, MAIL_OWNER) and EXTRA naming them, then runs PROGRAM (Dovecot's
checkpassword-reply) in its place. Refused: exit 1; a directory or database that does not answer: exit 111
(temporary), so that the mail client is told to try again rather than that the password is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandParser

from directory_sync.auth import authenticate
from directory_sync.models import SignIn
from icewarp_admin.mailserver.services.mailboxes import mail_owner, mailbox_absolute_path

CREDENTIALS_FD = 3
MAX_INPUT = 512
EXIT_REFUSED = 1
EXIT_PROTOCOL = 2
EXIT_TEMPORARY = 111


def read_credentials(fd: int = CREDENTIALS_FD) -> tuple[str, str]:
    """The user and password the mail server wrote to fd (at most 512 bytes, fields ended by NUL)."""
    data = b""
    while len(data) < MAX_INPUT:
        chunk = os.read(fd, MAX_INPUT - len(data))
        if not chunk:
            break
        data += chunk
    fields = data.split(b"\0")
    if len(fields) < 3:
        raise ValueError("expected user\\0password\\0timestamp\\0 on file descriptor 3")
    return fields[0].decode("utf-8", "replace"), fields[1].decode("utf-8", "replace")


def _leave(code: int, message: str) -> NoReturn:
    sys.stderr.write(f"checkpassword: {message}\n")
    sys.stderr.flush()
    os._exit(code)  # no cleanup handlers: nothing of ours may write to the mail server's descriptors


class Command(BaseCommand):
    help = (
        "Sign a mail user in for a mail server speaking the checkpassword protocol (credentials on fd 3); on "
        "success run PROGRAM with USER, HOME, userdb_uid and userdb_gid set."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("program", help="What to run on success (Dovecot passes checkpassword-reply).")
        parser.add_argument("program_args", nargs=argparse.REMAINDER, help="Its arguments.")

    def handle(self, *args: Any, program: str, program_args: list[str], **options: Any) -> None:
        try:
            user, password = read_credentials()
        except (OSError, ValueError) as exc:
            _leave(EXIT_PROTOCOL, f"cannot read the credentials: {exc}")
        try:
            result = authenticate(
                address=user,
                password=password,
                client=os.environ.get("TCPREMOTEIP", ""),
                channel=SignIn.Channel.IMAP,
            )
        except Exception as exc:  # the database itself failed: a temporary failure, not a wrong password
            _leave(EXIT_TEMPORARY, f"cannot check the password now: {type(exc).__name__}: {exc}")
        if result.reason == SignIn.Reason.DIRECTORY_DOWN:
            _leave(EXIT_TEMPORARY, f"{user}: {result.detail}")
        if not result.ok or result.account is None:
            _leave(EXIT_REFUSED, f"{user}: {result.reason}")
        account = result.account
        uid, gid = mail_owner()
        extra = os.environ.get("EXTRA", "").split()
        env = dict(os.environ)
        env.update(
            USER=str(account),
            HOME=str(mailbox_absolute_path(account.mailbox_path)),
            userdb_uid=str(uid),
            userdb_gid=str(gid),
            EXTRA=" ".join([*extra, *(name for name in ("userdb_uid", "userdb_gid") if name not in extra)]),
        )
        sys.stdout.flush()
        try:
            os.execvpe(program, [program, *program_args], env)  # noqa: S606 - the protocol: exec, no shell
        except OSError as exc:
            _leave(EXIT_TEMPORARY, f"cannot run {program}: {exc}")
