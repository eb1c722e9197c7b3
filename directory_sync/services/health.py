"""Celery beat's sign of life, for /healthz and /metrics.

Beat runs in its own process, often on another machine than the web: the time of its last tick is kept where
both reach it, a row of the global variables' table (one upsert a minute). Its name cannot be an IceWarp
variable's (those have no dots), and nothing lists that table but through the variables' specs.
"""

from __future__ import annotations

from django.utils import timezone

from icewarp_admin.mailserver.models import SystemVariable

BEAT_TICK_ROW = "console.beat.last_tick"


def record_tick() -> None:
    """Note that beat has just ticked."""
    SystemVariable.objects.bulk_create(
        [SystemVariable(name=BEAT_TICK_ROW, value=timezone.now().isoformat())],
        update_conflicts=True,
        unique_fields=["name"],
        update_fields=["value", "updated_at"],
    )
