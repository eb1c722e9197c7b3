"""Console sign-in lockouts: System → Sign-in lockouts (see and lift them), and the page that a locked-out
sign-in gets (django-axes' AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from axes.helpers import get_client_username
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from icewarp_admin.http import HtmxHttpRequest
from icewarp_admin.mailserver import lockout_selectors
from icewarp_admin.mailserver.services.sign_in_lockouts import lift_lockout
from icewarp_admin.mailserver.views import require_permission

KIND_LABELS = {"user": "user name", "address": "address"}


class LiftLockoutForm(forms.Form):
    kind = forms.ChoiceField(
        label="Lift the lockout of", choices=[("user", "a user name"), ("address", "an address")]
    )
    value = forms.CharField(label="User name or address", max_length=255)


@login_required
@permission_required("axes.view_accessattempt", raise_exception=True)
@require_http_methods(["GET", "POST"])
def sign_in_lockouts(request: HtmxHttpRequest) -> HttpResponse:
    form = LiftLockoutForm(request.POST or None)
    if request.method == "POST":
        require_permission(request, "axes.delete_accessattempt")
        if form.is_valid():
            kind, value = form.cleaned_data["kind"], form.cleaned_data["value"]
            removed = lift_lockout(kind=kind, value=value, lifted_by=request.user)
            if removed:
                messages.success(request, f"Lifted: the {KIND_LABELS[kind]} {value} may sign in again.")
            else:
                messages.warning(request, f"No failed sign-ins of the {KIND_LABELS[kind]} {value} were left.")
            return redirect("sign_in_lockouts")
    context = {
        "entries": lockout_selectors.sign_in_failures(),
        "form": form,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
        "section": "lockouts",
    }
    return render(request, "mailserver/sign_in_lockouts.html", context)


def locked_out(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """The answer to a console sign-in that axes refuses: what happened, and when to try again."""
    username = get_client_username(request, credentials)
    until = lockout_selectors.locked_until(
        username=username, address=getattr(request, "axes_ip_address", None)
    )
    context = {
        "username": username,
        "locked_until": until,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off_minutes": round(settings.AXES_COOLOFF_TIME.total_seconds() / 60),
    }
    return render(request, "registration/locked_out.html", context, status=HTTPStatus.TOO_MANY_REQUESTS)
