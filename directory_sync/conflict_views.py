"""The conflict centre (Directory Service → Conflicts): every domain's conflicts, open or resolved, and the
actions on one (keep the local one, give it to the directory's entry, link the local account to the entry).

Administrators and helpdesk act, operators read. Each action is one POST; a refusal (what to fix) is shown on
the conflict's row of the page, answered with status 200.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from directory_sync import conflict_selectors as selectors
from directory_sync.models import SyncConflict
from directory_sync.services import conflicts as services
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver.models import Domain

CONFLICTS_PER_PAGE = 100
RESOLVE = "directory_sync.resolve_syncconflict"


class ConflictFilterForm(forms.Form):
    """The list's filters (GET)."""

    domain = forms.ModelChoiceField(
        Domain.objects.order_by("name"), to_field_name="name", required=False, empty_label="All domains"
    )
    status = forms.ChoiceField(choices=selectors.STATUS_CHOICES, required=False)
    kind = forms.ChoiceField(choices=[("", "Any kind"), *SyncConflict.Kind.choices], required=False)

    def filters(self) -> dict[str, str]:
        """The conflict_list arguments: open conflicts of every domain while a filter is invalid."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "domain": data["domain"].name if data["domain"] else "",
            "status": data["status"] or selectors.OPEN,
            "kind": data["kind"],
        }


class ActionForm(forms.Form):
    """One action on one conflict (POST)."""

    action = forms.ChoiceField(choices=[(name, name) for name in services.ACTIONS])
    rename_to = forms.CharField(max_length=64, required=False, strip=True)
    remove_holder = forms.BooleanField(required=False)


@login_required
@permission_required("directory_sync.view_syncconflict", raise_exception=True)
@require_GET
def conflict_list(request: HtmxHttpRequest) -> HttpResponse:
    context = list_context(request)
    if request.htmx:
        return render(request, "directory_sync/conflicts.html#conflict-table", context)
    return render(request, "directory_sync/conflicts.html", context)


def list_context(
    request: HtmxHttpRequest,
    *,
    errors: dict[int, list[str]] | None = None,
    typed: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    form = ConflictFilterForm(request.GET)
    page = Paginator(selectors.conflict_list(**form.filters()), CONFLICTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    errors, typed = errors or {}, typed or {}
    return {
        "form": form,
        "page": page,
        # (row, what to fix, what was typed) for each conflict of the page.
        "rows": [
            (row, errors.get(row.conflict.pk, []), typed.get(row.conflict.pk, {}))
            for row in selectors.conflict_rows(page.object_list)
        ],
        # A refusal about a conflict this page does not list (resolved meanwhile, say) is said above it.
        "refused_elsewhere": [
            (pk, problems)
            for pk, problems in errors.items()
            if pk not in {conflict.pk for conflict in page.object_list}
        ],
        "can_resolve": request.user.has_perm(RESOLVE),
        "can_remove": request.user.has_perm("mailserver.delete_account"),
        "query": request.GET.urlencode(),
        "section": "conflicts",
    }


@login_required
@require_POST
def resolve_conflict(request: HtmxHttpRequest, conflict_id: int) -> HttpResponse:
    """One action on one conflict; back to the list (with its filters) once done."""
    if not request.user.has_perm(RESOLVE):
        raise PermissionDenied(f"Your role does not allow this ({RESOLVE}).")
    conflict = get_object_or_404(SyncConflict, pk=conflict_id)
    form = ActionForm(request.POST)
    if not form.is_valid():
        return _refused(request, conflict, ["Choose keep the local one, give it, or link the local account."])
    action, data = form.cleaned_data["action"], form.cleaned_data
    if (
        action == services.GIVE
        and data["remove_holder"]
        and not request.user.has_perm("mailserver.delete_account")
    ):
        raise PermissionDenied("Your role does not allow removing accounts (mailserver.delete_account).")
    by = request.user.get_username()
    try:
        if action == services.KEEP_LOCAL:
            resolved = services.keep_local(conflict_id=conflict.pk, by=by)
        elif action == services.GIVE:
            resolved = services.give_to_directory(
                conflict_id=conflict.pk,
                by=by,
                rename_to=data["rename_to"],
                remove_holder=data["remove_holder"],
            )
        else:
            resolved = services.adopt_local(conflict_id=conflict.pk, by=by)
    except ValidationError as error:
        return _refused(request, conflict, error.messages, typed=data)
    messages.success(request, f"Conflict #{conflict.pk} resolved. {resolved.conflict.resolution_note}")
    query = request.GET.urlencode()
    return redirect(reverse("sync_conflicts:list") + (f"?{query}" if query else ""))


def _refused(
    request: HtmxHttpRequest,
    conflict: SyncConflict,
    problems: list[str],
    *,
    typed: dict[str, Any] | None = None,
) -> HttpResponse:
    """The list again, with what to fix on the conflict's row (and what was typed kept)."""
    context = list_context(request, errors={conflict.pk: problems}, typed={conflict.pk: typed or {}})
    return render(request, "directory_sync/conflicts.html", context)
