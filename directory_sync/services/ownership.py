"""Reset to the directory: a synced account's or group's fields (or all of them) go back to what the directory
says at the next run, which is queued now.

The run compares an object in full, whatever the change tracking says, once its change stamp is forgotten
(sync/snapshot.edited_here); personal data also needs its "edited on this server" marker cleared, or the
directory would keep leaving it alone.
"""

from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import ValidationError
from django.db import transaction

from directory_sync.models import SyncRun
from directory_sync.services.runs import RunStart, begin_run
from icewarp_admin.mailserver.models import Account, Group
from icewarp_admin.mailserver.selectors import RESETTABLE_ACCOUNT_FIELDS


def reset_account_to_directory(*, account: Account, fields: Collection[str], by: str) -> RunStart:
    """Forget what this server changed of these fields of a synced account; the queued run puts the
    directory's values back (every field the directory owns is compared then)."""
    if not account.is_directory_linked:
        raise ValidationError(f"{account} is not synced from a directory: there is nothing to reset.")
    unknown = sorted(set(fields) - set(RESETTABLE_ACCOUNT_FIELDS))
    if unknown or not fields:
        raise ValidationError(
            f"Only these fields can be reset to the directory: {', '.join(RESETTABLE_ACCOUNT_FIELDS)} "
            f"(not {', '.join(unknown) or 'none'}). Nothing was changed."
        )
    with transaction.atomic():
        updated = ["directory_change_stamp", "updated_at"]
        account.directory_change_stamp = ""
        if "vcard" in fields:
            account.vcard_edited_locally = False
            updated.append("vcard_edited_locally")
        account.save(update_fields=updated)
        return begin_run(domain=account.domain, trigger=SyncRun.Trigger.MANUAL, requested_by=by)


def reset_group_to_directory(*, group: Group, by: str) -> RunStart:
    """Forget what this server changed of a synced group; the queued run puts its name, kind and directory
    members back (members added here stay)."""
    if not group.is_directory_linked:
        raise ValidationError(f"{group} is not synced from a directory: there is nothing to reset.")
    with transaction.atomic():
        group.directory_change_stamp = ""
        group.save(update_fields=["directory_change_stamp", "updated_at"])
        return begin_run(domain=group.domain, trigger=SyncRun.Trigger.MANUAL, requested_by=by)
