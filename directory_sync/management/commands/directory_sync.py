"""Synchronize a domain in the foreground with the same code the Celery task runs."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.models import SyncRun
from directory_sync.services.sync import create_run, execute_run, run_summary
from icewarp_admin.mailserver.selectors import find_domain


class Command(BaseCommand):
    help = "Synchronize a domain's accounts from its directory (or, with --dry-run, show what would change)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument(
            "--dry-run", action="store_true", help="Compute and record the plan; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args: Any, domain: str, dry_run: bool, json: bool, **options: Any) -> None:
        found = find_domain(domain)
        if found is None:
            raise CommandError(f"There is no domain {domain}.")
        run = create_run(
            domain=found, trigger=SyncRun.Trigger.COMMAND, requested_by="command line", dry_run=dry_run
        )
        run = execute_run(run_id=run.pk)
        summary = run_summary(run)
        if json:
            self.stdout.write(_dumps(summary))
        else:
            self.stdout.write(_text(found.name, run, summary))
        if run.status == SyncRun.Status.FAILED:
            raise CommandError("; ".join(run.errors) or "The synchronization failed.")


def _dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False)


def _text(domain: str, run: SyncRun, summary: dict[str, Any]) -> str:
    kind = "Dry run" if run.dry_run else "Synchronization"
    counts = ", ".join(f"{name} {value}" for name, value in summary["accounts"].items())
    lines = [
        f"{kind} of {domain} #{run.pk}: {run.status} in {summary['duration_s']:.1f} s",
        f"  accounts: {counts}",
    ]
    if summary["conflicts"]:
        lines.append(f"  conflicts: {summary['conflicts']}")
    if summary["removals_withheld"]:
        lines.append(f"  removals withheld: {summary['removals_withheld']} ({run.withheld_reason})")
    lines += [f"  warning: {warning}" for warning in summary["warnings"]]
    lines += [f"  error: {error}" for error in summary["errors"]]
    return "\n".join(lines)
