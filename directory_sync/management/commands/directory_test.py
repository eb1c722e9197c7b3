"""Run Test connection for a domain in the foreground: the same check the tab's button queues."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.services.connection_check import check_to_text, run_connection_check
from directory_sync.services.settings import settings_for
from icewarp_admin.mailserver.selectors import find_domain


class Command(BaseCommand):
    help = (
        "Check the domain's directory server: name lookup, TCP, TLS, bind, root DSE, counts, sample entries."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, domain: str, json: bool, **options: Any) -> None:
        found = find_domain(domain)
        if found is None:
            raise CommandError(f"There is no domain {domain}.")
        result = run_connection_check(settings_for(found))
        self.stdout.write(_dumps(result) if json else check_to_text(result))
        if not result.get("ok"):
            raise CommandError(result.get("summary") or "The directory check failed.")


def _dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False, default=str)
