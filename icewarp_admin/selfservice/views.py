"""The self-service pages: function views, one template per page; invalid forms re-render with status 200."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from directory_sync.auth import authenticate, change_password
from directory_sync.auth.sso import sign_in_with_ticket, single_sign_on_domains
from directory_sync.models import SignIn
from icewarp_admin.mailserver import selectors
from icewarp_admin.mailserver.forms import PersonalDataForm
from icewarp_admin.mailserver.services.accounts import update_personal_data
from icewarp_admin.selfservice.forms import PasswordChangeForm, SignInForm
from icewarp_admin.selfservice.sessions import (
    mail_user_required,
    refresh,
    sign_in,
    sign_out,
    signed_in_account,
)

FLASH_KEY = "_flash"


def _client(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))[:64]


def _flash(request: HttpRequest, text: str) -> None:
    request.mail_session[FLASH_KEY] = text  # type: ignore[attr-defined]


def _pop_flash(request: HttpRequest) -> str:
    return str(request.mail_session.pop(FLASH_KEY, ""))  # type: ignore[attr-defined]


def _negotiate_token(request: HttpRequest) -> bytes | None:
    """The token of an "Authorization: Negotiate <base64>" header: b"" if not base64, None if absent."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "negotiate":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


@require_http_methods(["GET", "POST"])
def sign_in_page(request: HttpRequest) -> HttpResponse:
    if signed_in_account(request) is not None:
        return redirect("selfservice:account")
    form = SignInForm(request.POST or None)
    context: dict[str, Any] = {
        "form": form,
        "expired_address": "",
        "changed": request.GET.get("changed") == "1",
        "signed_out": request.GET.get("signed_out") == "1",
        "sso_error": "",
        "sso_offered": False,
    }
    status = 200
    token = _negotiate_token(request) if request.method == "GET" else None
    if token is not None:
        outcome = sign_in_with_ticket(token=token, client=_client(request), channel=SignIn.Channel.WEB)
        if outcome.result.ok and outcome.result.account is not None:
            sign_in(request, outcome.result.account)
            signed_in = redirect("selfservice:account")
            if outcome.answer:
                # Mutual authentication: the browser checks that it was this server that accepted its ticket.
                signed_in["WWW-Authenticate"] = f"Negotiate {base64.b64encode(outcome.answer).decode()}"
            return signed_in
        # Refused: the page says why and offers the password; no new challenge, or the browser would loop.
        context["sso_error"] = outcome.result.message
        status = 403
    if request.method == "POST" and form.is_valid():
        result = authenticate(
            address=form.cleaned_data["address"],
            password=form.cleaned_data["password"],
            client=_client(request),
            channel=SignIn.Channel.WEB,
        )
        if result.ok and result.account is not None:
            sign_in(request, result.account)
            if result.warning:
                _flash(request, result.warning)
            return redirect("selfservice:account")
        if result.reason == SignIn.Reason.EXPIRED:
            context["expired_address"] = form.cleaned_data["address"]
        form.add_error(None, result.message)
    challenge = (
        request.method == "GET"
        and token is None
        and not context["signed_out"]
        and bool(single_sign_on_domains())
    )
    context["sso_offered"] = challenge
    response = render(request, "selfservice/sign_in.html", context, status=401 if challenge else status)
    if challenge:
        # A browser with a Kerberos ticket answers with it; one without shows this page: the password form.
        response["WWW-Authenticate"] = "Negotiate"
    return response


@mail_user_required
@require_http_methods(["GET", "POST"])
def account_page(request: HttpRequest) -> HttpResponse:
    signed_in = request.mail_account  # type: ignore[attr-defined]
    account = selectors.account_detail(domain=signed_in.domain, username=signed_in.username)
    form = PersonalDataForm(request.POST or None, current=account.vcard)
    if request.method == "POST" and form.is_valid():
        update_personal_data(account=account, vcard=form.vcard())
        _flash(request, "Personal data saved. The directory no longer overwrites it.")
        return redirect("selfservice:account")
    context: dict[str, Any] = {
        "account": account,
        "addresses": list(account.aliases.all()),
        "memberships": list(account.group_memberships.all()),
        "form": form,
        "flash": _pop_flash(request),
    }
    return render(request, "selfservice/account.html", context)


@require_http_methods(["GET", "POST"])
def password_page(request: HttpRequest) -> HttpResponse:
    account = signed_in_account(request)
    address = str(account) if account is not None else ""
    form = PasswordChangeForm(
        request.POST or None, address=address, initial={"address": request.GET.get("address", "")[:320]}
    )
    if request.method == "POST" and form.is_valid():
        result = change_password(
            address=address or form.cleaned_data["address"],
            old_password=form.cleaned_data["current_password"],
            new_password=form.cleaned_data["new_password"],
            client=_client(request),
            channel=SignIn.Channel.WEB,
        )
        if result.ok:
            if account is None:
                return redirect(f"{request.path.rsplit('password/', 1)[0]}?changed=1")
            assert result.account is not None
            result.account.refresh_from_db()
            refresh(request, result.account)
            _flash(request, "Your password has been changed.")
            return redirect("selfservice:account")
        field = "new_password" if result.reason == SignIn.Reason.POLICY else None
        form.add_error(field, result.message)
    context = {"form": form, "account": account}
    return render(request, "selfservice/password.html", context)


@require_POST
def sign_out_page(request: HttpRequest) -> HttpResponse:
    sign_out(request)
    # Not straight back to the sign-in page's Negotiate challenge, which would sign a Kerberos user in again.
    return redirect(f"{reverse('selfservice:sign_in')}?signed_out=1")
