"""Alerts: e-mail to a real SMTP server (aiosmtpd) and webhooks to a real HTTP server, both on loopback; runs
against the suite's slapd and a dead directory; once per change of state, never per run."""

from __future__ import annotations

import email
import email.message
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.test import Client
from django.utils import timezone

from devservers.slapd import SlapdInstance
from directory_sync.dispatch import DELIVER_ALERT
from directory_sync.models import (
    DELIVERY_ATTEMPTS,
    Alert,
    AlertDelivery,
    AlertKind,
    AlertSettings,
    DomainAlertSettings,
    JobStatus,
    SyncRun,
)
from directory_sync.secrets import decrypt_secret
from directory_sync.services.alerts import save_alert_settings
from directory_sync.services.runs import request_run, schedule_tick
from directory_sync.services.sync import execute_run
from directory_sync.tasks import deliver_alert
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.services.accounts import create_account
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync
from tests.servers import Worker

pytestmark = pytest.mark.django_db

DEAD_DIRECTORY = "ldap://127.0.0.1:1"
DEAD_WEBHOOK = "http://127.0.0.1:1/hook"
SECRET = "s3cret-for-signing"
OPS = "ops@example.net"
HTMX = {"HX-Request": "true"}


# Real receivers ---------------------------------------------------------------------------------------------


class Inbox:
    """aiosmtpd's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(message["Subject"]) for _, message in self.messages]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp(settings: Any) -> Iterator[Inbox]:
    """A real SMTP server on loopback, and Django's mail settings pointing at it."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    yield inbox
    controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Hook:
    url: str
    requests: list[Received] = field(default_factory=list)

    def events(self) -> list[tuple[str, str]]:
        return [(request.json()["kind"], request.json()["event"]) for request in self.requests]


@pytest.fixture
def start_hook() -> Iterator[Callable[[], Hook]]:
    """Start HTTP receivers (http.server in a thread) that record each POST and answer 204."""
    servers: list[ThreadingHTTPServer] = []

    def start() -> Hook:
        hook = Hook(url="")

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                hook.requests.append(Received(self.path, headers, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        hook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
        return hook

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def hook(start_hook: Callable[[], Hook]) -> Hook:
    return start_hook()


# What a worker does -----------------------------------------------------------------------------------------


@pytest.fixture
def worker_queue(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """The tasks sent to the broker (after commit, through dispatch.py), instead of a broker."""
    from icewarp_admin.celery import app

    sent: list[tuple[str, list[Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args, **options: sent.append((name, list(args))))
    return sent


@pytest.fixture
def background(
    worker_queue: list[tuple[str, list[Any]]], django_capture_on_commit_callbacks: Any
) -> Callable[[Callable[[], Any]], Any]:
    """Do something, commit, and run the alert deliveries it queued as a worker would (Celery's own task,
    retries included, in this process)."""

    def run(action: Callable[[], Any]) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            result = action()
        while worker_queue:
            name, args = worker_queue.pop(0)
            if name == DELIVER_ALERT:
                deliver_alert.apply(args=tuple(args))
        return result

    return run


@pytest.fixture
def directory(slapd: SlapdInstance) -> Directory:
    return new_directory(slapd)


def alert_on(hook: Hook, **values: Any) -> None:
    save_alert_settings(values={"recipients": OPS, "webhook_url": hook.url, **values}, new_secret=SECRET)


def body_text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# Once per change of state -----------------------------------------------------------------------------------


def test_a_failing_domain_alerts_once_by_mail_and_webhook_and_recovers_once(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    directory.add_person("ann")
    configure(domain, directory, host=DEAD_DIRECTORY)
    alert_on(hook)

    failed = background(lambda: sync(domain))
    assert failed.status == JobStatus.FAILED
    assert len(smtp.messages) == 1 and len(hook.requests) == 1
    recipients, message = smtp.messages[0]
    assert recipients == [OPS]
    assert message["Subject"] == "[Directory sync] example.com: synchronization failed"
    assert f"/sync/runs/{failed.pk}/" in body_text(message) and "127.0.0.1:1" in body_text(message)
    payload = hook.requests[0].json()
    assert (payload["kind"], payload["event"], payload["domain"]) == ("run_failed", "raised", "example.com")
    assert payload["run"]["id"] == failed.pk and payload["run"]["status"] == "failed"
    assert hook.requests[0].headers["content-type"] == "application/json"

    assert background(lambda: sync(domain)).status == JobStatus.FAILED
    assert len(smtp.messages) == 1 and len(hook.requests) == 1  # still failing: nothing new

    configure(domain, directory)
    assert background(lambda: sync(domain)).status == JobStatus.SUCCEEDED
    assert smtp.subjects()[1:] == ["[Directory sync] example.com: synchronizes again"]
    assert hook.events() == [("run_failed", "raised"), ("run_failed", "recovered")]

    assert background(lambda: sync(domain)).status == JobStatus.SUCCEEDED
    assert len(smtp.messages) == 2 and len(hook.requests) == 2
    assert Alert.objects.count() == 2


def test_the_webhook_signature_verifies_with_the_shared_secret(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    configure(domain, directory, host=DEAD_DIRECTORY)
    alert_on(hook)
    background(lambda: sync(domain))
    (request,) = hook.requests
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-console-signature-256"] == f"sha256={expected}"
    forged = hmac.new(b"another secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-console-signature-256"] != f"sha256={forged}"


def test_completed_with_errors_counts_as_failing(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    configure(domain, directory, base_dn="ou=nowhere,dc=example,dc=com")
    alert_on(hook)
    assert background(lambda: sync(domain)).status == JobStatus.PARTIAL
    assert smtp.subjects() == ["[Directory sync] example.com: synchronization completed with errors"]
    configure(domain, directory, host=DEAD_DIRECTORY)
    assert background(lambda: sync(domain)).status == JobStatus.FAILED
    assert len(smtp.messages) == 1  # completed with errors → failed is the same state


def test_withheld_removals_alert_once_and_once_more_when_they_are_gone(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    people = [directory.add_person(f"w{number}") for number in range(3)]
    configure(domain, directory)
    alert_on(hook)
    background(lambda: sync(domain))
    assert smtp.messages == []
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(people[0], people[1])

    assert background(lambda: sync(domain)).removals_withheld == 2
    assert smtp.subjects() == ["[Directory sync] example.com: 2 removals withheld"]
    assert hook.events() == [("removals_withheld", "raised")]
    assert hook.requests[0].json()["details"]["removals_withheld"] == 2
    assert background(lambda: sync(domain)).removals_withheld == 2  # seen again: nothing new
    assert len(smtp.messages) == len(hook.requests) == 1

    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=0)
    assert background(lambda: sync(domain)).removals_withheld == 0
    assert hook.events() == [("removals_withheld", "raised"), ("removals_withheld", "recovered")]
    assert smtp.subjects()[1] == "[Directory sync] example.com: no removals withheld any more"


def test_not_synchronized_for_n_intervals_fires_once_from_the_tick(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    directory.add_person("tick")
    configure(domain, directory)
    alert_on(hook, not_synchronized_intervals=2)  # the interval is 5 minutes: 10 minutes without a success
    old = SyncRun.objects.create(domain=domain, trigger=SyncRun.Trigger.SCHEDULE, status=JobStatus.SUCCEEDED)
    long_ago = timezone.now() - timedelta(minutes=9)
    SyncRun.objects.filter(pk=old.pk).update(created_at=long_ago, started_at=long_ago, finished_at=long_ago)

    background(schedule_tick)  # queues the run that is due
    assert smtp.messages == []  # 9 minutes is less than 2 intervals
    SyncRun.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(minutes=12))
    background(schedule_tick)
    assert smtp.subjects() == ["[Directory sync] example.com: not synchronized for 12 minutes"]
    assert hook.events() == [("not_synchronized", "raised")]
    assert "every 5 minutes" in body_text(smtp.messages[0][1])
    background(schedule_tick)
    assert len(smtp.messages) == len(hook.requests) == 1

    # The queued run synchronizes; the next tick says so, once.
    queued = SyncRun.objects.get(domain=domain, status=JobStatus.QUEUED)
    assert background(lambda: execute_run(run_id=queued.pk)).status == JobStatus.SUCCEEDED
    background(schedule_tick)
    background(schedule_tick)
    assert hook.events() == [("not_synchronized", "raised"), ("not_synchronized", "recovered")]
    assert smtp.subjects()[1] == "[Directory sync] example.com: synchronized again"


def test_a_conflict_that_stays_open_for_n_runs_alerts_once(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    create_account(domain=domain, username="noah.local", aliases=["noah.local", "noah"])
    dn = directory.add_person("noah")
    configure(domain, directory)
    alert_on(hook, conflict_open_runs=2)

    assert background(lambda: sync(domain)).conflicts == 1
    assert hook.requests == []  # open for one run only
    background(lambda: sync(domain))  # reads only changes: the conflict is not seen, and not resolved either
    assert hook.events() == [("conflict_open", "raised")]
    assert smtp.subjects() == ["[Directory sync] example.com: 1 conflict open for 2 runs or more"]
    assert "- noah" in body_text(smtp.messages[0][1])
    assert [item["label"] for item in hook.requests[0].json()["details"]["conflicts"]] == ["noah"]
    background(lambda: sync(domain))
    assert len(hook.requests) == 1

    directory.modify(dn, mail="noah.directory@example.com")  # no longer wants the address held here
    background(lambda: sync(domain))
    assert hook.events() == [("conflict_open", "raised"), ("conflict_open", "recovered")]


def test_dry_runs_and_domains_with_alerts_off_send_nothing(
    domain: Domain,
    directory: Directory,
    admin: Client,
    smtp: Inbox,
    hook: Hook,
    background: Callable[..., Any],
) -> None:
    configure(domain, directory, host=DEAD_DIRECTORY)
    alert_on(hook)
    assert background(lambda: sync(domain, dry_run=True)).status == JobStatus.FAILED
    assert Alert.objects.count() == 0
    response = admin.post(
        "/domains/example.com/directory/alerts/", {"extra_recipients": "", "webhook_url": ""}
    )
    assert response.status_code == 302  # "Send alerts for this domain" unticked
    assert DomainAlertSettings.objects.get(domain=domain).enabled is False
    background(lambda: sync(domain))
    assert Alert.objects.count() == 0 and smtp.messages == [] and hook.requests == []


def test_a_domain_adds_recipients_and_a_webhook_of_its_own(
    domain: Domain,
    directory: Directory,
    admin: Client,
    smtp: Inbox,
    start_hook: Callable[[], Hook],
    background: Callable[..., Any],
) -> None:
    server_hook, domain_hook = start_hook(), start_hook()
    configure(domain, directory, host=DEAD_DIRECTORY)
    alert_on(server_hook)
    response = admin.post(
        "/domains/example.com/directory/alerts/",
        {
            "enabled": "on",
            "extra_recipients": "it@example.com, ops@example.net",
            "webhook_url": domain_hook.url,
            "webhook_secret": "domain secret",
        },
    )
    assert response.status_code == 302
    background(lambda: sync(domain))
    [(recipients, _)] = smtp.messages
    assert recipients == [OPS, "it@example.com"]  # one message, each address once
    assert len(server_hook.requests) == len(domain_hook.requests) == 1
    (request,) = domain_hook.requests
    expected = hmac.new(b"domain secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-console-signature-256"] == f"sha256={expected}"
    page = text(admin.get("/domains/example.com/directory/alerts/").content.decode())
    assert "A run fails or completes with errors alerting" in page
    assert "domain secret" not in page


# Deliveries -------------------------------------------------------------------------------------------------


def test_a_failed_delivery_is_recorded_retried_and_never_fails_the_run(
    domain: Domain, directory: Directory, admin: Client, smtp: Inbox, background: Callable[..., Any]
) -> None:
    configure(domain, directory, host=DEAD_DIRECTORY)
    save_alert_settings(values={"recipients": OPS, "webhook_url": DEAD_WEBHOOK})
    run = background(lambda: sync(domain))
    assert run.status == JobStatus.FAILED and run.errors  # the run's own failure, nothing of the webhook's
    webhook = AlertDelivery.objects.get(channel=AlertDelivery.Channel.WEBHOOK)
    assert webhook.status == AlertDelivery.Status.FAILED
    assert webhook.attempts == DELIVERY_ATTEMPTS  # Celery retried it (at once here: apply() runs eagerly)
    assert "could not be reached" in webhook.error and "refused" in webhook.error.lower()
    assert AlertDelivery.objects.get(channel=AlertDelivery.Channel.EMAIL).status == "delivered"
    assert len(smtp.messages) == 1
    page = text(admin.get("/system/alerts/").content.decode())
    assert f"Webhook to {DEAD_WEBHOOK} : Failed The webhook could not be reached" in page
    assert f"{DELIVERY_ATTEMPTS} attempts" in page


def test_an_evaluation_that_breaks_does_not_fail_the_run(
    domain: Domain, directory: Directory, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    directory.add_person("sturdy")
    configure(domain, directory)

    def broken(run: SyncRun) -> None:
        raise RuntimeError("alerts are broken")

    monkeypatch.setattr("directory_sync.services.alerts._evaluate_run", broken)
    assert sync(domain).status == JobStatus.SUCCEEDED
    assert "Evaluating the alerts of run" in caplog.text


# The page, the test button, who may -------------------------------------------------------------------------


def settings_form(hook_url: str, **values: str) -> dict[str, str]:
    return {
        "recipients": OPS,
        "webhook_url": hook_url,
        "webhook_secret": "",
        "on_run_failed": "on",
        "on_removals_withheld": "on",
        "on_not_synchronized": "on",
        "not_synchronized_intervals": "3",
        "on_conflict_open": "on",
        "conflict_open_runs": "3",
        **values,
    }


def test_the_test_button_delivers_through_both_channels(admin: Client, smtp: Inbox, hook: Hook) -> None:
    assert admin.post("/system/alerts/", settings_form(hook.url, webhook_secret=SECRET)).status_code == 302
    response = admin.post("/system/alerts/test/")
    assert response.status_code == 200
    page = text(response.content.decode())
    assert f"E-mail to {OPS} : Delivered" in page and f"Webhook to {hook.url} : Delivered" in page
    assert smtp.subjects() == ["[Directory sync] server: test alert"]
    assert hook.events() == [("test", "test")]
    partial = admin.post("/system/alerts/test/", headers=HTMX)
    assert partial.content.decode().count("Delivered") == 2 and "<html" not in partial.content.decode()
    assert len(hook.requests) == 2


def test_the_test_button_reports_a_dead_webhooks_error(admin: Client, smtp: Inbox) -> None:
    admin.post("/system/alerts/", settings_form(DEAD_WEBHOOK))
    page = text(admin.post("/system/alerts/test/").content.decode())
    assert f"E-mail to {OPS} : Delivered" in page
    assert f"Webhook to {DEAD_WEBHOOK} : Failed The webhook could not be reached:" in page
    assert "Connection refused" in page
    assert len(smtp.messages) == 1


def test_the_test_button_without_a_channel_says_what_to_do(admin: Client) -> None:
    page = text(admin.post("/system/alerts/test/", follow=True).content.decode())
    assert "Nothing to send to: add e-mail recipients or a webhook URL and save them first." in page
    assert Alert.objects.count() == 0


def test_bad_input_is_refused_with_what_to_fix(admin: Client) -> None:
    response = admin.post(
        "/system/alerts/",
        settings_form(
            "ftp://hooks.example.com/x", recipients="ops@example.net, bob@, ops", conflict_open_runs="0"
        ),
    )
    assert response.status_code == 200
    page = text(response.content.decode())
    assert (
        "Not an e-mail address: bob@, ops. Write addresses like ops@example.com, separated by commas." in page
    )
    assert "A webhook URL starts with http:// or https://, e.g. https://hooks.example.com/alerts." in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert "bob@, ops" in response.content.decode()  # typed values kept
    assert not AlertSettings.objects.exists()


def test_the_webhook_secret_is_stored_encrypted_and_never_shown(admin: Client, hook: Hook) -> None:
    admin.post("/system/alerts/", settings_form(hook.url, webhook_secret=SECRET))
    stored = AlertSettings.objects.get()
    assert (
        SECRET not in stored.webhook_secret_encrypted
        and decrypt_secret(stored.webhook_secret_encrypted) == SECRET
    )
    assert SECRET not in repr(stored)
    page = admin.get("/system/alerts/").content.decode()
    assert SECRET not in page and "stored (encrypted)" in page
    admin.post("/system/alerts/", settings_form(hook.url, recipients="a@example.com, b@example.com"))
    stored.refresh_from_db()
    assert stored.get_webhook_secret() == SECRET  # left empty: kept
    assert stored.recipients == "a@example.com, b@example.com"
    admin.post("/system/alerts/", settings_form(hook.url, clear_webhook_secret="on"))
    stored.refresh_from_db()
    assert stored.webhook_secret_encrypted == ""


@pytest.mark.parametrize("role", ["helpdesk", "operator", None])
def test_only_administrators_see_or_change_alerts(
    role: str | None, client_for: Callable[[str | None], Client], domain: Domain, hook: Hook
) -> None:
    client = client_for(role)
    assert client.get("/system/alerts/").status_code == 403
    assert client.post("/system/alerts/", settings_form(hook.url)).status_code == 403
    assert client.post("/system/alerts/test/").status_code == 403
    assert client.get("/domains/example.com/directory/alerts/").status_code == 403
    assert client.post("/domains/example.com/directory/alerts/", {"enabled": ""}).status_code == 403
    assert client.post("/domains/example.com/directory/alerts/test/").status_code == 403
    assert not AlertSettings.objects.exists() and not DomainAlertSettings.objects.exists()
    assert hook.requests == []
    assert "/system/alerts/" not in client.get("/", follow=True).content.decode()


def test_administrators_find_the_alerts_in_the_sidebar_and_on_the_directory_tab(
    admin: Client, domain: Domain
) -> None:
    assert 'href="/system/alerts/"' in admin.get("/", follow=True).content.decode()
    tab = admin.get("/domains/example.com/directory/").content.decode()
    assert 'href="/domains/example.com/directory/alerts/"' in tab
    page = text(admin.get("/domains/example.com/directory/alerts/").content.decode())
    for kind in AlertKind:
        if kind != AlertKind.TEST:
            assert f"{kind.label} ok" in page


# One end to end, with the real worker -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_delivers_the_alert_of_a_failed_run(
    celery_worker: Worker, slapd: SlapdInstance, hook: Hook
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd), host=DEAD_DIRECTORY)
    save_alert_settings(values={"webhook_url": hook.url}, new_secret=SECRET)
    run, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="test")
    deadline = time.monotonic() + 60
    while not hook.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hook.events() == [("run_failed", "raised")], celery_worker.output()[-3000:]
    assert hook.requests[0].json()["run"]["id"] == run.pk
    delivery = AlertDelivery.objects.get()
    deadline = time.monotonic() + 10
    while delivery.status != AlertDelivery.Status.DELIVERED and time.monotonic() < deadline:
        time.sleep(0.1)
        delivery.refresh_from_db()
    assert delivery.status == AlertDelivery.Status.DELIVERED and delivery.attempts == 1


def test_alert_retries_come_due_before_the_broker_redelivers_them(settings: Any) -> None:
    from directory_sync.tasks import deliver_alert

    # A retry is an unacknowledged message held by the worker: due after the visibility timeout, the broker
    # would hand it to a second worker too, and the alert would go out twice.
    assert getattr(deliver_alert, "retry_backoff_max") < settings.BROKER_VISIBILITY_TIMEOUT_SECONDS  # noqa: B009


def test_a_run_whose_worker_died_alerts_once_when_the_reaper_fails_it(
    domain: Domain, directory: Directory, smtp: Inbox, hook: Hook, background: Callable[..., Any]
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from directory_sync.models import SyncRun
    from directory_sync.services.jobs import reap_abandoned

    configure(domain, directory)
    alert_on(hook)
    silent = timezone.now() - timedelta(hours=1)
    run = SyncRun.objects.create(
        domain=domain, trigger="schedule", status="running", started_at=silent, heartbeat_at=silent
    )
    assert background(reap_abandoned) == 1
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED
    assert hook.events() == [("run_failed", "raised")] and len(smtp.messages) == 1
    assert background(reap_abandoned) == 0 and len(hook.requests) == 1
