"""IceWarp's syncad.dat: syncad export [--domain NAME] [--include-secrets] | syncad import FILE."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.syncad import (
    MAX_FILE_BYTES,
    SyncadImportError,
    export_syncad,
    file_too_large,
    import_syncad,
)
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
            raw = _read_limited(sys.stdin.buffer) if path == "-" else _read_file(Path(path))
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror or error}.") from None
        too_large = file_too_large(len(raw))
        if too_large:
            raise CommandError(too_large)
        try:
            text = raw.decode("utf-8")
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


def _read_file(path: Path) -> bytes:
    """The file's bytes, its size checked before any is read (a file that grows meanwhile is cut one byte past
    the limit, which the caller refuses)."""
    with path.open("rb") as file:
        too_large = file_too_large(os.fstat(file.fileno()).st_size)
        if too_large:
            raise CommandError(too_large)
        return _read_limited(file)


def _read_limited(stream: BinaryIO) -> bytes:
    """At most one byte more than a file may hold: enough to tell that it is too large."""
    return stream.read(MAX_FILE_BYTES + 1)
