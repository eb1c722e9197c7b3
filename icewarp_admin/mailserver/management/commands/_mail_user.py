"""What account_auth and account_password share: reading passwords from standard input, the client option,
the JSON they print."""

from __future__ import annotations

import getpass
import ipaddress
import json
import sys
from typing import Any, TextIO

from django.core.management.base import CommandError, CommandParser

from directory_sync.auth import AuthResult


def add_common_arguments(parser: CommandParser) -> None:
    parser.add_argument("address", help="Any address of the account (or username@domain).")
    parser.add_argument(
        "--client",
        default="",
        help="The IP address the person connects from, when acting for a remote client (throttled per IP).",
    )


def client_address(value: str) -> str:
    """The --client value as a normalized IP address, or a CommandError saying what to give."""
    if not value.strip():
        return ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise CommandError(f"--client takes an IP address such as 192.0.2.10, not “{value}”.") from None


def read_secret_lines(stdin: TextIO, prompts: tuple[str, ...]) -> list[str]:
    """One password per line of standard input (prompted without echo on a terminal); a missing line reads as
    empty. Only the line end is removed: spaces belong to the password."""
    if stdin.isatty():
        return [getpass.getpass(prompt) for prompt in prompts]
    lines = []
    for _ in prompts:
        line = stdin.readline()
        lines.append(line[:-1] if line.endswith("\n") else line)
        lines[-1] = lines[-1].removesuffix("\r")
    return lines


def report(result: AuthResult, *, stdout: Any) -> None:
    """Print the stable JSON contract and set the exit code: 0 when it worked, 1 when refused."""
    data = {
        "ok": result.ok,
        "account": str(result.account) if result.account is not None else None,
        "reason": str(result.reason),
        "message": result.message,
    }
    if result.warning:
        data["warning"] = result.warning
    stdout.write(json.dumps(data, ensure_ascii=False))
    if not result.ok:
        sys.exit(1)
