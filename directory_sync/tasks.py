"""Celery tasks: thin, ids only, each calls one service. The names are the contract with dispatch.py."""

from __future__ import annotations

from celery import shared_task

from directory_sync.dispatch import SYNCHRONIZE, TEST_CONNECTION
from directory_sync.services.checks import perform_connection_check
from directory_sync.services.runs import schedule_tick
from directory_sync.services.sync import execute_run


@shared_task(name=TEST_CONNECTION, soft_time_limit=300, time_limit=330, acks_late=True)
def check_connection(check_id: int) -> None:
    """Run one queued Test connection."""
    perform_connection_check(check_id=check_id)


@shared_task(name=SYNCHRONIZE, soft_time_limit=3600, time_limit=3900, acks_late=True)
def synchronize(run_id: int) -> None:
    """Run one queued synchronization (or dry run); a second delivery of the same id does nothing."""
    execute_run(run_id=run_id)


@shared_task(name="directory_sync.schedule_tick", soft_time_limit=50, time_limit=55, ignore_result=True)
def tick() -> None:
    """Celery beat's tick: queue the syncs that are due and fail abandoned runs."""
    schedule_tick()
