"""Print a domain's accounts and groups as JSON (a stable contract for automation and tests)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from icewarp_admin.mailserver.selectors import domain_export, find_domain


class Command(BaseCommand):
    help = "Print a domain's accounts and groups as JSON, sorted by e-mail and alias."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The domain name.")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        domain = find_domain(name)
        if domain is None:
            raise CommandError(f"There is no domain {name}.")
        self.stdout.write(json.dumps(domain_export(domain=domain), indent=2, ensure_ascii=False))
