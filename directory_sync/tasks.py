"""Celery tasks: thin, ids only, each calls one service."""

from __future__ import annotations

from celery import shared_task

from directory_sync.services.checks import perform_connection_check


@shared_task(name="directory_sync.test_connection", soft_time_limit=300, time_limit=330, acks_late=True)
def check_connection(check_id: int) -> None:
    """Run one queued Test connection."""
    perform_connection_check(check_id=check_id)
