"""How requests appear in the log: refused requests on one line, console sign-in failures by name and address.

Django logs a refused request (PermissionDenied, a failed CSRF check, any 4xx answer) through `django.request`
and `django.security.*` with the exception's traceback: a page of stack for every click a role may not make.
A refusal is the client's doing, not a fault of ours; its traceback says nothing the line does not.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest


class RefusalsOnOneLine(logging.Filter):
    """A 4xx record becomes one line naming the method, path, user and reason; anything else (a 500 and its
    traceback) passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        # django.server's access lines carry a socket as "request": only Django's request records qualify.
        if not isinstance(status, int) or not 400 <= status < 500 or not isinstance(request, HttpRequest):
            return True
        line = f"{record.getMessage()} method={request.method} user={_user_of(request)}"
        exception = record.exc_info[1] if record.exc_info else None
        if exception is not None and str(exception):
            line += f" reason={_quoted(str(exception))}"
        record.msg, record.args = line, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _user_of(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    try:
        if user is None or not user.is_authenticated:
            return "anonymous"
        return _quoted(user.get_username())
    except Exception:  # a log line must never fail the request it describes (e.g. the session store is down)
        return "unknown"


def _quoted(text: str | None) -> str:
    # JSON quoting escapes line breaks and quotes: a value typed by a client cannot forge a second log line.
    return json.dumps(text, ensure_ascii=False)


def sign_in_client(
    username: str | None, ip_address: str | None, user_agent: str, path_info: str, request: HttpRequest
) -> str:
    """How django-axes names a console sign-in in its log lines (AXES_CLIENT_STR_CALLABLE): user name and
    address, never the password."""
    return f"user={_quoted(username)} address={ip_address or 'unknown'} path={_quoted(path_info)}"
