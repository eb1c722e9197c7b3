"""System → Alerts (server-wide configuration, the test button, what is alerting, recent alerts and their
deliveries) and a domain's alert page (its additions, its states). Administrators only."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from directory_sync import selectors_alerts
from directory_sync.alert_forms import AlertSettingsForm, DomainAlertSettingsForm
from directory_sync.models import Alert, AlertKind
from directory_sync.services.alerts import save_alert_settings, save_domain_alert_settings, send_test_alert
from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver.models import Domain

VIEW, CHANGE, TEST = (
    "directory_sync.view_alertsettings",
    "directory_sync.change_alertsettings",
    "directory_sync.send_test_alert",
)
SAVED = "Alert settings saved."


def require(request: HtmxHttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied("Your role does not allow this: alerts are for administrators.")


def secret_values(form: AlertSettingsForm | DomainAlertSettingsForm) -> dict[str, Any]:
    return {
        "new_secret": form.cleaned_data.get("webhook_secret") or "",
        "clear_secret": bool(form.cleaned_data.get("clear_webhook_secret")),
    }


def page_context(form: AlertSettingsForm, test_alert: Alert | None = None) -> dict[str, Any]:
    return {
        "form": form,
        "config": selectors_alerts.alert_settings(),
        "alerting": list(selectors_alerts.alert_states(alerting_only=True)),
        "alerts": selectors_alerts.recent_alerts(),
        "test_alert": test_alert,
        "section": "alerts",
    }


@login_required
@require_http_methods(["GET", "POST"])
def alerts_page(request: HtmxHttpRequest) -> HttpResponse:
    require(request, VIEW)
    config = selectors_alerts.alert_settings()
    form = AlertSettingsForm(request.POST or None, instance=config)
    if request.method == "POST":
        require(request, CHANGE)
        if form.is_valid():
            save_alert_settings(values=form.model_values(), **secret_values(form))
            messages.success(request, SAVED)
            return redirect("directory_sync:alerts")
    return render(request, "directory_sync/alerts.html", page_context(form))


@login_required
@require_POST
def send_test(request: HtmxHttpRequest) -> HttpResponse:
    """Send a test alert through every server-wide channel now and show how each went."""
    require(request, TEST)
    test_alert = _send_test(request, domain=None)
    if request.htmx:
        return render(request, "directory_sync/alert_history.html#test-result", {"test_alert": test_alert})
    form = AlertSettingsForm(instance=selectors_alerts.alert_settings())
    return render(request, "directory_sync/alerts.html", page_context(form, test_alert))


def _send_test(request: HtmxHttpRequest, *, domain: Domain | None) -> Alert | None:
    try:
        return send_test_alert(domain=domain, requested_by=request.user.get_username())
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return None


def domain_context(
    domain: Domain, form: DomainAlertSettingsForm, test_alert: Alert | None = None
) -> dict[str, Any]:
    states = {state.kind: state for state in selectors_alerts.alert_states(domain=domain)}
    config = selectors_alerts.alert_settings()
    return {
        "domain": domain,
        "tab": "directory",
        "form": form,
        "config": config,
        "kinds": [
            (kind.label, config.enabled_for(kind.value), states.get(kind.value))
            for kind in AlertKind
            if kind != AlertKind.TEST
        ],
        "channels": selectors_alerts.alert_channels(domain=domain),
        "alerts": selectors_alerts.recent_alerts(domain=domain),
        "test_alert": test_alert,
    }


@login_required
@require_http_methods(["GET", "POST"])
def domain_alerts(request: HtmxHttpRequest, name: str) -> HttpResponse:
    domain = get_object_or_404(Domain, name=name)
    require(request, VIEW)
    form = DomainAlertSettingsForm(
        request.POST or None, instance=selectors_alerts.domain_alert_settings(domain=domain)
    )
    if request.method == "POST":
        require(request, CHANGE)
        if form.is_valid():
            save_domain_alert_settings(domain=domain, values=form.model_values(), **secret_values(form))
            messages.success(request, f"Alert settings of {domain.name} saved.")
            return redirect("directory_sync:domain_alerts", name=domain.name)
    return render(request, "directory_sync/domain_alerts.html", domain_context(domain, form))


@login_required
@require_POST
def domain_send_test(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Send a test alert through every channel this domain's alerts go to."""
    domain = get_object_or_404(Domain, name=name)
    require(request, TEST)
    test_alert = _send_test(request, domain=domain)
    if request.htmx:
        return render(request, "directory_sync/alert_history.html#test-result", {"test_alert": test_alert})
    form = DomainAlertSettingsForm(instance=selectors_alerts.domain_alert_settings(domain=domain))
    return render(request, "directory_sync/domain_alerts.html", domain_context(domain, form, test_alert))
