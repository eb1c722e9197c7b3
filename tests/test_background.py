"""Runs in the background with a real Celery worker, beat and Redis: Synchronize Now, one run per domain,
progress, a killed worker, the schedule, withheld removals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from devservers.ldif import people_ldif
from devservers.redis import RedisInstance, start_redis
from devservers.slapd import SlapdInstance, start_slapd
from directory_sync.models import SyncRun
from directory_sync.services.runs import reap_abandoned, request_run, schedule_tick
from directory_sync.services.sync import execute_run
from icewarp_admin.mailserver.models import Account
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import Directory, configure, new_directory, sync
from tests.servers import ROOT, Worker, database_url, switch_broker

BACKGROUND = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def wait_for(condition: Callable[[], Any], *, timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def finished(run_id: int) -> SyncRun | None:
    run = SyncRun.objects.get(pk=run_id)
    return run if run.is_finished else None


@pytest.fixture
def big_directory(tmp_path: Path) -> Iterator[SlapdInstance]:
    server = start_slapd(tmp_path / "big", ldifs=[people_ldif(10_000)])
    yield server
    server.stop()


@BACKGROUND
def test_synchronize_now_twice_gives_one_run(
    celery_worker: Worker, slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    for number in range(20):
        directory.add_person(f"twice{number}")
    configure(domain, directory)
    helpdesk = client_for("helpdesk")
    slapd.pause()  # the first run waits on the directory while the second click arrives
    try:
        first = helpdesk.post("/domains/example.com/directory/sync/")
        second = helpdesk.post("/domains/example.com/directory/sync/")
    finally:
        slapd.resume()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    run_id = int(first["Location"].rstrip("/").rsplit("/", 1)[1])
    run = wait_for(lambda: finished(run_id))
    assert run.status == "succeeded", run.errors
    assert SyncRun.objects.filter(domain=domain).count() == 1
    assert Account.objects.filter(domain=domain).count() == 20


@BACKGROUND
def test_progress_is_visible_during_a_10000_entry_run(
    celery_worker: Worker, big_directory: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, Directory(slapd=big_directory, base_dn="dc=example,dc=com"), page_size=200)
    helpdesk = client_for("helpdesk")
    response = helpdesk.post("/domains/example.com/directory/sync/", headers={"HX-Request": "true"})
    # A new run is asked about quickly (small runs end in a fraction of a second), then less often.
    assert response.status_code == 200 and 'hx-trigger="every 250ms"' in response.content.decode()
    run_id = SyncRun.objects.get(domain=domain).pk
    seen: set[int] = set()
    pages = []
    while True:
        page = helpdesk.get(f"/domains/example.com/directory/runs/{run_id}/", headers={"HX-Request": "true"})
        run = SyncRun.objects.get(pk=run_id)
        if run.status == "running":
            seen.add(run.entries_read)
            pages.append(page.content.decode())
        if page.status_code == 286:
            break
        assert page.status_code == 200
        time.sleep(0.1)
    run = SyncRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.errors
    assert run.counts["accounts"]["created"] == 10_000
    assert any(0 < value < 10_000 for value in seen), seen
    assert any("entries read" in page for page in pages)
    assert Account.objects.filter(domain=domain).count() == 10_000


@BACKGROUND
def test_a_killed_worker_leaves_a_failed_run_and_the_next_one_works(
    tmp_path: Path, slapd: SlapdInstance, settings: Any
) -> None:
    from django.db import connection

    redis = start_redis(tmp_path / "redis")
    previous = switch_broker(redis.url)
    worker = _start_worker(tmp_path / "w1", redis, connection.settings_dict, heartbeat="0.5")
    try:
        domain = create_domain(name="example.com")
        directory = new_directory(slapd)
        directory.add_person("survivor")
        configure(domain, directory, timeout_seconds=30)
        slapd.pause()
        try:
            run, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="test")
            wait_for(lambda: SyncRun.objects.get(pk=run.pk).status == "running")
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=10)
        finally:
            slapd.resume()
        assert SyncRun.objects.get(pk=run.pk).status == "running"
        settings.SYNC_ABANDONED_AFTER_SECONDS = 2
        wait_for(
            lambda: reap_abandoned() or SyncRun.objects.get(pk=run.pk).status == "failed",
            timeout=30,
            every=0.5,
        )
        failed = SyncRun.objects.get(pk=run.pk)
        assert failed.status == "failed" and "Abandoned" in failed.errors[0]

        worker = _start_worker(tmp_path / "w2", redis, connection.settings_dict)
        next_run, joined = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="test")
        assert not joined
        done = wait_for(lambda: finished(next_run.pk))
        assert done.status == "succeeded", done.errors
        assert Account.objects.filter(username="survivor").exists()
    finally:
        switch_broker(previous)
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)
            worker.process.wait(timeout=15)
        redis.stop()


def _start_worker(
    folder: Path, redis: RedisInstance, database: dict[str, Any], heartbeat: str = "5"
) -> Worker:
    from django.conf import settings

    folder.mkdir(parents=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icewarp_admin.settings",
        "DATABASE_URL": database_url(database),
        "CELERY_BROKER_URL": redis.url,
        "SECRET_KEY": settings.SECRET_KEY,
        "SECRETS_ENCRYPTION_KEYS": ",".join(settings.SECRETS_ENCRYPTION_KEYS),
        "VAR_DIR": str(folder),
        "SYNC_HEARTBEAT_SECONDS": heartbeat,
    }
    log = folder / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "icewarp_admin", "worker", "--pool=prefork",
             "--concurrency=1", "--loglevel=INFO", "-n", f"kill-{folder.name}@%h", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    worker = Worker(process=process, log=log)
    wait_for(lambda: "ready." in worker.output(), timeout=60)
    return worker


@BACKGROUND
def test_beat_fires_the_schedule_and_honours_a_changed_interval(
    celery_worker: Worker, redis_server: RedisInstance, slapd: SlapdInstance, tmp_path: Path
) -> None:
    from django.conf import settings

    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("scheduled")
    configure(domain, directory)  # active
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icewarp_admin.settings",
        "CELERY_BROKER_URL": redis_server.url,
        "SECRET_KEY": settings.SECRET_KEY,
        "VAR_DIR": str(tmp_path),
        "SYNC_TICK_SECONDS": "1",
    }
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "icewarp_admin", "beat", "--loglevel=INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=env, stdout=(tmp_path / "beat.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        scheduled = SyncRun.objects.filter(domain=domain, trigger=SyncRun.Trigger.SCHEDULE)
        first = wait_for(lambda: scheduled.filter(status="succeeded").first(), timeout=60)
        assert Account.objects.filter(username="scheduled").exists()

        # Ten minutes later by the clock of the schedule: a 60-minute interval is not due yet...
        scheduled.update(created_at=timezone.now() - timedelta(minutes=10))
        set_system_variable(name="C_Accounts_Global_ActiveDirectorySyncInterval", value=60)
        time.sleep(3)
        assert scheduled.count() == 1
        # ...a 5-minute one is, at the next tick, with no restart.
        set_system_variable(name="C_Accounts_Global_ActiveDirectorySyncInterval", value=5)
        second = wait_for(lambda: scheduled.exclude(pk=first.pk).first(), timeout=30)
        assert wait_for(lambda: finished(second.pk)).status == "succeeded"

        # Switching the domain off (General) stops its schedule.
        configure(domain, directory, active=False)
        scheduled.update(created_at=timezone.now() - timedelta(minutes=10))
        time.sleep(3)
        assert scheduled.count() == 2
    finally:
        beat.terminate()
        beat.wait(timeout=15)


@pytest.mark.django_db
def test_a_scheduled_tick_during_a_run_is_recorded_as_skipped(slapd: SlapdInstance) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    configure(domain, directory)
    busy, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="someone")
    started = schedule_tick()
    assert len(started) == 1 and started[0].status == "skipped"
    assert f"#{busy.pk}" in started[0].warnings[0]
    assert SyncRun.objects.filter(domain=domain, status__in=["queued", "running"]).count() == 1


@pytest.mark.django_db
def test_a_task_delivered_twice_runs_once(slapd: SlapdInstance) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("once")
    configure(domain, directory)
    run, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL)
    assert execute_run(run_id=run.pk).status == "succeeded"
    again = execute_run(run_id=run.pk)
    assert again.status == "succeeded" and again.finished_at == SyncRun.objects.get(pk=run.pk).finished_at
    assert Account.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["administrator", "helpdesk", "operator"])
def test_withheld_removals_approve_and_dismiss_per_role(
    slapd: SlapdInstance, client_for: Callable[[str | None], Client], role: str
) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    dns = [directory.add_person(f"w{number}") for number in range(3)]
    configure(domain, directory, removal_grace_days=0)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(*dns[:2])
    withheld = sync(domain)
    assert withheld.removals_withheld == 2
    client = client_for(role)
    page = client.get(f"/sync/runs/{withheld.pk}/").content.decode()
    assert "Removals withheld" in page
    assert ("Approve the removals" in page) is (role == "administrator")

    response = client.post(f"/sync/runs/{withheld.pk}/withheld/", {"decision": "approve"})
    if role != "administrator":
        assert response.status_code == 403
        assert SyncRun.objects.get(pk=withheld.pk).withheld_resolution == ""
        return
    approval = SyncRun.objects.get(approves=withheld)
    assert response["Location"] == f"/sync/runs/{approval.pk}/"
    done = execute_run(run_id=approval.pk)  # the worker would; here in-process
    assert (
        done.trigger == "approval" and done.counts["accounts"]["removed"] == 2 and done.removals_withheld == 0
    )
    assert sorted(Account.objects.values_list("username", flat=True)) == ["w2"]
    assert SyncRun.objects.get(pk=withheld.pk).withheld_resolution == "approved"
    again = client.post(f"/sync/runs/{withheld.pk}/withheld/", {"decision": "approve"})
    assert again.status_code == 302 and SyncRun.objects.filter(approves=withheld).count() == 1


@pytest.mark.django_db
def test_an_approval_checks_the_directory_again(slapd: SlapdInstance, admin: Client) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    dns = [directory.add_person(f"back{number}", employeeType="staff") for number in range(3)]
    configure(
        domain,
        directory,
        account_filter="(&(objectClass=inetOrgPerson)(employeeType=staff))",
        removal_grace_days=0,
    )
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    for dn in dns[:2]:
        directory.modify(dn, employeeType="former")
    withheld = sync(domain)
    assert withheld.removals_withheld == 2
    directory.modify(dns[0], employeeType="staff")  # back in the filter before anyone approved
    admin.post(f"/sync/runs/{withheld.pk}/withheld/", {"decision": "approve"})
    done = execute_run(run_id=SyncRun.objects.get(approves=withheld).pk)
    assert done.counts["accounts"]["removed"] == 1
    assert sorted(Account.objects.values_list("username", flat=True)) == ["back0", "back2"]


@pytest.mark.django_db
def test_dismissing_applies_nothing(slapd: SlapdInstance, admin: Client) -> None:
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    dns = [directory.add_person(f"d{number}") for number in range(3)]
    configure(domain, directory)
    sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(*dns[:2])
    withheld = sync(domain)
    admin.post(f"/sync/runs/{withheld.pk}/withheld/", {"decision": "dismiss"})
    assert SyncRun.objects.get(pk=withheld.pk).withheld_resolution == "dismissed"
    assert not SyncRun.objects.filter(approves=withheld).exists()
    assert Account.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "allowed"), [("administrator", True), ("helpdesk", True), ("operator", False)]
)
def test_synchronize_now_per_role(
    slapd: SlapdInstance, client_for: Callable[[str | None], Client], role: str, allowed: bool
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd))
    response = client_for(role).post("/domains/example.com/directory/sync/", {"dry_run": "1"})
    assert response.status_code == (302 if allowed else 403)
    assert SyncRun.objects.filter(domain=domain, dry_run=True).exists() is allowed
