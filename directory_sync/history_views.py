"""Sync history, the operators' view: every domain's runs, one run with its events, and the CSV export.

Filters come as GET forms: an invalid one is shown with its errors and the list stays unfiltered. A run page
that is still queued or running polls its header partial; the answer that finds it finished carries the
outcome and the events out of band, with htmx's "stop polling" status.
"""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from directory_sync import selectors
from directory_sync.models import SyncEvent, SyncRun
from directory_sync.services.undo import UndoRefused, undo_offer, undo_removals
from directory_sync.views import polled, require_any
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver.models import Domain

RUNS_PER_PAGE = 50
EVENTS_PER_PAGE = 100
WITHHELD_SHOWN = 100
COUNT_KINDS = (("accounts", "Accounts"), ("groups", "Groups"))
DATE_WIDGET = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class HistoryFilterForm(forms.Form):
    """The history's filters (GET)."""

    domain = forms.ModelChoiceField(
        Domain.objects.order_by("name"), to_field_name="name", required=False, empty_label="All domains"
    )
    status = forms.ChoiceField(choices=[("", "Any status"), *SyncRun.Status.choices], required=False)
    trigger = forms.ChoiceField(choices=[("", "Any trigger"), *selectors.TRIGGER_CHOICES], required=False)
    kind = forms.ChoiceField(
        label="Dry runs", choices=[("", "Dry and real runs"), *selectors.KIND_CHOICES], required=False
    )
    date_from = forms.DateField(label="From", required=False, widget=DATE_WIDGET)
    date_to = forms.DateField(label="To", required=False, widget=DATE_WIDGET)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """The run_list arguments; none at all while any filter is invalid."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "domain": data["domain"].name if data["domain"] else "",
            "status": data["status"],
            "trigger": data["trigger"],
            "kind": data["kind"],
            "date_from": data["date_from"],
            "date_to": data["date_to"],
        }


class RunEventsForm(forms.Form):
    """The run page's event search (GET)."""

    q = forms.CharField(label="Search", max_length=200, required=False, strip=True)
    action = forms.ChoiceField(choices=[("", "Any action"), *SyncEvent.Action.choices], required=False)

    def filters(self) -> dict[str, str]:
        if not self.is_valid():
            return {}
        return {"search": self.cleaned_data["q"], "action": self.cleaned_data["action"]}


class Echo:
    """A file-like object that hands back what is written: csv.writer's output, row by row, for streaming."""

    def write(self, value: str) -> str:
        return value


@login_required
@permission_required("directory_sync.view_syncrun", raise_exception=True)
@require_GET
def history_list(request: HtmxHttpRequest) -> HttpResponse:
    form = HistoryFilterForm(request.GET)
    paginator = Paginator(selectors.run_list(**form.filters()), RUNS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    runs = [(run, selectors.counts_summary(run)) for run in page]
    context = {"form": form, "page": page, "runs": runs, "section": "sync"}
    if request.htmx:
        return render(request, "directory_sync/history_list.html#run-table", context)
    return render(request, "directory_sync/history_list.html", context)


@login_required
@permission_required("directory_sync.view_syncrun", raise_exception=True)
@require_GET
def history_csv(request: HtmxHttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = HistoryFilterForm(request.GET)
    if not form.is_valid():
        # Exporting everything instead would hand out a file that looks filtered and is not.
        problems = [
            f"{name}: {' '.join(str(error) for error in errors)}" for name, errors in form.errors.items()
        ]
        return HttpResponse(
            "The filters are not valid; nothing exported.\n" + "\n".join(problems),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    writer = csv.writer(Echo())
    rows = selectors.runs_csv_rows(selectors.run_list(**form.filters()))
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="sync-history-{stamp}.csv"'
    return response


@login_required
@permission_required("directory_sync.view_syncrun", raise_exception=True)
@require_GET
def run_detail(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(SyncRun.objects.select_related("domain"), pk=run_id)
    can_view_events = request.user.has_perm("directory_sync.view_syncevent")
    target = request.htmx.target if request.htmx else None
    if target == "run-events" and not can_view_events:
        raise PermissionDenied("Your role does not allow this (directory_sync.view_syncevent).")
    context = run_context(request, run, can_view_events=can_view_events)
    if target == "run-header":
        partial = "run-finished" if run.is_finished else "run-header"
        return polled(request, f"directory_sync/run_detail.html#{partial}", context, finished=run.is_finished)
    if target == "run-events":
        return render(request, "directory_sync/run_detail.html#run-events", context)
    return render(request, "directory_sync/run_detail.html", context)


def run_context(request: HtmxHttpRequest, run: SyncRun, *, can_view_events: bool) -> dict[str, Any]:
    columns, rows = count_table(run)
    expanded = request.GET.get("warning", "")
    context: dict[str, Any] = {
        "run": run,
        "warnings": selectors.run_warnings(run, expanded=int(expanded) if expanded.isdigit() else None),
        "count_columns": columns,
        "count_rows": rows,
        "can_view_events": can_view_events,
        "undo": undo_offer(run=run),
        "section": "sync",
    }
    if can_view_events:
        withheld = selectors.run_events(run=run, action=SyncEvent.Action.WITHHELD)
        events_form = RunEventsForm(request.GET)
        page = Paginator(selectors.run_events(run=run, **events_form.filters()), EVENTS_PER_PAGE).get_page(
            request.GET.get("page")
        )
        context |= {
            "withheld": selectors.event_rows(withheld[:WITHHELD_SHOWN]),
            "withheld_total": withheld.count(),
            "events_form": events_form,
            "search": events_form.cleaned_data.get("q", "") if events_form.is_valid() else "",
            "page": page,
            "rows": selectors.event_rows(page.object_list),
        }
    return context


@login_required
@require_POST
def undo_run_removals(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    """Undo every account removal of a run (administrators: who may approve removals may undo them)."""
    require_any(request, "directory_sync.approve_removals")
    run = get_object_or_404(SyncRun.objects.select_related("domain"), pk=run_id)
    try:
        undo = undo_removals(run=run, by=request.user.get_username())
    except UndoRefused as refused:
        messages.error(request, str(refused))
        target = run
    else:
        counts = undo.counts.get("accounts", {})
        messages.success(
            request,
            f"Undone: {counts.get('enabled_again', 0)} accounts enabled again, {counts.get('restored', 0)} "
            f"restored, {counts.get('not_restored', 0)} could not be restored (run #{undo.pk} says why).",
        )
        target = undo
    if request.htmx:
        return HttpResponseClientRedirect(reverse("sync_history:run", args=[target.pk]))
    return redirect("sync_history:run", run_id=target.pk)


def count_table(run: SyncRun) -> tuple[list[str], list[tuple[str, list[Any]]]]:
    """The counts as a table: one column per object kind the run counted, one row per outcome."""
    counts = run.counts if isinstance(run.counts, dict) else {}
    kinds = [(key, label) for key, label in COUNT_KINDS if isinstance(counts.get(key), dict)]
    outcomes = list(selectors.COUNT_KEYS)
    for key, _ in kinds:
        outcomes += [outcome for outcome in counts[key] if outcome not in outcomes]
    rows = [
        (outcome.replace("_", " ").capitalize(), [counts[key].get(outcome, 0) for key, _ in kinds])
        for outcome in outcomes
    ]
    return [label for _, label in kinds], rows
