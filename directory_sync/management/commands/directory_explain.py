"""Explain one object of a domain: the entry as the directory returns it now, what each rule makes of it, the
difference with the account or group here, and which rule keeps it out. Changes nothing.

Exit codes: 0 found and explained (an entry or an object here; excluded ones too: the answer says why), 1 not
found, several entries match, or an error (the message says what to fix). --json prints the explanation as
JSON (directory_sync.services.explain.describe).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from directory_sync.ldap import DirectoryError
from directory_sync.services.explain import ExplainRefused, explain_object
from icewarp_admin.mailserver.selectors import find_domain

EXIT_NOT_FOUND = 1
NOT_EXPLAINED = ("not_found", "ambiguous")


class Command(BaseCommand):
    help = (
        "Explain how one object (a login, an address, a DN or a directory id) is synchronized, or why it is "
        "not. Exit codes: 0 found and explained; 1 not found, ambiguous or an error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument(
            "query", help="A login, an address, a DN or a directory id (entryUUID, objectGUID)."
        )
        parser.add_argument("--json", action="store_true", help="Print the explanation as JSON.")

    def handle(self, *args: Any, domain: str, query: str, json: bool, **options: Any) -> None:
        found = find_domain(domain)
        if found is None:
            raise CommandError(f"There is no domain {domain}.", returncode=EXIT_NOT_FOUND)
        try:
            explanation = explain_object(domain=found, query=query)
        except (ExplainRefused, DirectoryError) as error:
            raise CommandError(str(error), returncode=EXIT_NOT_FOUND) from error
        self.stdout.write(_dumps(explanation) if json else _text(explanation))
        if explanation["status"] in NOT_EXPLAINED:
            raise CommandError(explanation["summary"], returncode=EXIT_NOT_FOUND)


def _dumps(explanation: dict[str, Any]) -> str:
    return json.dumps(explanation, indent=2, ensure_ascii=False)


def _text(explanation: dict[str, Any]) -> str:
    lines = [f"{explanation['query']} in {explanation['domain']} (by {explanation['found_by']})"]
    lines.append(f"  {explanation['summary']}")
    entry = explanation["entry"]
    if entry:
        lines.append(f"Entry: {entry['dn']}" + (f" (id {entry['id']})" if entry["id"] else ""))
        lines.append(f"  under the base DN {entry['base_dn']}: {'yes' if entry['in_base'] else 'no'}")
        for item in entry["filters"]:
            lines.append(f"  {item['name']} {item['filter']}: {'matches' if item['matches'] else 'no match'}")
        for attribute in entry["attributes"]:
            more = f" (and {attribute['more']} more)" if attribute["more"] else ""
            lines.append(f"  {attribute['name']}: {'; '.join(attribute['values'])}{more}")
    for dn in explanation["candidates"]:
        lines.append(f"  matches {dn}")
    rules = explanation["rules"]
    if rules:
        lines.append("Rules:")
        for name, value in rules.items():
            if name == "addresses":
                value = "; ".join(
                    f"{item['address']} ({item['source']}{'' if item['accepted'] else ', not accepted'})"
                    for item in value
                )
            elif name == "vcard" and value is not None:
                value = "; ".join(f"{item['label']}: {item['value']}" for item in value)
            elif name == "groups":
                value = "; ".join(
                    f"{item['name']} {item['address']}{'' if item['here'] else ' (not here yet)'}"
                    for item in value
                )
            elif name == "enabled":
                value = "the directory has no disabled flag" if value is None else ("yes" if value else "no")
            elif isinstance(value, list):
                value = ", ".join(str(item) for item in value)
            lines.append(f"  {name.replace('_', ' ')}: {value if value not in (None, '') else '—'}")
    here = explanation["here"]
    if here:
        lines.append(
            f"Here: {here['type']} {here['label']}"
            + (f" (id {here['directory_id']})" if here["directory_id"] else " (local only)")
        )
    change = explanation["change"]
    if change:
        lines.append(f"Change: {change['action_label']} {change['label']} ({change['reason']})")
        lines += [f"  {field['label']}: {field['before']} → {field['after']}" for field in change["fields"]]
        if change["removal_withheld"]:
            lines.append(f"  removal withheld: {change['removal_withheld']}")
    for membership in explanation["memberships"]:
        lines += [
            f"Group {membership['group']}: {field['label']} {field['after'] or field['before']}"
            for field in membership["fields"]
        ]
    if explanation["exclusion"]:
        lines.append(f"Why: {explanation['exclusion']['reason']} [{explanation['exclusion']['code']}]")
    lines += [f"Note: {note}" for note in explanation["notes"]]
    return "\n".join(lines)
