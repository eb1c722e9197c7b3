"""Test connection as a job: a row is queued, a worker runs the check, the tab polls the row."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from directory_sync.models import ConnectionCheck
from directory_sync.services.connection_check import run_connection_check
from directory_sync.services.settings import settings_for
from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger(__name__)


def queue_connection_check(*, domain: Domain, requested_by: str) -> ConnectionCheck:
    """Record a queued check and hand its id (nothing else: no host, no password) to a worker after commit."""
    from directory_sync.tasks import check_connection

    with transaction.atomic():
        check = ConnectionCheck.objects.create(domain=domain, requested_by=requested_by)
        check_connection.delay_on_commit(check.pk)  # type: ignore[attr-defined]  # DjangoTask, untyped
    return check


def perform_connection_check(*, check_id: int) -> ConnectionCheck | None:
    """Run a queued check; a check delivered twice runs once."""
    with transaction.atomic():
        check = (
            ConnectionCheck.objects.select_for_update().select_related("domain").filter(pk=check_id).first()
        )
        if check is None or check.status != ConnectionCheck.Status.QUEUED:
            return check
        check.status = ConnectionCheck.Status.RUNNING
        check.started_at = timezone.now()
        check.save(update_fields=["status", "started_at"])
    try:
        result = run_connection_check(settings_for(check.domain))
    except Exception:
        logger.exception("Test connection of %s crashed", check.domain.name)
        result = {
            "ok": False,
            "summary": "The check stopped on an internal error; see the worker log.",
            "hosts": [],
        }
    check.result = result
    check.status = ConnectionCheck.Status.SUCCEEDED if result.get("ok") else ConnectionCheck.Status.FAILED
    check.finished_at = timezone.now()
    check.save(update_fields=["result", "status", "finished_at"])
    logger.info("Test connection of %s: %s", check.domain.name, result.get("summary", check.status))
    return check
