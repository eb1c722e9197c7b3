"""Test connection as a job: a row is queued, a worker runs the check, the tab polls the row."""

from __future__ import annotations

import logging

from django.db import transaction

from directory_sync.dispatch import TEST_CONNECTION, enqueue
from directory_sync.models import ConnectionCheck, JobStatus
from directory_sync.services.connection_check import run_connection_check
from directory_sync.services.jobs import Heartbeat, claim, finish
from directory_sync.services.settings import settings_for
from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger(__name__)


def queue_connection_check(*, domain: Domain, requested_by: str) -> ConnectionCheck:
    """Record a queued check and hand its id to a worker after commit."""
    with transaction.atomic():
        check = ConnectionCheck.objects.create(domain=domain, requested_by=requested_by)
        enqueue(TEST_CONNECTION, check.pk)
    return check


def perform_connection_check(*, check_id: int) -> ConnectionCheck | None:
    """Run a queued check; a check delivered twice runs once."""
    check, claimed = claim(ConnectionCheck, check_id)
    if check is None or not claimed:
        return check
    try:
        with Heartbeat(check):
            result = run_connection_check(settings_for(check.domain))
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
