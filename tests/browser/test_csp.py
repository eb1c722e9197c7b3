"""The console under its Content-Security-Policy in a real browser: the main pages and their htmx actions
work, and Chromium reports no violation (no inline script or style, nothing evaluated)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from axes.models import AccessAttempt
from playwright.sync_api import expect

from devservers.slapd import SlapdInstance
from directory_sync.models import SyncRun
from icewarp_admin.mailserver.services.domains import create_domain
from tests.browser.conftest import PASSWORD, Shots, serious_violations
from tests.directory_helpers import configure, new_directory, sync
from tests.servers import Worker

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SignIn = Callable[[str], tuple[Any, Any]]

# Runs before any script of every page: the browser's own violation events, and htmx refusing to evaluate.
LISTENER = """
for (const name of ["securitypolicyviolation", "htmx:evalDisallowedError"]) {
  document.addEventListener(name, (event) => window.reportViolation(
    `${name}: ${event.violatedDirective || ""} ${event.blockedURI || ""} ` +
    `${event.sourceFile || ""}:${event.lineNumber || ""} on ${location.pathname}`));
}
"""


class Violations(list[str]):
    """What Chromium reported, for every page of a browser context."""

    def __init__(self, context: Any) -> None:
        super().__init__()
        context.expose_function("reportViolation", lambda line: self.append(line))
        context.add_init_script(LISTENER)

    def watch(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.append(f"page error: {error}"))
        return page

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.append(f"console: {message.text}")


def htmx_answer(page: Any, fragment: str) -> Any:
    """Wait for the htmx request whose URL holds fragment (htmx marks its requests with HX-Request)."""
    return page.expect_response(
        lambda response: fragment in response.url and response.request.headers.get("hx-request") == "true",
        timeout=60_000,  # a loaded CI machine; the step's own checks follow
    )


def settled(page: Any) -> None:
    """Wait until htmx has swapped and settled what it asked for: the next action must find the new elements,
    not the ones being replaced (a change on a detached select sends nothing)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def test_main_pages_and_htmx_actions_raise_no_csp_violation(
    signed_in: SignIn, live_server: Any, slapd: SlapdInstance, celery_worker: Worker
) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("ann", mail=["ann@example.com", "ann.smith@example.com"], cn="Ann Smith")
    directory.add_person("ben", cn="Ben Brown")
    configure(domain, directory)
    run = sync(domain)
    assert run.status == SyncRun.Status.SUCCEEDED
    page, shot = signed_in("administrator")
    violations = Violations(page.context)
    violations.watch(page)
    base = live_server.url

    for path in (
        "/domains/", "/domains/example.com/", "/domains/example.com/groups/", "/templates/",
        "/system/settings/", "/system/sign-in-lockouts/",
    ):  # fmt: skip
        response = page.goto(f"{base}{path}")
        assert response.status == 200 and "default-src 'self'" in response.headers["content-security-policy"]
    assert not serious_violations(page)
    AccessAttempt.objects.create(
        username="mallory", ip_address="192.0.2.9", user_agent="t", failures_since_start=5
    )
    page.reload()
    page.get_by_role("button", name="Lift the lockout of user name mallory").wait_for()
    assert not serious_violations(page)
    shot("a-lockout")
    page.get_by_role("button", name="Lift the lockout of user name mallory").click()
    page.get_by_text("Lifted: the user name mallory may sign in again.").wait_for()
    shot("lifted")

    page.goto(f"{base}/domains/example.com/accounts/")
    with htmx_answer(page, "/accounts/?"):
        page.get_by_role("searchbox", name="Search accounts").fill("ann.smith")
    expect(page.locator("#account-table")).not_to_contain_text("ben")
    shot("accounts-searched")

    page.locator("#account-table").get_by_role("link", name="ann").click()
    with htmx_answer(page, "/accounts/ann/"):
        page.locator("#account-settings").get_by_role("button", name="Save").click()
    shot("account-saved")

    page.goto(f"{base}/domains/example.com/directory/")
    with htmx_answer(page, "/directory/"):
        page.locator("#section-general").get_by_role("button", name="Save General settings").click()
    page.locator("#section-general .saved-note").wait_for()
    settled(page)
    for server_type in ("ad", "generic"):
        with htmx_answer(page, "/directory/defaults/"):
            page.locator("select[name=server_type]").select_option(server_type)
        settled(page)
    server = page.locator("#section-server")
    server.locator("input[name=password]").fill(slapd.admin_password)
    server.get_by_role("button", name="Test these settings").click()
    # The check runs in the worker; the box polls (hx-trigger every ...) until it is done.
    page.locator("#connection-check").get_by_text("Unsaved settings: Connected to").wait_for(timeout=60_000)
    shot("tested")
    page.get_by_role("button", name="Dry run").click()
    page.locator("#sync-run").get_by_text(re.compile(r"Accounts:")).wait_for(timeout=60_000)
    shot("dry-run")

    page.goto(f"{base}/sync/")
    with htmx_answer(page, "/sync/"):
        page.locator("select[name=status]").select_option("succeeded")
    page.goto(f"{base}/sync/runs/{run.pk}/")
    with htmx_answer(page, f"/sync/runs/{run.pk}/"):
        page.get_by_role("searchbox", name="Search events").fill("ben")
    expect(page.locator("#events table")).not_to_contain_text("ann@example.com")
    shot("run-events-searched")

    assert not violations, "\n".join(violations)


def test_sign_in_pages_and_the_lockout_page_raise_no_csp_violation(
    chromium: Any, live_server: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user(username="locked-browser", password=PASSWORD)
    context = chromium.new_context()
    try:
        violations = Violations(context)
        page = violations.watch(context.new_page())
        page.goto(f"{live_server.url}/me/")
        page.goto(f"{live_server.url}/login/")
        for _ in range(5):
            page.fill("input[name=username]", "locked-browser")
            page.fill("input[name=password]", "wrong-Passw0rd")
            page.click("button[type=submit]")
            page.wait_for_load_state()
        page.get_by_role("heading", name="Sign-in locked").wait_for()
        Shots(page, "test_sign_in_pages_and_the_lockout_page-anonymous")("locked-out")
        assert page.get_by_text("Try again after").is_visible()
        assert not serious_violations(page)
        assert not violations, "\n".join(violations)
    finally:
        context.close()


def test_the_watch_catches_htmx_injecting_its_inline_style(
    chromium: Any, live_server: Any, django_user_model: Any
) -> None:
    """Without base.html's htmx-config, htmx adds an inline <style>: the policy refuses it and the test sees
    it (so the tests above would fail if a page broke the policy)."""
    context = chromium.new_context()
    try:
        violations = Violations(context)
        page = violations.watch(context.new_page())

        def without_htmx_config(route: Any) -> None:
            response = route.fetch()
            body = re.sub(r'<meta name="htmx-config"[^>]*>', "", response.text())
            route.fulfill(response=response, body=body)

        page.route(re.compile(r".*/login/$"), without_htmx_config)
        page.goto(f"{live_server.url}/login/")
        page.wait_for_function("window.htmx !== undefined")
        page.wait_for_timeout(200)
        assert any("style-src" in line for line in violations), violations
    finally:
        context.close()
