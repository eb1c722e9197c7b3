"""Saving a domain's Directory Service settings, with a history entry for every change."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from directory_sync.models import DirectorySettings, SettingsChange
from icewarp_admin.mailserver.models import Domain

SECRET_MASK = "••••••"  # noqa: S105 - what history shows instead of a secret
# Changed when the password changes; the values themselves are never recorded.
PASSWORD_FIELD = "bind_password"  # noqa: S105 - a field name


def settings_for(domain: Domain) -> DirectorySettings:
    """The domain's settings row (unsaved defaults when it has none yet)."""
    try:
        return domain.directory_settings
    except DirectorySettings.DoesNotExist:
        return DirectorySettings(domain=domain)


def save_directory_settings(
    *,
    domain: Domain,
    values: dict[str, Any],
    new_password: str | None = None,
    clear_password: bool = False,
    changed_by: Any = None,
    source: str = "console",
) -> tuple[DirectorySettings, SettingsChange | None]:
    """Apply validated field values (and optionally a new password) and record what changed.

    new_password None or "" keeps the stored password; clear_password removes it.
    """
    with transaction.atomic():
        current = DirectorySettings.objects.select_for_update().filter(
            domain=domain
        ).first() or DirectorySettings(domain=domain)
        changes: dict[str, list[Any]] = {}
        for field, value in values.items():
            old = getattr(current, field)
            if old != value:
                changes[field] = [_recordable(old), _recordable(value)]
                setattr(current, field, value)
        if clear_password and current.has_bind_password:
            current.set_bind_password("")
            changes[PASSWORD_FIELD] = [SECRET_MASK, ""]
        elif new_password:
            changes[PASSWORD_FIELD] = [
                SECRET_MASK if current.has_bind_password else "",
                SECRET_MASK + " (new)",
            ]
            current.set_bind_password(new_password)
        current.save()
        record = None
        if changes:
            user = changed_by if getattr(changed_by, "pk", None) else None
            record = SettingsChange.objects.create(
                domain=domain,
                changed_by=user,
                changed_by_name=getattr(changed_by, "username", "") or str(changed_by or ""),
                source=source,
                changes=changes,
            )
        return current, record


def _recordable(value: Any) -> Any:
    """History stores JSON; long text (a CA bundle, a vCard map) is kept whole: an auditor needs it."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(key): _recordable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_recordable(item) for item in value]
    return str(value)
