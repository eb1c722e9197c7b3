"""`python -m devservers.demo up/down` end to end: real slapd, Redis, gunicorn, Celery worker and beat."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devservers.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("slapd", "slapadd", "ldapsearch", "ldapadd", "openssl", "redis-server")


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


def _demo(action: str, var_dir: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devservers.demo", action, "--var-dir", str(var_dir), *extra],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _live_processes() -> dict[int, int]:
    """Live process id -> its session id (zombies waiting for PID 1 to reap them count as dead)."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            found[int(entry.name)] = int(fields[3])
    return found


def _read_pids(path: Path) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError):
        return {}


def _login(base: str, username: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Sign in through the real login form; return the session and the response after the redirect."""
    session = requests.Session()
    page = session.get(f"{base}login/", timeout=10)
    assert page.status_code == 200
    token = session.cookies["csrftoken"]
    response = session.post(
        f"{base}login/",
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        timeout=10,
    )
    return session, response


@pytest.mark.slow
@pytest.mark.skipif(not all(_have(t) for t in TOOLS), reason="needs slapd, ldap-utils, openssl, redis-server")
def test_demo_up_serves_the_console_and_down_stops_everything(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "TEST_SQLITE_PATH")}
    # Never the test run's database: a fresh SQLite file of the demo's own.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    port = free_port()
    try:
        up = _demo("up", var_dir, env, "--port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr
        state = var_dir / "demo"
        info = json.loads((state / "demo.json").read_text())
        base = f"http://127.0.0.1:{port}/"
        assert info["url"] == base
        assert base in up.stdout and "make demo-stop" not in up.stdout
        password = (state / "admin_password").read_text().strip()
        assert password in up.stdout
        assert (state / "admin_password").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "demo.sqlite3").exists()

        admin, landing = _login(base, "admin", password)
        assert landing.status_code == 200 and landing.url.endswith("/domains/")
        assert "example.com" in landing.text
        for page in ("accounts/", "groups/", "directory/"):
            response = admin.get(f"{base}domains/example.com/{page}", timeout=10)
            assert response.status_code == 200, page
        # make demo synchronized the demo directory: its people are accounts, its groups and OUs are groups
        accounts = admin.get(f"{base}domains/example.com/accounts/", timeout=10).text
        count = re.search(r"(\d+) accounts", accounts)
        assert count is not None and int(count[1]) >= 35
        groups = admin.get(f"{base}domains/example.com/groups/", timeout=10).text
        assert "engineering@example.com" in groups and "Company" in groups
        assert admin.get(f"{base}system/settings/", timeout=10).status_code == 200

        operator, landing = _login(base, "operator", password)
        assert landing.status_code == 200 and landing.url.endswith("/domains/")
        assert operator.get(f"{base}system/settings/", timeout=10).status_code == 403

        search = subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", info["ldap_url"], "-b", info["base_dn"],
             "-D", info["bind_dn"], "-w", info["bind_password"], "(objectClass=inetOrgPerson)", "dn"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        people = [line for line in search.stdout.splitlines() if line.startswith("dn:")]
        assert len(people) >= 40

        again = _demo("up", var_dir, env)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert password in again.stdout
    finally:
        pids = _read_pids(var_dir / "demo" / "pids.json")
        down = _demo("down", var_dir, env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert set(pids) == {"web", "worker", "beat", "watcher", "slapd", "redis"}
    live = _live_processes()
    # Neither the processes themselves nor their children (gunicorn workers, the worker's pool) are left.
    assert not [name for name, pid in pids.items() if pid in live or pid in live.values()]
    status = _demo("status", var_dir, env)
    assert status.returncode == 3 and "running" not in status.stdout
