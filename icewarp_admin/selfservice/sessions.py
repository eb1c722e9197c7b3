"""The mail users' session: its own cookie, scoped to the self-service pages.

Django's session middleware serves the console (request.session, request.user); this one loads a second
session store for /me/ only, as request.mail_session. A console session therefore never signs anyone in as a
mail user, and a mail user's cookie is never even sent to a console page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.crypto import constant_time_compare, salted_hmac

from icewarp_admin.mailserver.models import Account

PATH_PREFIX = "/me/"
ACCOUNT_KEY = "_mail_account_id"
FINGERPRINT_KEY = "_mail_account_fingerprint"


class MailUserSessionMiddleware:
    """request.mail_session on the self-service pages, saved in its own cookie."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.store: type[SessionBase] = import_module(settings.SESSION_ENGINE).SessionStore

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PATH_PREFIX):
            return self.get_response(request)
        cookie = settings.SELF_SERVICE_SESSION_COOKIE_NAME
        session = self.store(request.COOKIES.get(cookie))
        request.mail_session = session  # type: ignore[attr-defined]
        response = self.get_response(request)
        if cookie in request.COOKIES and session.is_empty():
            response.delete_cookie(cookie, path=PATH_PREFIX, samesite="Lax")
        elif session.modified and not session.is_empty():
            session.save()
            response.set_cookie(
                cookie,
                session.session_key or "",
                max_age=session.get_expiry_age(),
                path=PATH_PREFIX,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
                samesite="Lax",
            )
            response.headers.setdefault("Cache-Control", "private, no-store")
        return response


def _fingerprint(account: Account) -> str:
    # Changes when the local password hash, the auth value, the auth mode or the enabled flag change: a
    # session made before such a change is signed out, as Django does for its users' sessions.
    material = f"{account.pk}|{account.password}|{account.auth_mode}|{account.auth_value}|{account.enabled}"
    return salted_hmac("selfservice.session", material, algorithm="sha256").hexdigest()


def sign_in(request: HttpRequest, account: Account) -> None:
    """Start a fresh mail-user session for account (a new key: a session fixed before sign-in is useless)."""
    session: SessionBase = request.mail_session  # type: ignore[attr-defined]
    session.cycle_key()
    session[ACCOUNT_KEY] = account.pk
    session[FINGERPRINT_KEY] = _fingerprint(account)
    session.set_expiry(settings.SELF_SERVICE_SESSION_AGE_SECONDS)


def refresh(request: HttpRequest, account: Account) -> None:
    """Keep this session after the person's own password change (other sessions are signed out)."""
    request.mail_session[FINGERPRINT_KEY] = _fingerprint(account)  # type: ignore[attr-defined]


def sign_out(request: HttpRequest) -> None:
    request.mail_session.flush()  # type: ignore[attr-defined]


def signed_in_account(request: HttpRequest) -> Account | None:
    """The account this session signed in, while it exists, is enabled and has not changed its password."""
    session: SessionBase | None = getattr(request, "mail_session", None)
    if session is None or ACCOUNT_KEY not in session:
        return None
    account = Account.objects.select_related("domain").filter(pk=session[ACCOUNT_KEY]).first()
    if account is None or not account.enabled:
        session.flush()
        return None
    if not constant_time_compare(str(session.get(FINGERPRINT_KEY, "")), _fingerprint(account)):
        session.flush()
        return None
    return account


def mail_user_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The view runs for a signed-in mail user (request.mail_account); others go to the sign-in page."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        account = signed_in_account(request)
        if account is None:
            return redirect("selfservice:sign_in")
        request.mail_account = account  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper
