"""Celery tasks: thin, ids only, each calls one service. The names are the contract with dispatch.py."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from directory_sync.dispatch import DELIVER_ALERT, REAP_ABANDONED, SCHEDULE_TICK, SYNCHRONIZE, TEST_CONNECTION
from directory_sync.models import DELIVERY_ATTEMPTS
from directory_sync.services.alert_delivery import DeliveryFailed, deliver
from directory_sync.services.checks import perform_connection_check
from directory_sync.services.jobs import reap_abandoned
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


# Acknowledged only once it has queued every due domain: a tick whose worker was killed comes back (Redis's
# visibility timeout, or at once when only the pool process died) and queues the rest.
@shared_task(
    bind=True,
    name=SCHEDULE_TICK,
    soft_time_limit=50,
    time_limit=55,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
)
def tick(self: Any) -> None:
    """Celery beat's tick: queue the syncs that are due and fail abandoned runs."""
    schedule_tick(redelivered=bool((self.request.delivery_info or {}).get("redelivered")))


@shared_task(name=REAP_ABANDONED, soft_time_limit=50, time_limit=55, ignore_result=True)
def reap() -> None:
    """Fail the jobs whose worker died (see settings.SYNC_REAP_SECONDS)."""
    reap_abandoned()


@shared_task(
    name=DELIVER_ALERT,
    autoretry_for=(DeliveryFailed,),
    max_retries=DELIVERY_ATTEMPTS - 1,
    # A retry waits as an unacknowledged message: it must come due before the broker's visibility timeout
    # (BROKER_VISIBILITY_TIMEOUT_SECONDS, 120 s) hands it to another worker as well.
    retry_backoff=30,
    retry_backoff_max=60,
    soft_time_limit=60,
    time_limit=90,
    acks_late=True,
    ignore_result=True,
)
def deliver_alert(delivery_id: int) -> None:
    """Send one alert delivery (an e-mail or a webhook POST); a failure is retried with a growing delay."""
    deliver(delivery_id=delivery_id)
