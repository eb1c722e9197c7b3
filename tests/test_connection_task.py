"""Test connection through the tab: a real Celery worker runs it, the tab polls until it is done; the bind
password never travels in the task message, never reaches a log line or a page."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from celery.signals import before_task_publish
from django.test import Client

from devservers.slapd import SlapdInstance
from directory_sync.models import ConnectionCheck
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import configure, new_directory
from tests.servers import Worker

PASSWORD_MARK = "secret"  # the test slapd's admin password: the string that must appear nowhere


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_test_connection_is_queued_polled_and_leaks_no_password(
    celery_worker: Worker, slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("checked")
    configure(domain, directory)
    published: list[str] = []

    def capture(body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        published.append(repr(body) + repr(headers))

    before_task_publish.connect(capture, weak=False)
    try:
        helpdesk = client_for("helpdesk")
        response = helpdesk.post("/domains/example.com/directory/test/", headers={"HX-Request": "true"})
    finally:
        before_task_publish.disconnect(capture)
    page = response.content.decode()
    assert response.status_code == 200 and "every 1s" in page and "Queued" in page
    check = ConnectionCheck.objects.get(domain=domain)

    deadline = time.monotonic() + 60
    while True:
        poll = helpdesk.get(
            f"/domains/example.com/directory/checks/{check.pk}/", headers={"HX-Request": "true"}
        )
        if poll.status_code == 286:
            break
        assert poll.status_code == 200 and time.monotonic() < deadline
        time.sleep(0.2)
    done = poll.content.decode()
    assert "Succeeded" in done and "Bind" in done and "entryUUID" in done
    check.refresh_from_db()
    assert check.status == "succeeded" and check.result is not None and check.result["ok"]

    assert published and all(str(check.pk) in message for message in published)
    for text in (*published, done, str(check.result), celery_worker.output()):
        assert PASSWORD_MARK not in text.replace("secrets", "")  # "secrets" appears in module names
    assert "directory_sync.test_connection" in celery_worker.output()


@pytest.mark.django_db
def test_operators_cannot_poll_a_check(
    slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd))
    check = ConnectionCheck.objects.create(domain=domain, requested_by="x")
    assert client_for("operator").get(f"/domains/example.com/directory/checks/{check.pk}/").status_code == 403
