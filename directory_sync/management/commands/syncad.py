"""IceWarp's syncad.dat: syncad export [--domain NAME] [--include-secrets] | syncad import FILE."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.syncad import SyncadImportError, export_syncad, import_syncad
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import find_domain


class Command(BaseCommand):
    help = "Export the Directory Service settings as IceWarp's syncad.dat, or import such a file."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        export = commands.add_parser("export", help="Write syncad.dat XML to standard output.")
        export.add_argument("--domain", help="Only this domain (default: every domain).")
        export.add_argument(
            "--include-secrets", action="store_true", help="Include the bind passwords (in clear text!)."
        )
        importing = commands.add_parser("import", help="Create or update settings from a syncad.dat file.")
        importing.add_argument("file", help="Path of the file, or - for standard input.")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "export":
            self.export(options.get("domain"), options["include_secrets"])
        else:
            self.import_file(options["file"])

    def export(self, name: str | None, include_secrets: bool) -> None:
        if name:
            domain = find_domain(name)
            if domain is None:
                raise CommandError(f"There is no domain {name}.")
            domains = [domain]
        else:
            domains = list(Domain.objects.order_by("name"))
        self.stdout.write(export_syncad(domains, include_secrets=include_secrets), ending="")

    def import_file(self, path: str) -> None:
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text; save it as UTF-8 and try again.") from None
        try:
            results = import_syncad(text, changed_by="syncad import")
        except SyncadImportError as error:
            raise CommandError(str(error)) from None
        for result in results:
            created = " (domain created)" if result.created_domain else ""
            changed = ", ".join(result.changed_fields) or "nothing changed"
            self.stdout.write(f"{result.name}{created}: {changed}")
