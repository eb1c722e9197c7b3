"""Real servers for the suite: a private slapd, Redis, a Celery worker; started once, on loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from devservers.redis import RedisInstance, start_redis
from devservers.slapd import SlapdInstance, start_slapd

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """An empty OpenLDAP server (dc=example,dc=com) for the whole run; tests add their own OUs."""
    instance = start_slapd(Path(tmp_path_factory.mktemp("slapd")))
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisInstance]:
    instance = start_redis(Path(tmp_path_factory.mktemp("redis")))
    yield instance
    instance.stop()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def switch_broker(url: str) -> str:
    """Publish this process's tasks to another broker; returns the previous URL.

    Celery keeps a connection pool and a producer pool per app: both are dropped so the next publish
    connects to the new broker instead of the one already in the pool.
    """
    from icewarp_admin.celery import app

    previous = str(app.conf.broker_url)
    app.conf.update(broker_url=url)
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]
    return previous


def database_url(database: dict[str, Any]) -> str:
    """The URL of the test database as this process uses it, for a worker in another process."""
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    user, password = database.get("USER") or "", database.get("PASSWORD") or ""
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{database['NAME']}"


def manage_py_env(**extra: str) -> dict[str, str]:
    """The environment of a `manage.py` child process on this test database, with this process's keys."""
    from django.db import connection

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icewarp_admin.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SECRET_KEY": settings.SECRET_KEY,
        "SECRETS_ENCRYPTION_KEYS": ",".join(settings.SECRETS_ENCRYPTION_KEYS),
        "MAIL_ROOT": str(settings.MAIL_ROOT),
        "CONFIG_DIR": str(settings.CONFIG_DIR),
        "MAIL_OWNER": str(settings.MAIL_OWNER),
        **extra,
    }


@pytest.fixture(scope="session")
def celery_worker(
    redis_server: RedisInstance,
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """A real Celery worker (prefork, in its own process) on the test database and a private Redis."""
    from django.db import connection

    folder = Path(tmp_path_factory.mktemp("worker"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icewarp_admin.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": redis_server.url,
        "SECRET_KEY": settings.SECRET_KEY,
        "SECRETS_ENCRYPTION_KEYS": ",".join(settings.SECRETS_ENCRYPTION_KEYS),
        "VAR_DIR": str(folder),
        "MAIL_ROOT": str(folder / "mail"),
        "CONFIG_DIR": str(folder / "config"),
        "LOG_LEVEL": "DEBUG",
    }
    log = folder / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "icewarp_admin", "worker", "--pool=prefork",
             "--concurrency=2", "--loglevel=DEBUG", "-n", f"test-{os.getpid()}@%h", "--without-gossip",
             "--without-mingle", "--queues=celery,schedule"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    worker = Worker(process=process, log=log)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"The Celery worker did not start:\n{worker.output()[-3000:]}")
        time.sleep(0.1)
    previous = switch_broker(redis_server.url)
    yield worker
    switch_broker(previous)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
