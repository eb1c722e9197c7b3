"""Synchronize a domain in the foreground with the same code the Celery task runs.

Exit codes: 0 the run succeeded, 1 it failed, 2 it completed with errors (status "partial": a search failed or
was cut short, so the directory was not read in full; what was read was applied, nothing was removed on the
strength of it), 3 another run of the domain is queued or running (nothing ran). On 1 and 2 the outcome is
printed (as JSON with --json) and the errors go to stderr.

--only QUERY synchronizes just the object a login, an address, a DN or a directory id names (a run of its own,
"Sync one object", with the same output and exit codes); a query that names nothing is a failed run (1).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.models import SyncRun
from directory_sync.services.explain import ExplainRefused, sync_one
from directory_sync.services.sync import run_now, run_summary, withheld_summary
from icewarp_admin.mailserver.selectors import find_domain

EXIT_FAILED, EXIT_PARTIAL, EXIT_BUSY = 1, 2, 3


class Command(BaseCommand):
    help = (
        "Synchronize a domain's accounts from its directory (or, with --dry-run, show what would change). "
        "Exit codes: 0 succeeded; 1 failed; 2 completed with errors (status partial: the directory was not "
        "read in full, see the errors); 3 another run of the domain is queued or running."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument(
            "--dry-run", action="store_true", help="Compute and record the plan; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")
        parser.add_argument(
            "--only",
            metavar="QUERY",
            default="",
            help="Synchronize just the object this login, address, DN or directory id names.",
        )

    def handle(self, *args: Any, domain: str, dry_run: bool, json: bool, only: str, **options: Any) -> None:
        found = find_domain(domain)
        if found is None:
            raise CommandError(f"There is no domain {domain}.")
        if only:
            try:
                start = sync_one(domain=found, query=only, requested_by="command line", dry_run=dry_run)
            except ExplainRefused as error:
                raise CommandError(str(error), returncode=EXIT_FAILED) from error
        else:
            start = run_now(
                domain=found, trigger=SyncRun.Trigger.COMMAND, requested_by="command line", dry_run=dry_run
            )
        run = start.run
        if start.joined:
            self._busy(found.name, run, dry_run=dry_run, as_json=json, only=bool(only))
            sys.exit(EXIT_BUSY)
        summary = run_summary(run)
        if json:
            self.stdout.write(_dumps(summary))
        else:
            self.stdout.write(_text(found.name, run, summary))
        if run.status == SyncRun.Status.FAILED:
            raise CommandError("; ".join(run.errors) or "The synchronization failed.", returncode=EXIT_FAILED)
        if run.status == SyncRun.Status.PARTIAL:
            raise CommandError(
                f"{run.get_status_display()}: {'; '.join(run.errors)}", returncode=EXIT_PARTIAL
            )

    def _busy(
        self, domain: str, active: SyncRun, *, dry_run: bool, as_json: bool, only: bool = False
    ) -> None:
        """Another run holds the domain: "joined" when it does what was asked (it will do it), else "busy"."""
        same = active.dry_run == dry_run and active.approves_id is None and not only
        status = "joined" if same else "busy"
        message = (
            f"Run #{active.pk} of {domain} ({active.get_trigger_display()}, {active.status}) "
            + ("already does this: it was joined, nothing else was started." if same else
               "is going on: try again when it has finished.")
        )  # fmt: skip
        if as_json:
            self.stdout.write(
                _dumps(
                    {
                        "status": status,
                        "run": active.pk,
                        "active_run": {
                            "id": active.pk,
                            "status": active.status,
                            "trigger": active.trigger,
                            "dry_run": active.dry_run,
                            "created_at": active.created_at.isoformat(),
                        },
                        "message": message,
                    }
                )
            )
        else:
            self.stderr.write(message)


def _dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False)


def _text(domain: str, run: SyncRun, summary: dict[str, Any]) -> str:
    status = run.status if run.status != SyncRun.Status.PARTIAL else f"{run.status} (completed with errors)"
    phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in summary["phases"].items())
    lines = [f"{run.title} of {domain} #{run.pk}: {status} in {summary['duration_s']:.1f} s"]
    for kind in ("accounts", "groups"):
        if kind == "accounts" or kind in run.counts:
            lines.append(f"  {kind}: {', '.join(f'{name} {value}' for name, value in summary[kind].items())}")
    if run.tracking:
        lines.append(f"  changes: {run.tracking}")
    if phases:
        lines.append(f"  phases: {phases}")
    if summary["conflicts"]:
        lines.append(f"  conflicts: {summary['conflicts']}")
    if run.removals_withheld:
        lines.append(f"  {withheld_summary(run)}")
    # The run's own warnings: summary["warnings"] ends with the withheld removals, said just above.
    lines += [f"  warning: {warning}" for warning in run.warnings]
    lines += [f"  error: {error}" for error in run.errors]
    return "\n".join(lines)
