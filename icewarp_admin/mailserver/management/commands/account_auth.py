"""Check a mail user's password: `manage.py account_auth ADDRESS` with the password on standard input."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from directory_sync.auth import authenticate
from directory_sync.models import SignIn
from icewarp_admin.mailserver.management.commands._mail_user import (
    add_common_arguments,
    client_address,
    read_secret_lines,
    report,
)


class Command(BaseCommand):
    help = (
        "Does ADDRESS sign in with the password on standard input? Prints "
        '{"ok": bool, "account": "user@domain" | null, "reason": "...", "message": "..."}; exit 0 when it '
        "signs in, 1 when refused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_common_arguments(parser)

    def handle(self, *args: Any, address: str, client: str, **options: Any) -> None:
        client = client_address(client)
        (password,) = read_secret_lines(sys.stdin, ("Password: ",))
        result = authenticate(
            address=address, password=password, client=client, channel=SignIn.Channel.COMMAND
        )
        report(result, stdout=self.stdout)
