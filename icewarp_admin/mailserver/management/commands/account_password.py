"""Change a mail user's password: `manage.py account_password ADDRESS`, old and new password on two lines."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from directory_sync.auth import change_password
from directory_sync.models import SignIn
from icewarp_admin.mailserver.management.commands._mail_user import (
    add_common_arguments,
    client_address,
    read_secret_lines,
    report,
)


class Command(BaseCommand):
    help = (
        "Change the password of ADDRESS: the current password on the first line of standard input, the new "
        "one on the second. A synced account's password is changed in the directory. Prints "
        '{"ok": bool, "account": ..., "reason": "...", "message": "..."}; exit 0 when changed, 1 when '
        "refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser)

    def handle(self, *args: Any, address: str, client: str, **options: Any) -> None:
        client = client_address(client)
        old, new = read_secret_lines(sys.stdin, ("Current password: ", "New password: "))
        result = change_password(
            address=address, old_password=old, new_password=new, client=client, channel=SignIn.Channel.COMMAND
        )
        report(result, stdout=self.stdout)
