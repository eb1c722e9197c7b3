"""/metrics for Prometheus: the synchronization as the database records it, read at scrape time.

The web, the workers and beat are separate processes (often machines): counters kept in one process's memory
would each tell a part. The collector reads the runs instead, so every scrape of any web process tells the
whole. Figures over runs cover the last WINDOW (indexed by creation time, so a scrape costs the same after
years of history): they can go down, and are gauges and a gauge histogram, not counters.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from directory_sync.models import DirectorySettings, JobStatus, SyncRun
from icewarp_admin.health import last_beat_tick

WINDOW = timedelta(hours=24)
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
COUNTED_ACTIONS = ("created", "updated", "renamed", "removed")
COUNTED_KINDS = ("accounts", "groups")
APPLIED = (JobStatus.SUCCEEDED, JobStatus.PARTIAL)


class SyncCollector(Collector):
    """Runs by status, the queue, durations, what runs changed and withheld, each active domain's last
    success, and beat's last tick."""

    def collect(self) -> Iterable[Metric]:
        now = timezone.now()
        recent = SyncRun.objects.filter(created_at__gte=now - WINDOW)
        yield from _runs_by_status(recent)
        yield from _queue(now)
        yield _durations(recent)
        yield _objects_changed(recent)
        yield from _per_domain()
        tick = last_beat_tick()
        beat = GaugeMetricFamily(
            "directory_sync_beat_last_tick_timestamp_seconds",
            "When the scheduler's last tick ran (Unix time; 0: never).",
        )
        beat.add_metric([], tick.timestamp() if tick else 0.0)
        yield beat


def _runs_by_status(recent: QuerySet[SyncRun]) -> Iterable[Metric]:
    counted = dict(recent.order_by().values_list("status").annotate(n=Count("pk")))
    family = GaugeMetricFamily(
        "directory_sync_runs", "Runs created in the last 24 hours, by status.", labels=["status"]
    )
    for status in JobStatus.values:
        family.add_metric([status], counted.get(status, 0))
    yield family


def _queue(now: datetime) -> Iterable[Metric]:
    active = SyncRun.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).aggregate(
        queued=Count("pk", filter=Q(status=JobStatus.QUEUED)),
        running=Count("pk", filter=Q(status=JobStatus.RUNNING)),
        oldest=Min("created_at", filter=Q(status=JobStatus.QUEUED)),
    )
    queued = GaugeMetricFamily("directory_sync_queued_runs", "Runs waiting for a worker.")
    queued.add_metric([], active["queued"])
    yield queued
    running = GaugeMetricFamily("directory_sync_running_runs", "Runs a worker is running.")
    running.add_metric([], active["running"])
    yield running
    oldest = GaugeMetricFamily(
        "directory_sync_oldest_queued_run_age_seconds", "How long the oldest queued run has waited (0: none)."
    )
    oldest.add_metric([], (now - active["oldest"]).total_seconds() if active["oldest"] else 0.0)
    yield oldest


def _durations(recent: QuerySet[SyncRun]) -> Metric:
    ran = recent.filter(started_at__isnull=False, finished_at__isnull=False).exclude(status=JobStatus.SKIPPED)
    ran = ran.annotate(
        duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    )
    figures = ran.aggregate(
        total=Count("pk"),
        seconds=Sum("duration"),
        **{
            f"le_{bound}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
            for bound in DURATION_BUCKETS_S
        },
    )
    buckets = [(str(float(bound)), float(figures[f"le_{bound}"])) for bound in DURATION_BUCKETS_S]
    buckets.append(("+Inf", float(figures["total"])))
    seconds = figures["seconds"].total_seconds() if figures["seconds"] else 0.0
    return GaugeHistogramMetricFamily(
        "directory_sync_run_duration_seconds",
        "How long the runs finished in the last 24 hours took (skipped runs left out).",
        buckets=buckets,
        gsum_value=seconds,
    )


def _objects_changed(recent: QuerySet[SyncRun]) -> Metric:
    applied = recent.filter(status__in=APPLIED, dry_run=False)
    sums = applied.aggregate(
        **{
            f"{kind}_{action}": Coalesce(Sum(Cast(KT(f"counts__{kind}__{action}"), IntegerField())), 0)
            for kind in COUNTED_KINDS
            for action in COUNTED_ACTIONS
        }
    )
    family = GaugeMetricFamily(
        "directory_sync_objects_changed",
        "Accounts and groups created, updated, renamed or removed by the runs of the last 24 hours "
        "(dry runs left out).",
        labels=["kind", "action"],
    )
    for kind in COUNTED_KINDS:
        for action in COUNTED_ACTIONS:
            family.add_metric([kind, action], sums[f"{kind}_{action}"])
    return family


def _per_domain() -> Iterable[Metric]:
    runs = SyncRun.objects.filter(domain=OuterRef("domain"), dry_run=False).order_by("-created_at")
    last_applied = runs.filter(status__in=APPLIED)
    domains = (
        DirectorySettings.objects.filter(active=True)
        .annotate(
            last_success=Subquery(runs.filter(status=JobStatus.SUCCEEDED).values("finished_at")[:1]),
            withheld=Subquery(last_applied.values("removals_withheld")[:1]),
            resolution=Subquery(last_applied.values("withheld_resolution")[:1]),
        )
        .values_list("domain__name", "last_success", "withheld", "resolution")
        .order_by("domain__name")
    )
    success = GaugeMetricFamily(
        "directory_sync_last_success_timestamp_seconds",
        "When each active domain's last successful run finished (Unix time; 0: never).",
        labels=["domain"],
    )
    withheld = GaugeMetricFamily(
        "directory_sync_removals_withheld",
        "Removals each active domain's last run withheld that nobody approved or dismissed yet.",
        labels=["domain"],
    )
    for name, last_success, held, resolution in domains:
        success.add_metric([name], last_success.timestamp() if last_success else 0.0)
        withheld.add_metric([name], 0 if resolution else held or 0)
    yield success
    yield withheld


registry = CollectorRegistry(auto_describe=False)
registry.register(SyncCollector())


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics, for a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`.

    They name every domain the console synchronizes: without a token set, /metrics answers nobody.
    """
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse(
            "Metrics are off: set METRICS_TOKEN in the console's environment and have the scraper send it "
            "as a bearer token (Authorization: Bearer <token>).\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse(
            "Send the METRICS_TOKEN as a bearer token: Authorization: Bearer <token>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)
