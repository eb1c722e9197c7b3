"""Many domains on few workers (issue 14): the schedule's back-off, the tick's own queue, the bind timeout
against directories that accept connections and never answer, a tick that survives a killed worker, when a
dead run is reaped, and twenty domains shared by two workers.

The multi-worker tests run real Celery workers (processes) on a private Redis and the test database, with the
heartbeat, abandon and visibility intervals shortened through the environment as an operator would set them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.db.models import F
from django.test import Client
from django.utils import timezone

from devservers.ports import free_port
from devservers.redis import RedisInstance, start_redis
from devservers.slapd import SlapdInstance
from directory_sync.backoff import ScheduleState, schedule_state
from directory_sync.dispatch import REAP_ABANDONED, SCHEDULE_TICK
from directory_sync.ldap import DirectoryError
from directory_sync.ldap.binds import check_user_password
from directory_sync.ldap.bulk import open_bulk_session
from directory_sync.ldap.connection import open_session, options_from_settings
from directory_sync.models import ACTIVE_STATUSES, JobStatus, SyncRun
from directory_sync.services import runs
from directory_sync.services.runs import request_run, schedule_tick
from directory_sync.services.sync import execute_run
from icewarp_admin.celery import app
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import Directory, configure, new_directory, sync
from tests.servers import ROOT, Worker, manage_py_env, switch_broker

BACKGROUND = pytest.mark.django_db(transaction=True, serialized_rollback=True)
POSTGRES_ONLY = pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="several worker processes writing at once: SQLite takes one writer at a time (PostgreSQL only)",
)
INTERVAL = timedelta(minutes=5)  # C_Accounts_Global_ActiveDirectorySyncInterval's default
# What the multi-worker tests shorten, as an operator would, so that they wait seconds and not minutes.
FAST = {
    "SYNC_HEARTBEAT_SECONDS": "0.5",
    "SYNC_ABANDONED_AFTER_SECONDS": "3",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "5",
}


# ----- servers that accept connections and never answer -----


class BlackHole:
    """A directory that accepts connections and never answers: a TCP server on loopback that reads and
    writes nothing (a hung slapd, a proxy in front of a dead server)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, name=f"black-hole-{self.port}", daemon=True)
        self.thread.start()

    def url(self, scheme: str = "ldap") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        self.held.append(conn)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.server.close()
        for conn in self.held:
            conn.close()


class Switchboard(BlackHole):
    """A TCP proxy in front of the real slapd that, while holding, is a black hole for new connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.holding = threading.Event()
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        if self.holding.is_set():
            self.held.append(conn)
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        self.held += [conn, upstream]
        for source, target in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


# ----- workers, the broker, time -----


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisInstance]:
    """A Redis of this test's own: nothing another test left queued or unacknowledged reaches its workers."""
    redis = start_redis(tmp_path / "redis")
    previous = switch_broker(redis.url)
    try:
        yield redis
    finally:
        switch_broker(previous)
        redis.stop()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """The workers a test started; stopped (killed if need be) after it."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGTERM)
            try:
                worker.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                worker.process.wait(timeout=10)


def launch_worker(
    started: list[Worker],
    folder: Path,
    redis: RedisInstance,
    *,
    queues: str,
    concurrency: int,
    env: dict[str, str],
    beat: bool = False,
) -> Worker:
    """A real Celery worker (prefork) in its own process group, as the compose file runs them."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "celery", "-A", "icewarp_admin", "worker", "--pool=prefork",
        f"--concurrency={concurrency}", "--loglevel=INFO", "-n", f"{folder.name}-{os.getpid()}@%h",
        "--without-gossip", "--without-mingle", f"--queues={queues}",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--schedule", str(folder / "beat-schedule")]
    log = folder / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=manage_py_env(CELERY_BROKER_URL=redis.url, VAR_DIR=str(folder), LOG_LEVEL="INFO", **env),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = Worker(process=process, log=log)
    started.append(worker)
    return worker


def ready(*started: Worker) -> None:
    def up(worker: Worker) -> bool:
        return "ready." in worker.output() or worker.process.poll() is not None

    for worker in started:
        wait_for(lambda worker=worker: up(worker), timeout=90)  # type: ignore[misc]
        assert worker.process.poll() is None, worker.output()[-3000:]


def kill(worker: Worker) -> None:
    """SIGKILL the worker and its pool: nothing is acknowledged or cleaned up."""
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)


def wait_for(condition: Callable[[], Any], *, timeout: float = 60, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def send_tick(task_id: str) -> datetime:
    """Send the tick through the broker as beat does; returns when it was sent."""
    sent = timezone.now()
    app.send_task(SCHEDULE_TICK, task_id=task_id)
    return sent


def pass_time(delta: timedelta = INTERVAL, *, running: tuple[int, ...] = ()) -> None:
    """As if delta had passed: every run happened that much earlier (no run but those said may be going on;
    their heartbeats are left alone)."""
    assert not SyncRun.objects.filter(status__in=ACTIVE_STATUSES).exclude(pk__in=running).exists()
    SyncRun.objects.update(
        created_at=F("created_at") - delta,
        started_at=F("started_at") - delta,
        finished_at=F("finished_at") - delta,
    )


def scheduled_since(moment: datetime, names: Any = None) -> list[SyncRun]:
    found = SyncRun.objects.filter(trigger=SyncRun.Trigger.SCHEDULE, created_at__gte=moment)
    if names is not None:
        found = found.filter(domain__name__in=list(names))
    return list(found.select_related("domain"))


def tick_and_wait(task_id: str, names: Any, *, timeout: float = 60) -> tuple[datetime, list[SyncRun]]:
    """Send a tick; when it was sent, and the runs it queued for these domains once all have ended."""
    sent = send_tick(task_id)
    return sent, wait_for(lambda: all_finished(sent, names), timeout=timeout)


def all_finished(moment: datetime, names: Any) -> list[SyncRun] | None:
    """The scheduled runs since moment of these domains, once there is one for each and all have ended."""
    found = scheduled_since(moment, names)
    if {run.domain.name for run in found} == set(names) and all(run.is_finished for run in found):
        return found
    return None


def one_run_each(found: list[SyncRun], names: Any) -> None:
    by_domain = sorted(run.domain.name for run in found)
    assert by_domain == sorted(names), by_domain


def seconds_after(moment: datetime | None, later: datetime | None) -> float:
    assert moment is not None and later is not None
    return (later - moment).total_seconds()


def domain_with_people(slapd: SlapdInstance, name: str, *, people: int) -> tuple[Domain, Directory]:
    domain = create_domain(name=name)
    directory = new_directory(slapd)
    for number in range(people):
        directory.add_person(f"p{number}", mail=f"p{number}@{name}")
    configure(domain, directory)
    return domain, directory


def tick_in_process() -> list[str]:
    """A tick, and the runs it queued run here (as a worker would): the names of their domains, in order."""
    queued = [run for run in schedule_tick() if run.status == JobStatus.QUEUED]
    for run in queued:
        execute_run(run_id=run.pk)
    return [run.domain.name for run in queued]


# ----- back-off -----


def test_the_back_off_doubles_up_to_sixteen_intervals_or_a_day() -> None:
    def delay(failures: int, interval: timedelta) -> timedelta:
        return ScheduleState(domain_id=1, failures=failures, last_attempt_at=None, interval=interval).delay

    assert [delay(n, INTERVAL) for n in range(7)] == [INTERVAL * f for f in (1, 1, 2, 4, 8, 16, 16)]
    assert delay(9, timedelta(hours=2)) == timedelta(days=1)
    assert delay(9, timedelta(days=1)) == timedelta(days=1)


@pytest.mark.django_db
def test_a_failing_domain_backs_off_goes_last_and_a_success_ends_it(
    slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    domain_with_people(slapd, "b-healthy.test", people=2)
    failing = create_domain(name="a-failing.test")
    directory = new_directory(slapd)
    configure(failing, directory, host=f"ldap://127.0.0.1:{free_port()}")  # nothing listens: refused at once

    assert tick_in_process() == ["a-failing.test", "b-healthy.test"]  # no history yet: by name
    state = schedule_state(domain_id=failing.pk)
    assert state.failures == 1 and state.next_attempt_at == state.last_attempt_at + INTERVAL  # type: ignore[operator]
    pass_time()
    assert tick_in_process() == ["b-healthy.test", "a-failing.test"]  # failing domains queue last
    # Two failures in a row: two intervals.
    pass_time()
    assert tick_in_process() == ["b-healthy.test"]
    pass_time()
    assert tick_in_process() == ["b-healthy.test", "a-failing.test"]
    # Three: four intervals.
    for _ in range(3):
        pass_time()
        assert tick_in_process() == ["b-healthy.test"]
    pass_time()
    assert tick_in_process() == ["b-healthy.test", "a-failing.test"]
    state = schedule_state(domain_id=failing.pk)
    assert state.failures == 4 and state.delay == 8 * INTERVAL

    # Synchronize Now is never held back; its failure neither counts nor ends the streak.
    response = client_for("helpdesk").post("/domains/a-failing.test/directory/sync/")
    assert response.status_code == 302
    manual = SyncRun.objects.get(domain=failing, trigger=SyncRun.Trigger.MANUAL)
    assert execute_run(run_id=manual.pk).status == JobStatus.FAILED
    assert schedule_state(domain_id=failing.pk).failures == 4

    # A success, of any run, ends it: the next scheduled attempt is one interval after the last.
    configure(failing, directory, host=slapd.ldap_url)
    assert sync(failing).status == JobStatus.SUCCEEDED
    state = schedule_state(domain_id=failing.pk)
    assert state.failures == 0 and state.delay == INTERVAL and state.summary == ""
    pass_time()
    assert tick_in_process() == ["a-failing.test", "b-healthy.test"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["administrator", "helpdesk", "operator"])
def test_the_directory_tab_says_when_a_failing_domain_is_tried_next(
    slapd: SlapdInstance, client_for: Callable[[str | None], Client], role: str
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd))
    for _ in range(3):
        SyncRun.objects.create(
            domain=domain,
            trigger=SyncRun.Trigger.SCHEDULE,
            requested_by="schedule",
            status=JobStatus.FAILED,
            errors=["No answer"],
        )
    last = SyncRun.objects.filter(domain=domain).latest("created_at").created_at
    next_attempt = timezone.localtime(last + 4 * INTERVAL)
    at = (
        f"{next_attempt:%H:%M}"
        if next_attempt.date() == timezone.localdate()
        else f"{next_attempt:%Y-%m-%d %H:%M}"
    )
    client = client_for(role)
    page = client.get("/domains/example.com/directory/").content.decode()
    assert f"3 failures in a row; next attempt at {at}" in page

    SyncRun.objects.create(domain=domain, trigger=SyncRun.Trigger.MANUAL, status=JobStatus.SUCCEEDED)
    assert "failures in a row" not in client.get("/domains/example.com/directory/").content.decode()


# ----- the tick: skipped runs, ticking twice -----


@pytest.mark.django_db
def test_a_skipped_run_ends_when_it_was_recorded(slapd: SlapdInstance) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd))
    request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="someone")
    [skipped] = schedule_tick()
    skipped.refresh_from_db()
    assert skipped.status == JobStatus.SKIPPED
    assert skipped.started_at == skipped.finished_at == skipped.created_at
    assert skipped.duration_s == 0


@pytest.mark.django_db
def test_a_tick_delivered_again_queues_nothing_twice_and_resends_what_is_queued(
    slapd: SlapdInstance, django_capture_on_commit_callbacks: Any
) -> None:
    for number in range(3):
        domain_with_people(slapd, f"d{number}.test", people=1)
    with django_capture_on_commit_callbacks() as first:
        assert len(schedule_tick()) == 3
    assert len(first) == 3  # one message per run, sent once the run is committed
    with django_capture_on_commit_callbacks() as again:
        assert schedule_tick(redelivered=True) == []
    # The first delivery may have died between committing a run and sending it: sent again (runs once).
    assert len(again) == 3
    assert SyncRun.objects.count() == 3 and not SyncRun.objects.filter(status=JobStatus.SKIPPED).exists()


@pytest.mark.django_db
def test_a_tick_racing_another_delivery_of_itself_records_no_skipped_run(
    slapd: SlapdInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain_with_people(slapd, "example.com", people=1)
    real_request_run = runs.request_run

    def other_delivery_first(**kwargs: Any) -> tuple[SyncRun, bool]:
        real_request_run(**kwargs)  # the other delivery of this tick queues the domain just before
        return real_request_run(**kwargs)

    monkeypatch.setattr(runs, "request_run", other_delivery_first)
    assert schedule_tick() == []
    assert list(SyncRun.objects.values_list("status", flat=True)) == [JobStatus.QUEUED]


def test_the_tick_and_the_reaper_have_a_queue_of_their_own() -> None:
    for task in (SCHEDULE_TICK, REAP_ABANDONED):
        assert app.amqp.router.route({}, task)["queue"].name == "schedule"
    assert app.amqp.router.route({}, "directory_sync.synchronize")["queue"].name == "celery"
    reap = django_settings.CELERY_BEAT_SCHEDULE["directory-sync-reap"]
    assert reap == {"task": REAP_ABANDONED, "schedule": django_settings.SYNC_REAP_SECONDS}


# ----- the bind timeout -----


@pytest.mark.django_db
def test_a_sync_against_a_directory_that_never_answers_fails_at_the_bind_timeout(
    slapd: SlapdInstance, black_hole: BlackHole
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd), host=black_hole.url(), timeout_seconds=60)
    started = time.monotonic()
    run = sync(domain)
    took = time.monotonic() - started
    assert run.status == JobStatus.FAILED
    assert run.errors == [f"No answer from 127.0.0.1:{black_hole.port} within 5 s (during the bind)"]
    assert 5 <= took < 5 + 4, took  # the bind timeout (5 s), not the domain's 60 s


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scheme", "starttls", "during"),
    [("ldap", False, "the bind"), ("ldap", True, "StartTLS"), ("ldaps", False, None)],
)
@pytest.mark.parametrize("reader", ["sync (python-ldap)", "console (ldap3)", "mail user sign-in"])
def test_every_reader_gives_up_on_a_silent_server_at_the_bind_timeout(
    slapd: SlapdInstance,
    black_hole: BlackHole,
    settings: Any,
    scheme: str,
    starttls: bool,
    during: str | None,
    reader: str,
) -> None:
    settings.DIRECTORY_BIND_TIMEOUT_SECONDS = 2
    domain = create_domain(name="example.com")
    saved = configure(
        domain, new_directory(slapd), host=black_hole.url(scheme), use_starttls=starttls, timeout_seconds=60
    )
    options = options_from_settings(saved)
    opening: dict[str, Callable[[], object]] = {
        "sync (python-ldap)": lambda: open_bulk_session(options),
        "console (ldap3)": lambda: open_session(options),
        "mail user sign-in": lambda: check_user_password(options, login="uid=p0,ou=x", password="pw"),
    }
    started = time.monotonic()
    with pytest.raises(DirectoryError) as caught:
        opening[reader]()
    took = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert caught.value.message.startswith(f"No answer from 127.0.0.1:{black_hole.port} within 2 s")
    if during:  # over LDAPS the handshake is what goes unanswered (ldap3 and libldap word it differently)
        assert caught.value.message.endswith(f"(during {during})")
    assert 2 <= took < 2 + 3, took


# ----- the reaper -----


def test_the_readme_states_the_reapers_window_as_configured() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    abandoned, reap = django_settings.SYNC_ABANDONED_AFTER_SECONDS, django_settings.SYNC_REAP_SECONDS
    assert f"between {abandoned:g} and {abandoned + reap:g} s after its last beat" in readme


@BACKGROUND
def test_a_run_whose_worker_died_is_failed_once_silent_for_the_abandon_time(
    tmp_path: Path, slapd: SlapdInstance, broker: RedisInstance, workers: list[Worker], black_hole: BlackHole
) -> None:
    domain = create_domain(name="example.com")
    configure(domain, new_directory(slapd), host=black_hole.url(), timeout_seconds=60)
    # The runner waits in the bind (never answered) until it is killed; beat and the reaper run beside it,
    # as the demo runs them (one process: `worker --beat` on the schedule's queue).
    runner_env = {"SYNC_HEARTBEAT_SECONDS": "0.5", "DIRECTORY_BIND_TIMEOUT_SECONDS": "60"}
    runner = launch_worker(
        workers, tmp_path / "runner", broker, queues="celery", concurrency=1, env=runner_env
    )
    scheduler_env = {"SYNC_REAP_SECONDS": "1", "SYNC_TICK_SECONDS": "3600", **FAST}
    scheduler = launch_worker(
        workers,
        tmp_path / "scheduler",
        broker,
        queues="schedule",
        concurrency=1,
        env=scheduler_env,
        beat=True,
    )
    ready(runner, scheduler)
    run, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="test")
    running = SyncRun.objects.filter(pk=run.pk, status=JobStatus.RUNNING)
    first_beat = wait_for(lambda: running.values_list("heartbeat_at", flat=True).first())
    wait_for(lambda: running.filter(heartbeat_at__gt=first_beat).exists())  # its heartbeat thread beats
    kill(runner)

    failed = wait_for(lambda: SyncRun.objects.filter(pk=run.pk, status=JobStatus.FAILED).first(), timeout=30)
    assert failed.errors[0].startswith("Abandoned: The worker running it stopped")
    silent = seconds_after(failed.heartbeat_at, failed.finished_at)
    # Reaped between SYNC_ABANDONED_AFTER_SECONDS and that plus SYNC_REAP_SECONDS after its last beat (and the
    # reap task's own latency on a loaded machine).
    assert 3 <= silent <= 3 + 1 + 1.5, silent


# ----- many domains, few workers -----


@POSTGRES_ONLY
@BACKGROUND
def test_two_workers_sync_each_domain_once_per_tick_and_a_killed_one_loses_no_run(
    tmp_path: Path, slapd: SlapdInstance, broker: RedisInstance, workers: list[Worker]
) -> None:
    switchboard = Switchboard(slapd.ldap_port)
    try:
        directories = {name: domain_with_people(slapd, name, people=3)[1] for name in DOMAINS_20}
        stuck_domain = Domain.objects.get(name="d07.test")
        configure(
            stuck_domain,
            directories["d07.test"],
            host=f"ldap://127.0.0.1:{switchboard.port}",
            timeout_seconds=60,
        )
        env = {"DIRECTORY_BIND_TIMEOUT_SECONDS": "60", **FAST}
        pair = [
            launch_worker(workers, tmp_path / name, broker, queues="celery,schedule", concurrency=2, env=env)
            for name in ("first", "second")
        ]
        ready(*pair)

        _, done = tick_and_wait("tick-1", DOMAINS_20)
        synced_once_each(done, DOMAINS_20, people=3)
        add_person_everywhere(directories, "p3")
        pass_time()
        _, done = tick_and_wait("tick-2", DOMAINS_20)
        synced_once_each(done, DOMAINS_20, people=4)
        for worker in pair:  # both took their share
            assert "directory_sync.synchronize[synchronize-" in worker.output()

        # Tick 3: d07's directory accepts the connection and never answers; its worker is killed mid-run.
        add_person_everywhere(directories, "p4")
        pass_time()
        switchboard.holding.set()
        sent = send_tick("tick-3")
        wait_for(lambda: all_finished(sent, [name for name in DOMAINS_20 if name != "d07.test"]))
        stuck = wait_for(
            lambda: SyncRun.objects.filter(
                domain=stuck_domain, created_at__gte=sent, status=JobStatus.RUNNING
            ).first()
        )
        [victim] = [worker for worker in pair if holds(worker, stuck)]
        kill(victim)
        switchboard.holding.clear()
        stuck_runs = SyncRun.objects.filter(pk=stuck.pk)
        wait_for(lambda: seconds_after(stuck_runs.get().heartbeat_at, timezone.now()) > 3.5)  # abandoned

        # Tick 4, on the surviving worker: it reaps the dead run first; d07 is due again (one failure: one
        # interval), and every domain is synced once more, d07 with what it missed.
        pass_time(running=(stuck.pk,))
        _, done = tick_and_wait("tick-4", DOMAINS_20)
        synced_once_each(done, DOMAINS_20, people=5)
        failed = stuck_runs.get()
        assert failed.status == JobStatus.FAILED and failed.errors[0].startswith("Abandoned"), failed.errors
        for name in DOMAINS_20:  # never two runs of one domain at once
            spans = sorted(
                (run.started_at, run.finished_at)
                for run in SyncRun.objects.filter(domain__name=name).exclude(status=JobStatus.SKIPPED)
                if run.started_at and run.finished_at
            )
            assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), name
    finally:
        switchboard.close()


DOMAINS_20 = [f"d{number:02}.test" for number in range(20)]


def add_person_everywhere(directories: dict[str, Directory], uid: str) -> None:
    for name, directory in directories.items():
        directory.add_person(uid, mail=f"{uid}@{name}")


def synced_once_each(done: list[SyncRun], names: list[str], *, people: int) -> None:
    one_run_each(done, names)
    assert {run.status for run in done} == {JobStatus.SUCCEEDED}, [run.errors for run in done]
    for name in names:
        assert Account.objects.filter(domain__name=name).count() == people, name


def holds(worker: Worker, run: SyncRun) -> bool:
    """Whether the worker runs the run. A sync that outlives the visibility timeout is delivered once more (a
    worker takes it, finds the run claimed, and is done): the holder received it and has not finished it."""
    lines = [line for line in worker.output().splitlines() if f"[synchronize-{run.pk}-" in line]
    return sum("received" in line for line in lines) > sum("succeeded" in line for line in lines)


@POSTGRES_ONLY
@BACKGROUND
def test_one_worker_keeps_healthy_domains_on_time_beside_five_silent_directories(
    tmp_path: Path, slapd: SlapdInstance, broker: RedisInstance, workers: list[Worker]
) -> None:
    holes = [BlackHole() for _ in range(5)]
    try:
        healthy = [f"h{number:02}.test" for number in range(15)]
        for name in healthy:
            domain_with_people(slapd, name, people=2)
        silent = [f"b{number}.test" for number in range(5)]
        unreached = new_directory(slapd)
        no_answer = {}
        for name, hole in zip(silent, holes, strict=True):
            configure(create_domain(name=name), unreached, host=hole.url())  # the default timeout, 10 s
            no_answer[name] = [f"No answer from 127.0.0.1:{hole.port} within 2 s (during the bind)"]
        env = {"DIRECTORY_BIND_TIMEOUT_SECONDS": "2", **FAST}
        # One worker with two slots for the syncs, and the schedule's own slot, as in the compose file.
        syncs = launch_worker(workers, tmp_path / "syncs", broker, queues="celery", concurrency=2, env=env)
        ticks = launch_worker(workers, tmp_path / "ticks", broker, queues="schedule", concurrency=1, env=env)
        ready(syncs, ticks)

        # Ticks 1 and 2: every domain is due; the silent ones hold a slot 2 s each (the first time, by name,
        # before the others; then, having failed, after them).
        for number in (1, 2):
            if number == 2:
                pass_time()
            sent, done = tick_and_wait(f"tick-{number}", healthy)
            on_time(sent, done, tick=f"tick-{number}")
            for run in wait_for(lambda sent=sent: all_finished(sent, silent)):  # type: ignore[misc]
                assert run.errors == no_answer[run.domain.name]

        # Tick 3: the silent domains failed twice in a row, so they wait two intervals; and with syncs queued
        # ahead of it (Synchronize Now of four silent domains: never held back, 2 s a slot), the tick does not
        # wait behind them.
        pass_time()
        manual = [
            request_run(
                domain=Domain.objects.get(name=name), trigger=SyncRun.Trigger.MANUAL, requested_by="test"
            )
            for name in silent[:4]
        ]
        assert not any(joined for _, joined in manual)
        sent, done = tick_and_wait("tick-3", healthy)
        on_time(sent, done, tick="tick-3")
        assert not scheduled_since(sent, silent)  # backed off
        first_queued = min(run.created_at for run in done)
        manual_runs = SyncRun.objects.filter(pk__in=[run.pk for run, _ in manual])
        wait_for(lambda: all(run.is_finished for run in manual_runs))
        last_manual_start = max(run.started_at for run in manual_runs if run.started_at)
        assert first_queued < last_manual_start, "the tick waited behind the syncs queued before it"
        assert seconds_after(sent, first_queued) < 2

        # Tick 4: its worker is killed while it queues (held at h07, whose lock this test holds); the tick,
        # delivered again to a new worker, queues the rest: every due domain once.
        pass_time()
        due = healthy + silent  # the silent ones' two intervals have passed
        with transaction.atomic():
            SyncRun.objects.create(domain=Domain.objects.get(name="h07.test"), trigger=SyncRun.Trigger.MANUAL)
            sent = send_tick("tick-4")
            wait_for(lambda: len(scheduled_since(sent)) == 7 and someone_waits_for_a_lock())
            kill(ticks)
            transaction.set_rollback(True)
        assert {run.domain.name for run in scheduled_since(sent)} == set(healthy[:7])
        ready(
            launch_worker(
                workers, tmp_path / "ticks-again", broker, queues="schedule", concurrency=1, env=env
            )
        )
        done = wait_for(lambda: all_finished(sent, due), timeout=60)
        one_run_each(done, due)
        assert {run.status for run in done if run.domain.name in healthy} == {JobStatus.SUCCEEDED}
        assert not SyncRun.objects.filter(created_at__gte=sent, status=JobStatus.SKIPPED).exists()
    finally:
        for hole in holes:
            hole.close()


def on_time(sent: datetime, done: list[SyncRun], *, tick: str) -> None:
    assert {run.status for run in done} == {JobStatus.SUCCEEDED}, [run.errors for run in done]
    late = max(seconds_after(sent, run.finished_at) for run in done)
    assert late <= 15, f"{tick}: the last healthy domain was synced {late:.1f} s after the tick"


def someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)
