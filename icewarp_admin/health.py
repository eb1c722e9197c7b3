"""/healthz: whether the console's parts work, for a load balancer, a container's health check or a monitor.

It answers without a sign-in, so it says which part fails and never why in detail (an error's text can name
hosts and users): the full error goes to the log. Nothing in it names a domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from directory_sync.models import JobStatus, SyncRun
from directory_sync.services.health import BEAT_TICK_ROW
from icewarp_admin.mailserver.models import SystemVariable

logger = logging.getLogger("icewarp_admin.health")

BROKER_TIMEOUT_SECONDS = 2.0
# Beat sends a tick every SYNC_TICK_SECONDS and a worker runs it: this many missed in a row is trouble.
BEAT_MISSED_TICKS = 3
# A run waits this long only when no worker takes work, or the workers cannot keep up (the reaper fails a
# run nobody picked up after an hour).
QUEUE_TOO_OLD = timedelta(minutes=15)

Result = dict[str, Any]


def last_beat_tick() -> datetime | None:
    """When the scheduler's last tick ran (directory_sync.services.health.record_tick), or None."""
    value = SystemVariable.objects.filter(name=BEAT_TICK_ROW).values_list("value", flat=True).first()
    return datetime.fromisoformat(value) if value else None


def check_database() -> Result:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        logger.warning("Health: the database is unreachable: %s", error)
        return {"ok": False, "error": f"unreachable ({type(error).__name__})"}
    return {"ok": True}


def check_broker() -> Result:
    """A connection to Celery's broker (Redis): connected and answering a PING within the timeout."""
    from icewarp_admin.celery import app

    timeouts = {"socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    try:
        with app.connection_for_read(
            connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=timeouts
        ) as broker:
            broker.ensure_connection(max_retries=0)
            broker.default_channel  # noqa: B018  (opening the channel is Redis's PING)
    except Exception as error:
        logger.warning("Health: the broker is unreachable: %s", error)
        return {"ok": False, "error": f"unreachable ({type(error).__name__})"}
    return {"ok": True}


def check_beat() -> Result:
    tick = last_beat_tick()
    late_after = BEAT_MISSED_TICKS * settings.SYNC_TICK_SECONDS
    if tick is None:
        return {"ok": False, "error": "no tick has run yet", "late_after_s": late_after}
    age = (timezone.now() - tick).total_seconds()
    result: Result = {"ok": age <= late_after, "last_tick_age_s": round(age, 1), "late_after_s": late_after}
    if not result["ok"]:
        result["error"] = "the last tick is late: is beat running, and a worker?"
    return result


def check_queue() -> Result:
    queued = SyncRun.objects.filter(status=JobStatus.QUEUED).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    age = (timezone.now() - queued["oldest"]).total_seconds() if queued["oldest"] else 0.0
    result: Result = {
        "ok": age <= QUEUE_TOO_OLD.total_seconds(),
        "queued": queued["n"],
        "oldest_queued_age_s": round(age, 1),
        "too_old_after_s": QUEUE_TOO_OLD.total_seconds(),
    }
    if not result["ok"]:
        result["error"] = "runs wait for a worker: is one running, and keeping up?"
    return result


CHECKS: dict[str, Callable[[], Result]] = {
    "database": check_database,
    "broker": check_broker,
    "beat": check_beat,
    "queue": check_queue,
}
NEEDS_DATABASE = ("beat", "queue")


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503 naming the failing ones. `?check=database,broker` runs only
    those (the web container's own health is the database's: a stopped beat must not take it out)."""
    asked = [name.strip() for name in request.GET.get("check", "").split(",") if name.strip()]
    unknown = [name for name in asked if name not in CHECKS]
    if unknown:
        return JsonResponse(
            {"error": f"Unknown check {', '.join(unknown)}: choose among {', '.join(CHECKS)}."}, status=400
        )
    results: dict[str, Result] = {}
    for name in asked or CHECKS:
        if name in NEEDS_DATABASE and results.get("database", {}).get("ok") is False:
            results[name] = {"ok": None, "skipped": "the database is unreachable"}
            continue
        try:
            results[name] = CHECKS[name]()
        except Exception as error:
            logger.warning("Health: the %s check failed: %s", name, error)
            results[name] = {"ok": False, "error": f"could not be checked ({type(error).__name__})"}
    failing = [name for name, result in results.items() if result["ok"] is False]
    return JsonResponse(
        {"status": "failing" if failing else "ok", "failing": failing, "checks": results},
        status=503 if failing else 200,
    )
