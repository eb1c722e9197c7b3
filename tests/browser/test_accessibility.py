"""axe-core on the console's main pages, as an administrator sees them (the most controls), and on the sign-in
pages: no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devservers.slapd import SlapdInstance
from directory_sync.models import SyncRun
from icewarp_admin.mailserver.services.domains import create_domain
from tests.browser.conftest import serious_violations
from tests.directory_helpers import configure, new_directory, sync

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_main_pages_have_no_serious_accessibility_violations(
    signed_in: Callable[[str], tuple[Any, Any]], live_server: Any, slapd: SlapdInstance, chromium: Any
) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("ann", mail=["ann@example.com", "ann.smith@example.com"], cn="Ann Smith")
    configure(domain, directory)
    run = sync(domain)
    assert run.status == SyncRun.Status.SUCCEEDED
    page, shots = signed_in("administrator")
    pages = {
        "domains": "/domains/",
        "domain": "/domains/example.com/",
        "accounts": "/domains/example.com/accounts/",
        "account": "/domains/example.com/accounts/ann/",
        "groups": "/domains/example.com/groups/",
        "directory-service": "/domains/example.com/directory/",
        "sync-history": "/sync/",
        "run": f"/sync/runs/{run.pk}/",
        "system-settings": "/system/settings/",
        "templates": "/templates/",
    }
    problems: dict[str, list[str]] = {}
    for name, path in pages.items():
        page.goto(f"{live_server.url}{path}")
        shots(name)
        found = serious_violations(page)
        if found:
            problems[path] = found
    anonymous = chromium.new_context()
    try:
        visitor = anonymous.new_page()
        for path in ("/login/", "/me/"):
            visitor.goto(f"{live_server.url}{path}")
            found = serious_violations(visitor)
            if found:
                problems[path] = found
    finally:
        anonymous.close()
    assert not problems, "\n".join(f"{path}: {line}" for path, lines in problems.items() for line in lines)
