"""Browser tests: Debian's Chromium driven by Playwright against the live console, one screenshot per step in
var/screenshots/ (the README points there), and axe-core's accessibility check."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group as Role

from icewarp_admin.mailserver.roles import ADMINISTRATORS, HELPDESK, OPERATORS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "Browser-Passw0rd-1"
ROLES = {"administrator": ADMINISTRATORS, "helpdesk": HELPDESK, "operator": OPERATORS}
ARGUMENTS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

# Playwright's sync API keeps an event loop running in this thread; the ORM calls the tests make between
# steps are ordinary synchronous calls all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Chromium for one test. Not shared across tests: while Playwright's loop runs, Django (asgiref) keeps
    database connections per context, not per thread, so a test's ORM calls get connections of their own, and
    pytest-django's (which restores the migrated data of serialized_rollback) would be out of reach for the
    tests after it."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGUMENTS)
        yield browser
        browser.close()
        connections.close_all()  # the connections opened while the loop ran


class Shots:
    """Numbered screenshots of one test: var/screenshots/<test>/<n>-<step>.png."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.folder = SCREENSHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', step)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def signed_in(
    chromium: Any, live_server: Any, django_user_model: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], tuple[Any, Shots]]]:
    """sign_in(role) → (page, shots): a new browser context signed in through the login form as that role."""
    contexts: list[Any] = []

    def sign_in(role: str) -> tuple[Any, Shots]:
        user = django_user_model.objects.create_user(username=f"{role}-browser", password=PASSWORD)
        user.groups.add(Role.objects.get(name=ROLES[role]))
        context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/domains/$"))
        return page, Shots(page, f"{request.node.name}-{role}")

    yield sign_in
    for context in contexts:
        context.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each (rule, impact, where)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("serious", "critical"):
            targets = ", ".join(str(node.get("target")) for node in violation.get("nodes", [])[:3])
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return found
