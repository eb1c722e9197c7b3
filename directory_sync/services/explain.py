"""Explain one object, and synchronize just that one.

The explain runs in the request that asks: one bind of the console's reader and a handful of searches of one
entry (a base read or one indexed search, the filter tests, the person's groups), each bounded by the domain's
timeout, so the answer is there when the page is; a background job would only add a queue and a poll to what a
person is waiting to read. It writes nothing. Its answer is plain data, the same for the page and for
`manage.py directory_explain --json`.

Synchronize this one now is a run of its own (trigger "Sync one object") through the per-domain lock, in this
process too, for the same reason and because its query is not something a task message carries.
"""

from __future__ import annotations

import base64
from typing import Any

from django.urls import reverse

from directory_sync.ldap import Value, open_session, options_from_settings
from directory_sync.ldap.filters import FilterError
from directory_sync.models import DirectorySettings, SyncEvent, SyncRun
from directory_sync.rules.names import login_of_auth_value
from directory_sync.rules.secret_attributes import is_secret_attribute
from directory_sync.rules.vcard import VCardMapError
from directory_sync.selectors import describe_fields
from directory_sync.services.runs import RunStart
from directory_sync.services.settings import settings_for
from directory_sync.services.sync import run_now
from directory_sync.sync.changes import MemberRef
from directory_sync.sync.config import SyncConfig, build_config
from directory_sync.sync.explain import (
    ACCOUNT,
    GROUP,
    Examination,
    LocalObject,
    QueryError,
    addresses_of,
    clean_query,
    examine,
    exclusion,
    nearest_ou_group,
)
from directory_sync.sync.groups import GroupChange
from directory_sync.sync.planning import AccountChange
from directory_sync.sync.record import Labels
from icewarp_admin.mailserver.models import Account, Domain, Group
from icewarp_admin.mailserver.personal_data import VCARD_ITEMS

HIDDEN = "(hidden)"
VALUES_SHOWN = 50
VALUE_CHARS = 500
EXCLUDED = "excluded"
# Exclusions that say what the sync makes of an entry it does synchronize, not that it keeps it out.
NOT_EXCLUDING = frozenset({"disabled"})


class ExplainRefused(Exception):
    """The domain or the query cannot be explained; the message says what to fix."""


def explain_object(*, domain: Domain, query: str) -> dict[str, Any]:
    """One object of the domain as the directory has it now, as the rules map it, as a run would change it,
    or why it is not synchronized (see the module docstring). Raises ExplainRefused, or DirectoryError when
    the directory cannot be read."""
    # As saved now (a Domain object may hold the settings it first read).
    settings = DirectorySettings.objects.filter(domain_id=domain.pk).first() or settings_for(domain)
    if not settings.pk or not settings.host or not settings.base_dn:
        raise ExplainRefused(f"{domain.name} has no directory server configured: fill in the Server section.")
    try:
        config = build_config(settings)
    except (FilterError, VCardMapError, ValueError) as error:
        raise ExplainRefused(
            f"The Directory Service settings of {domain.name} are not usable: {error}"
        ) from error
    try:
        text = clean_query(query)
    except QueryError as error:
        raise ExplainRefused(str(error)) from error
    with open_session(options_from_settings(settings)) as session:
        examination = examine(session, config, text)
    return describe(examination, config)


def sync_one(*, domain: Domain, query: str, requested_by: str, dry_run: bool = False) -> RunStart:
    """Synchronize just the object the query names, now, through the domain's lock (joined: another run of the
    domain is going on, nothing ran). The run fails, saying so, when the query names nothing."""
    try:
        text = clean_query(query)
    except QueryError as error:
        raise ExplainRefused(str(error)) from error
    return run_now(
        domain=domain, trigger=SyncRun.Trigger.SYNC_ONE, requested_by=requested_by, dry_run=dry_run, only=text
    )


# --------------------------------------------------------------------------- the answer, as plain data


def describe(examination: Examination, config: SyncConfig) -> dict[str, Any]:
    """The explanation as JSON-able data (the stable shape of `directory_explain --json`)."""
    found = examination.found
    why = exclusion(examination, config)
    change = examination.change
    if why is not None and why.code in ("not_found", "ambiguous"):
        status = why.code
    elif why is not None and why.code not in NOT_EXCLUDING:
        status = EXCLUDED
    elif change is not None:
        status = "changes"
    else:
        status = "in_sync"
    return {
        "query": found.query,
        "domain": config.domain_name,
        "found_by": found.how,
        "found": found.entry is not None or found.local is not None,
        "object_type": found.object_type,
        "status": status,
        "summary": _summary(examination, status, why.reason if why else ""),
        "exclusion": {"code": why.code, "reason": why.reason} if why else None,
        "entry": _entry(examination, config),
        "candidates": list(found.candidates),
        "rules": _rules(examination, config),
        "here": _here(found.local, config),
        "change": _change(examination, config),
        "memberships": _memberships(examination, config),
        "notes": list(found.notes),
    }


def _summary(examination: Examination, status: str, reason: str) -> str:
    change = examination.change
    if status in ("not_found", "ambiguous", EXCLUDED):
        return reason
    if change is None:
        what = examination.found.local.label if examination.found.local else examination.found.label
        return f"In sync: {what} here matches the directory." + (f" {reason}" if reason else "")
    verb = {"create": "create", "update": "update", "rename": "rename", "remove": "remove"}.get(change.action)
    action = f"{verb} {change.label}" if verb else f"{change.action}: {change.label}"
    return f"Synchronizing it would {action} ({change.reason})." + (f" {reason}" if reason else "")


def _show(name: str, values: list[Value], config: SyncConfig) -> tuple[list[str], int]:
    """Values for people: secrets hidden, the binary id as its text, other binary as b64:, long text cut; at
    most VALUES_SHOWN of them, and how many more there are."""
    if is_secret_attribute(name):
        return [HIDDEN], 0
    shown: list[str] = []
    for value in values[:VALUES_SHOWN]:
        if isinstance(value, bytes):
            if name.split(";", 1)[0].lower() == config.guid_attribute.lower():
                text = config.profile.decode_guid(value, is_binary=config.guid_is_binary)
            else:
                text = "b64:" + base64.b64encode(value).decode("ascii")
        else:
            text = value
        shown.append(text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS] + "…")
    return shown, max(0, len(values) - VALUES_SHOWN)


def _entry(examination: Examination, config: SyncConfig) -> dict[str, Any] | None:
    found = examination.found
    entry = found.entry
    if entry is None:
        return None
    wanted = config.group_attributes() if found.object_type == GROUP else config.account_attributes()
    attributes = []
    for name in wanted:
        values = entry.get(name)
        if values:
            shown, more = _show(name, values, config)
            attributes.append({"name": name, "values": shown, "more": more})
    filters = [{"name": "User filter", "filter": config.account_filter, "matches": found.user_filter}]
    if config.sync_groups and config.group_filter:
        matches = Group.Kind.GROUP in found.group_kinds
        filters.append({"name": "Group filter", "filter": config.group_filter, "matches": matches})
    if config.sync_mailing_lists:
        matches = Group.Kind.MAILING_LIST in found.group_kinds
        filters.append(
            {"name": "Mailing-list filter", "filter": config.mailing_list_filter, "matches": matches}
        )
    return {
        "dn": entry.dn,
        "id": found.key,
        "base_dn": config.base_dn,
        "in_base": found.in_base,
        "filters": filters,
        "attributes": attributes,
    }


def _rules(examination: Examination, config: SyncConfig) -> dict[str, Any] | None:
    found = examination.found
    if found.entry is None:
        return None
    if found.object_type == GROUP:
        group = examination.group
        if group is None:
            skipped = examination.skipped
            return {"skipped": skipped.reason} if skipped else None
        return {
            "alias": f"{group.alias}@{config.domain_name}",
            "name": group.name,
            "kind": Group.Kind(group.kind).label,
            "member_values": len(group.member_dns) + len(group.member_uids),
            "members_complete": group.members_complete,
        }
    addresses, _ = addresses_of(found.entry, config)
    rules: dict[str, Any] = {
        "accepted_domains": config.accepted.describe(),
        "addresses": [
            {"address": address, "source": source, "accepted": accepted}
            for address, source, accepted in addresses
        ],
    }
    skipped = examination.skipped
    if skipped is not None:
        rules["skipped"] = skipped.reason
    person = examination.person
    if person is None:
        return rules
    vcard = None
    if person.vcard is not None:  # the map never reads a password-like attribute (rules/vcard.py)
        names = dict(VCARD_ITEMS)
        vcard = [
            {"item": item, "label": names.get(item, item), "value": value}
            for item, value in person.vcard.items()
        ]
    member_of = list(examination.directory.member_of if examination.directory else [])
    ou_group = nearest_ou_group(person, config)
    if ou_group is not None:
        member_of.append(ou_group)
    aliases = [group.alias for group in member_of]
    here = set(
        Group.objects.filter(domain_id=config.domain_id, address__local_part__in=aliases).values_list(
            "address__local_part", flat=True
        )
    )
    groups = [
        {
            "name": group.name,
            "address": f"{group.alias}@{config.domain_name}",
            "dn": group.dn,
            "here": group.alias in here,
        }
        for group in member_of
    ]
    rules.update(
        aliases=[f"{part}@{config.domain_name}" for part in person.local_parts],
        username=person.username,
        login=login_of_auth_value(person.auth_value),
        auth_value=person.auth_value,
        full_name=person.full_name,
        enabled=person.enabled,
        vcard=vcard,
        groups=groups,
    )
    return rules


def _here(local: LocalObject | None, config: SyncConfig) -> dict[str, Any] | None:
    if local is None:
        return None
    route = "mailserver:account_detail" if local.object_type == ACCOUNT else "mailserver:group_detail"
    return {
        "type": local.object_type,
        "label": local.label,
        "directory_id": local.key,
        "dn": local.dn,
        "url": reverse(route, args=[config.domain_name, local.name]),
    }


def _fields(change: AccountChange | GroupChange, config: SyncConfig, labels: Labels) -> list[dict[str, str]]:
    """The change field by field, by the labels of the history (directory_sync.selectors.describe_fields)."""
    if isinstance(change, AccountChange):
        raw = change.event_fields(config.domain_name)
        model: type[Account] | type[Group] = Account
    else:
        raw = change.event_fields()
        model = Group
    fields: dict[str, Any] = {}
    for name, (before, after) in raw.items():
        if name in ("members_added", "members_removed"):
            fields[name] = [labels.describe(before), labels.describe(after)]
        else:
            fields[name] = [_listed(before), _listed(after)]
    return [
        {"name": field.name, "label": field.label, "before": field.before, "after": field.after}
        for field in describe_fields(fields, model=model)
    ]


def _listed(value: Any) -> Any:
    return [_listed(item) for item in value] if isinstance(value, tuple | list) else value


def _labels(examination: Examination, config: SyncConfig) -> Labels:
    person = examination.person
    known = {person.key: f"{person.local_parts[0]}@{config.domain_name}"} if person else {}
    labels = Labels(config.domain_id, known)
    refs: list[MemberRef] = []
    for change in examination.group_plan.changes if examination.group_plan else []:
        refs += [*change.add_members, *change.removed_members]
    labels.learn(refs, config.domain_name)
    return labels


def _change(examination: Examination, config: SyncConfig) -> dict[str, Any] | None:
    change = examination.change
    if change is None or not isinstance(change, AccountChange | GroupChange):
        return None
    return {
        "action": change.action,
        "action_label": str(SyncEvent.Action(change.action).label),
        "label": change.label,
        "reason": change.reason,
        "fields": _fields(change, config, _labels(examination, config)),
        "removal_withheld": examination.removal_withheld(),
    }


def _memberships(examination: Examination, config: SyncConfig) -> list[dict[str, Any]]:
    changes = examination.memberships
    if not changes:
        return []
    labels = _labels(examination, config)
    return [
        {
            "group": change.label,
            "added": bool(change.add_members),
            "removed": bool(change.removed_members),
            "fields": _fields(change, config, labels),
        }
        for change in changes
    ]
