"""Production settings: `check --deploy` is clean with the production environment, secure cookies unless
turned off, the Content-Security-Policy header, and refused requests logged on one line while a 500 keeps its
traceback."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path

ROOT = Path(__file__).resolve().parents[1]
# Only what a process needs from the test run's environment: its variables (DJANGO_ALLOW_ASYNC_UNSAFE from the
# browser tests, a DATABASE_URL, DEBUG) would change what the check sees.
KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the database went away")


# This module is also the URLconf of the tests marked with it: the console's URLs and a view that fails.
urlpatterns = [path("boom/", boom), path("", include("icewarp_admin.urls"))]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    mail_root = tmp_path / "mail"
    mail_root.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in KEPT}
    env.update(
        DJANGO_SETTINGS_MODULE="icewarp_admin.settings",
        DEBUG="0",
        SECRET_KEY="k" + Fernet.generate_key().decode() + "-a-long-random-production-secret",
        SECRETS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="console.example.com",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        VAR_DIR=str(tmp_path),
        MAIL_ROOT=str(mail_root),
        DATABASE_URL=f"sqlite:///{tmp_path / 'console.sqlite3'}",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_check_deploy_is_clean_with_the_production_environment(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_names_what_is_missing(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, SECURE_HSTS_SECONDS="0", SECURE_SSL_REDIRECT="0", SESSION_COOKIE_SECURE="0"
    )
    result = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, result.stderr


def test_a_bad_proxy_ssl_header_says_what_to_write(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto"), "check")
    assert result.returncode != 0
    assert "must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https" in result.stderr


def test_cookies_are_secure_without_debug(client: Client) -> None:
    # The test settings are the real ones (DEBUG off, nothing set): the defaults are what production gets.
    response = client.get("/login/")
    assert response.cookies["csrftoken"]["secure"] is True


@pytest.mark.django_db
def test_the_content_security_policy_is_on_every_response(client: Client, admin: Client) -> None:
    for response in (
        client.get("/login/"),
        client.get("/me/"),
        admin.get("/domains/"),
        admin.get("/nowhere/"),
    ):
        policy = response.headers["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy


INLINE = {
    "inline <script>": r"<script(?![^>]*\ssrc=)",
    "<style> element": r"<style[\s>]",
    "style= attribute": r"\sstyle\s*=",
    "on*= handler": r"\son[a-z]+\s*=",
    "htmx evaluation (hx-on, hx-vars, js:)": r"hx-on|hx-vars|[\"'{]\s*js:|javascript:",
}


def test_templates_hold_nothing_the_policy_refuses() -> None:
    # The browser test sees the pages it visits; this sees every template, partials included.
    found = [
        f"{template.relative_to(ROOT)}: {what}"
        for template in sorted((ROOT / "templates").rglob("*.html"))
        for what, pattern in INLINE.items()
        if re.search(pattern, template.read_text(), re.IGNORECASE)
    ]
    assert not found, "move scripts to static/js/ and styles to static/css/:\n" + "\n".join(found)


@pytest.fixture
def console_log() -> Iterator[io.StringIO]:
    """What the configured console handler writes (formatter and filters included) while the test runs."""
    handler = next(h for h in logging.getLogger("django").handlers if h.name == "console")
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


@pytest.mark.django_db
def test_a_refused_request_is_one_line_with_method_path_user_and_reason(
    client_for: Callable[[str | None], Client], console_log: io.StringIO
) -> None:
    helpdesk = client_for("helpdesk")
    assert helpdesk.post("/system/settings/", {}).status_code == 403
    assert helpdesk.get("/system/sign-in-lockouts/").status_code == 403
    refused = Client(enforce_csrf_checks=True).post("/login/", {"username": "x"})
    assert refused.status_code == 403 and "The form could not be accepted" in refused.content.decode()
    lines = console_log.getvalue().splitlines()
    assert lines[0].endswith(
        "WARNING django.request: Forbidden (Permission denied): /system/settings/ method=POST "
        'user="user-helpdesk" reason="Your role does not allow this (mailserver.change_systemvariable)."'
    ), lines
    assert lines[1].endswith(
        'Forbidden (Permission denied): /system/sign-in-lockouts/ method=GET user="user-helpdesk"'
    ), lines
    assert lines[2].endswith(
        "WARNING django.security.csrf: Forbidden (CSRF cookie not set.): /login/ method=POST user=anonymous"
    ), lines
    assert len(lines) == 3 and "Traceback" not in console_log.getvalue()


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_server_error_keeps_its_traceback(admin: Client, console_log: io.StringIO) -> None:
    admin.raise_request_exception = False
    assert admin.get("/boom/").status_code == 500
    logged = console_log.getvalue()
    assert "ERROR django.request: Internal Server Error: /boom/" in logged
    assert "Traceback (most recent call last)" in logged and "RuntimeError: the database went away" in logged


@pytest.mark.django_db
def test_the_health_check_is_not_redirected_to_https(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # a new handler: SecurityMiddleware reads the setting when it is built
    assert client.get("/login/").status_code == 301
    assert client.get("/healthz?check=database").status_code == 200
