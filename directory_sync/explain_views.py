"""Explain one object (every role that reads the sync history) and synchronize just that one (administrators
and helpdesk): on the Directory Service tab and on the pages of synced accounts and groups."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from directory_sync.ldap import DirectoryError
from directory_sync.services.explain import ExplainRefused, explain_object, sync_one
from directory_sync.views import require_any
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver.models import Domain

RESULT = "directory_sync/explain.html#explain-result"


def explained(domain: Domain, query: str) -> dict[str, Any]:
    """The explain's part of a page's context: the explanation, or why there is none."""
    context: dict[str, Any] = {"explain_query": query}
    if not query.strip():
        return context
    try:
        context["explanation"] = explain_object(domain=domain, query=query)
    except (ExplainRefused, DirectoryError) as error:
        context["explain_error"] = str(error)
    return context


@login_required
@require_GET
def explain(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """The explanation of one object; nothing is written (an htmx request gets the result box alone)."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.view_syncrun")
    context = {"domain": domain, "tab": "directory", **explained(domain, request.GET.get("q", ""))}
    if request.htmx:
        return render(request, RESULT, context)
    return render(request, "directory_sync/explain_page.html", context)


@login_required
@require_POST
def synchronize_one(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Synchronize this one now: a run of just that object, in this request (services/explain.py says why)."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.run_sync")
    query = request.POST.get("q", "")
    dry_run = request.POST.get("dry_run") == "1"
    try:
        start = sync_one(
            domain=domain, query=query, requested_by=request.user.get_username(), dry_run=dry_run
        )
    except ExplainRefused as error:
        context = {"domain": domain, "explain_query": query, "explain_error": str(error)}
        return render(
            request, RESULT if request.htmx else "directory_sync/explain_page.html", context, status=400
        )
    run = start.run
    if start.joined:
        messages.warning(
            request,
            f"Run #{run.pk} of {domain.name} ({run.get_trigger_display()}) is {run.status}: nothing was "
            "started; try again when it has finished.",
        )
    if not request.htmx:
        return redirect("sync_history:run", run_id=run.pk)
    context = {"domain": domain, "sync_one_run": run, "sync_one_joined": start.joined}
    context.update(explained(domain, query))
    return render(request, RESULT, context)
