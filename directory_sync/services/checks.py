"""Test connection as a job: a row is queued, a worker runs the check, the tab polls the row."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from directory_sync.dispatch import TEST_CONNECTION, enqueue
from directory_sync.models import ConnectionCheck, DirectorySettings, JobStatus
from directory_sync.secrets import encrypt_secret
from directory_sync.services.connection_check import run_connection_check
from directory_sync.services.jobs import Heartbeat, claim, finish
from directory_sync.services.settings import settings_for
from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger(__name__)


def queue_connection_check(
    *, domain: Domain, requested_by: str, unsaved: dict[str, Any] | None = None
) -> ConnectionCheck:
    """Record a queued check and hand its id to a worker after commit. unsaved: field values to test instead
    of the saved ones (see unsaved_settings_values), which stay as they are."""
    with transaction.atomic():
        check = ConnectionCheck.objects.create(
            domain=domain, requested_by=requested_by, unsaved_settings=unsaved
        )
        enqueue(TEST_CONNECTION, check.pk)
    return check


def unsaved_settings_values(
    values: dict[str, Any], *, domain: Domain, new_password: str | None = None, clear_password: bool = False
) -> dict[str, Any]:
    """What a check of unsaved settings carries: the typed values over the saved ones, the password encrypted
    (a typed one, none when cleared, else the stored one), JSON-ready."""
    settings = settings_for(domain)
    carried: dict[str, Any] = {field: value for field, value in values.items() if field in _SETTING_FIELDS}
    if clear_password:
        carried["bind_password_encrypted"] = ""
    elif new_password:
        carried["bind_password_encrypted"] = encrypt_secret(new_password)
    else:
        carried["bind_password_encrypted"] = settings.bind_password_encrypted
    return carried


def settings_under_test(check: ConnectionCheck) -> DirectorySettings:
    """The settings a check tests: the saved ones, with the unsaved values over them (never saved)."""
    settings = settings_for(check.domain)
    for field, value in (check.unsaved_settings or {}).items():
        if field in _SETTING_FIELDS or field == "bind_password_encrypted":
            setattr(settings, field, value)
    return settings


_SETTING_FIELDS = frozenset(
    field.name
    for field in DirectorySettings._meta.concrete_fields
    if field.editable and field.name not in ("id", "domain", "extra_keys")
)


def perform_connection_check(*, check_id: int) -> ConnectionCheck | None:
    """Run a queued check; a check delivered twice runs once."""
    check, claimed = claim(ConnectionCheck, check_id)
    if check is None or not claimed:
        return check
    try:
        with Heartbeat(check):
            result = run_connection_check(settings_under_test(check))
            if check.tests_unsaved_settings:
                result["summary"] = f"Unsaved settings: {result.get('summary', '')}"
    except Exception:
        logger.exception("Test connection of %s crashed", check.domain.name)
        result = {
            "ok": False,
            "summary": "The check stopped on an internal error; see the worker log.",
            "hosts": [],
        }
    finish(check, status=JobStatus.SUCCEEDED if result.get("ok") else JobStatus.FAILED, result=result)
    logger.info("Test connection of %s: %s", check.domain.name, result.get("summary", check.status))
    return check
