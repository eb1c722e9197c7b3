"""IceWarp's `tool` command line: tool create domain NAME, tool get|set system VARIABLE [VALUE]..."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from icewarp_admin.mailserver.selectors import find_domain, system_variable_value, system_variables
from icewarp_admin.mailserver.services.accounts import create_account
from icewarp_admin.mailserver.services.domains import create_domain, delete_domain
from icewarp_admin.mailserver.services.system import set_system_variable
from icewarp_admin.mailserver.system_variables import find_variable
from icewarp_admin.mailserver.validators import split_address

USAGE = """\
tool create domain NAME [d_description TEXT]
tool create account USER@DOMAIN [u_name FULL_NAME] [u_password PASSWORD]
tool delete domain NAME
tool get system VARIABLE [VARIABLE...]     (or: tool get system all)
tool set system VARIABLE VALUE [VARIABLE VALUE...]"""


class Command(BaseCommand):
    help = "IceWarp-compatible command line.\n" + USAGE

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("verb", choices=["create", "delete", "get", "set"])
        parser.add_argument("kind", choices=["domain", "account", "system"])
        parser.add_argument("arguments", nargs="*")

    def handle(self, *args: Any, verb: str, kind: str, arguments: list[str], **options: Any) -> None:
        handler = {
            ("create", "domain"): self.create_domain,
            ("create", "account"): self.create_account,
            ("delete", "domain"): self.delete_domain,
            ("get", "system"): self.get_system,
            ("set", "system"): self.set_system,
        }.get((verb, kind))
        if handler is None:
            raise CommandError(f"“tool {verb} {kind}” is not supported. Usage:\n{USAGE}")
        try:
            handler(arguments)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        except LookupError as error:
            raise CommandError(str(error.args[0])) from error

    def create_domain(self, arguments: list[str]) -> None:
        if not arguments:
            raise CommandError("Name the domain: tool create domain NAME")
        name, properties = arguments[0], self.pairs(arguments[1:], allowed={"d_description"})
        domain = create_domain(name=name, description=properties.get("d_description", ""))
        self.stdout.write(f"Domain {domain.name} created.")

    def create_account(self, arguments: list[str]) -> None:
        if not arguments:
            raise CommandError("Name the account: tool create account USER@DOMAIN")
        local_part, domain_name = split_address(arguments[0])
        properties = self.pairs(arguments[1:], allowed={"u_name", "u_password"})
        domain = find_domain(domain_name)
        if domain is None:
            raise CommandError(
                f"There is no domain {domain_name}; create it first: tool create domain {domain_name}"
            )
        account = create_account(
            domain=domain,
            username=local_part,
            full_name=properties.get("u_name", ""),
            password=properties.get("u_password", ""),
        )
        self.stdout.write(f"Account {account} created.")

    def delete_domain(self, arguments: list[str]) -> None:
        if len(arguments) != 1:
            raise CommandError("Name one domain: tool delete domain NAME")
        domain = find_domain(arguments[0])
        if domain is None:
            raise CommandError(f"There is no domain {arguments[0]}.")
        delete_domain(domain=domain)
        self.stdout.write(f"Domain {domain.name} deleted.")

    def get_system(self, arguments: list[str]) -> None:
        if not arguments:
            raise CommandError("Name a variable: tool get system VARIABLE (or all)")
        if [name.lower() for name in arguments] == ["all"]:
            for spec, value in system_variables():
                self.stdout.write(f"{spec.name}: {value}")
            return
        specs = [find_variable(name) for name in arguments]
        for spec in specs:
            self.stdout.write(f"{spec.name}: {system_variable_value(name=spec.name)}")

    def set_system(self, arguments: list[str]) -> None:
        if not arguments or len(arguments) % 2:
            raise CommandError("Give variables and values in pairs: tool set system VARIABLE VALUE")
        pairs = list(zip(arguments[::2], arguments[1::2], strict=True))
        # All or nothing: a bad second pair must not leave the first one applied.
        with transaction.atomic():
            stored = [
                (find_variable(name).name, set_system_variable(name=name, value=value))
                for name, value in pairs
            ]
        for name, value in stored:
            self.stdout.write(f"{name}: {value}")

    def pairs(self, arguments: list[str], *, allowed: set[str]) -> dict[str, str]:
        if len(arguments) % 2:
            raise CommandError(f"Properties come in pairs (NAME VALUE); “{arguments[-1]}” has no value.")
        result = {}
        for name, value in zip(arguments[::2], arguments[1::2], strict=True):
            if name.lower() not in allowed:
                raise CommandError(f"Unknown property “{name}”; known here: {', '.join(sorted(allowed))}.")
            result[name.lower()] = value
        return result
