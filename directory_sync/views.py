"""The Directory Service tab: four settings sections, keytabs, Test connection, and the history of changes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget

from directory_sync.backoff import schedule_state
from directory_sync.forms import SECTION_TITLES, SECTIONS, DirectorySettingsForm, KeytabUploadForm, ServerForm
from directory_sync.models import ConnectionCheck, DirectorySettings, Keytab, SettingsChange, SyncRun
from directory_sync.selectors_watch import watch_status
from directory_sync.servers import profile_for
from directory_sync.services.checks import queue_connection_check, unsaved_settings_values
from directory_sync.services.keytabs import delete_keytab, store_keytab
from directory_sync.services.runs import request_run, resolve_withheld
from directory_sync.services.settings import save_directory_settings, settings_for
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver.models import Domain

# htmx stops polling when a response has this status (htmx's documented "stop polling" code).
HTMX_STOP_POLLING = 286


def polled(
    request: HtmxHttpRequest, template: str, context: dict[str, Any], *, finished: bool
) -> HttpResponse:
    """A partial that htmx polls: once the job it shows is over, the answer tells htmx to stop."""
    response = render(request, template, context)
    if request.htmx and finished:
        response.status_code = HTMX_STOP_POLLING
    return response


def require_any(request: HtmxHttpRequest, *permissions: str) -> None:
    if not any(request.user.has_perm(permission) for permission in permissions):
        raise PermissionDenied("Your role does not allow this.")


def tab_context(request: HtmxHttpRequest, domain: Domain, **forms: Any) -> dict[str, Any]:
    settings = settings_for(domain)
    can_view = request.user.has_perm("directory_sync.view_directorysettings")
    context: dict[str, Any] = {"domain": domain, "tab": "directory", "settings": settings}
    if request.user.has_perm("directory_sync.view_syncrun"):
        context["run"] = SyncRun.objects.filter(domain=domain).exclude(status=SyncRun.Status.SKIPPED).first()
        if settings.active:
            context["schedule"] = schedule_state(domain_id=domain.pk)
            context["watch"] = watch_status(domain_id=domain.pk)
    if can_view:
        for name, form_class in SECTIONS.items():
            context[f"{name}_form"] = forms.get(name) or form_class(instance=settings)
        context["keytabs"] = list(Keytab.objects.filter(domain=domain))
        context["keytab_form"] = forms.get("keytab") or KeytabUploadForm()
        context["check"] = ConnectionCheck.objects.filter(domain=domain).first()
    elif request.user.has_perm("directory_sync.view_syncrun"):
        # Operators read what runs did, not the configuration.
        context["recent_runs"] = list(SyncRun.objects.filter(domain=domain)[:5])
    if request.user.has_perm("directory_sync.view_settingschange"):
        context["history"] = list(SettingsChange.objects.filter(domain=domain)[:20])
        context["history_total"] = SettingsChange.objects.filter(domain=domain).count()
    return context


@login_required
@require_http_methods(["GET", "POST"])
def directory_tab(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.view_directorysettings", "directory_sync.view_settingschange")
    bound: dict[str, Any] = {}
    saved: dict[str, str] = {}
    section = ""
    if request.method == "POST":
        require_any(request, "directory_sync.change_directorysettings")
        section = request.POST.get("section", "")
        if section not in SECTIONS:
            return HttpResponse("Unknown section.", status=400)
        form = SECTIONS[section](request.POST, instance=settings_for(domain))
        if form.is_valid():
            saved[section] = save_section(request, domain, section, form)
            if not request.htmx:
                url = reverse("directory_sync:directory_tab", args=[domain.name])
                return redirect(f"{url}?saved={section}#section-{section}")
        else:
            bound[section] = form
    elif request.GET.get("saved") in SECTIONS:
        saved[request.GET["saved"]] = SAVED_NOTE
    context = tab_context(request, domain, **bound)
    context["saved"] = saved
    if request.htmx and section:
        return render(request, f"directory_sync/directory_tab.html#section-{section}", context)
    return render(request, "directory_sync/directory_tab.html", context)


SAVED_NOTE = "Saved. The next run uses these settings: the next scheduled one, or Synchronize Now."
UNCHANGED_NOTE = "Nothing changed."


def save_section(request: HtmxHttpRequest, domain: Domain, section: str, form: DirectorySettingsForm) -> str:
    """Save one section; the note shown next to its button (and as a message)."""
    values = {field: form.cleaned_data[field] for field in form.Meta.fields}
    password = form.cleaned_data.get("password") if isinstance(form, ServerForm) else None
    clear = bool(form.cleaned_data.get("clear_password")) if isinstance(form, ServerForm) else False
    _, change = save_directory_settings(
        domain=domain, values=values, new_password=password, clear_password=clear, changed_by=request.user
    )
    note = (
        f"{SECTION_TITLES[section]}: {SAVED_NOTE}"
        if change
        else f"{SECTION_TITLES[section]}: {UNCHANGED_NOTE}"
    )
    messages.success(request, note)
    return SAVED_NOTE if change else UNCHANGED_NOTE


@login_required
@require_POST
def server_type_defaults(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Re-render the Advanced section for another server type: its defaults wherever nothing was typed."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.change_directorysettings")
    form = with_server_type_defaults(request.POST, instance=settings_for(domain))
    context = {**tab_context(request, domain), "advanced_form": form}
    return render(request, "directory_sync/directory_tab.html#section-advanced", context)


def with_server_type_defaults(posted: QueryDict, *, instance: DirectorySettings) -> DirectorySettingsForm:
    """An unbound Advanced form with what was posted, and the new type's defaults where the old ones stood.

    A field still holding the previous type's default was not typed in by the administrator, so it follows
    the type; anything else stays as typed.
    """
    new_type, old_type = posted.get("server_type", ""), posted.get("previous_server_type", "")
    old, new = profile_for(old_type).defaults, profile_for(new_type).defaults
    form_class = SECTIONS["advanced"]
    initial: dict[str, Any] = {}
    for field_name, field in form_class.base_fields.items():
        if isinstance(field, forms.BooleanField):
            initial[field_name] = field_name in posted
        else:
            initial[field_name] = posted.get(field_name, "")
    for field_name in (
        "account_filter",
        "group_filter",
        "mailing_list_filter",
        "guid_attribute",
        "change_stamp_attribute",
    ):
        if initial[field_name].strip() == getattr(old, field_name):
            initial[field_name] = ""  # blank: the new type's default applies, shown as the placeholder
    if initial["login_source"] in {old.login_source, ""}:
        initial["login_source"] = new.login_source
    if not initial["guid_attribute"]:
        initial["guid_is_binary"] = new.guid_is_binary
    form = form_class(instance=instance, initial=initial)
    form.show_server_type_defaults(new_type)
    return form


@login_required
@require_POST
def test_connection(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.test_connection")
    check = queue_connection_check(domain=domain, requested_by=request.user.get_username())
    if request.htmx:
        return render(
            request, "directory_sync/directory_tab.html#connection-check", {"domain": domain, "check": check}
        )
    messages.info(request, "Test connection queued; this page shows the result when it is done.")
    return redirect(reverse("directory_sync:directory_tab", args=[domain.name]) + "#connection-check")


@login_required
@require_POST
def test_unsaved_settings(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Test connection with what one section's form holds, without saving it (a bad value: the section comes
    back with its errors, as a save would)."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.change_directorysettings")
    require_any(request, "directory_sync.test_connection")
    section = request.POST.get("section", "")
    if section not in SECTIONS:
        return HttpResponse("Unknown section.", status=400)
    form = SECTIONS[section](request.POST, instance=settings_for(domain))
    if not form.is_valid():
        context = tab_context(request, domain, **{section: form})
        if request.htmx:
            response = render(request, f"directory_sync/directory_tab.html#section-{section}", context)
            return reswap(retarget(response, f"#section-{section}"), "outerHTML")
        return render(request, "directory_sync/directory_tab.html", context)
    unsaved = unsaved_settings_values(
        {field: form.cleaned_data[field] for field in form.Meta.fields},
        domain=domain,
        new_password=form.cleaned_data.get("password") if isinstance(form, ServerForm) else None,
        clear_password=bool(form.cleaned_data.get("clear_password"))
        if isinstance(form, ServerForm)
        else False,
    )
    check = queue_connection_check(domain=domain, requested_by=request.user.get_username(), unsaved=unsaved)
    if request.htmx:
        return render(
            request, "directory_sync/directory_tab.html#connection-check", {"domain": domain, "check": check}
        )
    messages.info(request, "Testing the unsaved settings; this page shows the result when it is done.")
    return redirect(reverse("directory_sync:directory_tab", args=[domain.name]) + "#connection-check")


@login_required
@require_POST
def synchronize_now(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Synchronize Now (or Dry run): queue a run, or show the one already going on; returns at once."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.run_sync")
    dry_run = request.POST.get("dry_run") == "1"
    trigger = SyncRun.Trigger.MANUAL
    run, joined = request_run(
        domain=domain, trigger=trigger, requested_by=request.user.get_username(), dry_run=dry_run
    )
    if joined:
        messages.info(
            request,
            f"A run of {domain.name} is already {run.status}: showing it instead of starting another.",
        )
    if request.htmx:
        return render(request, "directory_sync/directory_tab.html#sync-run", {"domain": domain, "run": run})
    return redirect("sync_history:run", run_id=run.pk)


@login_required
@require_GET
def run_status(request: HtmxHttpRequest, name: str, run_id: int) -> HttpResponse:
    """The tab's progress box of one run; polling stops (286) once the run is over."""
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.view_syncrun")
    run = get_object_or_404(SyncRun, pk=run_id, domain=domain)
    context = {"domain": domain, "run": run}
    return polled(request, "directory_sync/directory_tab.html#sync-run", context, finished=run.is_finished)


@login_required
@require_POST
def resolve_withheld_removals(request: HtmxHttpRequest, run_id: int) -> HttpResponse:
    """Approve (a new run applies them after checking the directory again) or dismiss withheld removals."""
    require_any(request, "directory_sync.approve_removals")
    run = get_object_or_404(SyncRun, pk=run_id)
    decision = request.POST.get("decision", "")
    if decision not in {"approve", "dismiss"}:
        return HttpResponse("Choose approve or dismiss.", status=400)
    approval = resolve_withheld(run=run, approve=decision == "approve", by=request.user.get_username())
    if decision == "approve" and approval is not None:
        messages.success(
            request, f"Approved: run #{approval.pk} applies them after checking the directory again."
        )
        return redirect("sync_history:run", run_id=approval.pk)
    if decision == "dismiss" and run.removals_withheld:
        messages.info(request, "Dismissed: these removals will not be applied.")
    else:
        messages.warning(request, "These removals were already approved or dismissed.")
    return redirect("sync_history:run", run_id=run.pk)


@login_required
@require_GET
def connection_check(request: HtmxHttpRequest, name: str, check_id: int) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.view_directorysettings")
    check = get_object_or_404(ConnectionCheck, pk=check_id, domain=domain)
    context = {"domain": domain, "check": check}
    return polled(
        request, "directory_sync/directory_tab.html#connection-check", context, finished=check.is_finished
    )


@login_required
@require_POST
def keytab_upload(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.change_directorysettings")
    form = KeytabUploadForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["file"]
        file_name = form.cleaned_data["file_name"] or upload.name
        try:
            keytab = store_keytab(
                domain=domain,
                file_name=file_name,
                data=upload.read(),
                uploaded_by=request.user.get_username(),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Keytab {keytab.file_name} stored ({len(keytab.entries)} keys).")
            return redirect(reverse("directory_sync:directory_tab", args=[domain.name]) + "#keytabs")
    return render(request, "directory_sync/directory_tab.html", tab_context(request, domain, keytab=form))


@login_required
@require_POST
def keytab_delete(request: HtmxHttpRequest, name: str, keytab_id: int) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.change_directorysettings")
    keytab = get_object_or_404(Keytab, pk=keytab_id, domain=domain)
    delete_keytab(keytab=keytab)
    messages.success(request, f"Keytab {keytab.file_name} deleted.")
    return redirect(reverse("directory_sync:directory_tab", args=[domain.name]) + "#keytabs")


@login_required
@require_GET
def settings_history(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require_any(request, "directory_sync.view_settingschange")
    changes = SettingsChange.objects.filter(domain=domain)
    return render(
        request,
        "directory_sync/settings_history.html",
        {"domain": domain, "tab": "directory", "history": changes},
    )
