"""The push watcher as a real process for the tests: `manage.py directory_watch` on the test database."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from directory_sync.models import DirectoryWatch
from icewarp_admin.mailserver.models import Domain
from tests.servers import ROOT, manage_py_env

BOUND = 15.0  # seconds a pushed change may take to land here (the target is 5 s; see benchmarks/watch.py)


@dataclass
class WatcherProcessHandle:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as docker stop and make demo-stop send it; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def start_watcher(tmp_path: Path) -> Iterator[Callable[..., WatcherProcessHandle]]:
    started: list[WatcherProcessHandle] = []

    def start(*domains: str) -> WatcherProcessHandle:
        log = tmp_path / f"watcher-{len(started)}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "directory_watch", *domains, "--lease-seconds", "6"],
                cwd=ROOT, env=manage_py_env(LOG_LEVEL="DEBUG"), stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        handle = WatcherProcessHandle(process, log)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        print(f"--- {handle.log.name}\n{handle.output()[-6000:]}")  # shown when the test failed
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait(timeout=10)


def eventually(check: Callable[[], Any], *, within: float = BOUND, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what or check}")
        time.sleep(0.1)


def watching(domain: Domain) -> DirectoryWatch | None:
    return DirectoryWatch.objects.filter(domain=domain, state=DirectoryWatch.State.WATCHING).first()
