"""The demo console on loopback: a demo LDAP directory, Redis, gunicorn, a Celery worker, beat, the watcher.

python -m devservers.demo up|down|status [--var-dir DIR] [--host 127.0.0.1] [--port N]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _proc
from .demo_directory import DEMO_PASSWORD, demo_ldif, demo_people
from .ports import free_port
from .redis import RedisInstance, start_redis
from .slapd import SlapdInstance, start_slapd

ROOT = Path(__file__).resolve().parents[1]
BASE_DN = "dc=example,dc=com"
MAIL_DOMAIN = "example.com"
DOMAIN_DESCRIPTION = "Demo domain"
DEMO_USERS = {"admin": "Administrators", "helpdesk": "Helpdesk", "operator": "Operators"}
DEFAULT_PORT = 8000
WEB_TIMEOUT = 60.0
WORKER_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
STEP_TIMEOUT = 300.0
# What each app process's command line contains: guards against signalling a recycled pid.
APP_PROCESSES = {"web": "gunicorn", "worker": "celery", "beat": "celery", "watcher": "directory_watch"}
SERVERS = ("slapd", "redis")
# Settings that would send the demo's files outside its var dir; the demo keeps everything in one place.
DROPPED_ENV = ("MAIL_ROOT", "CONFIG_DIR", "TEST_SQLITE_PATH", "DJANGO_SETTINGS_MODULE", "PORT")

# Run by the venv's Python with the demo environment (stdin script: no file to ship, nothing in argv).
SETUP_SCRIPT = """
import json

import django

django.setup()

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from directory_sync.models import DirectorySettings
from directory_sync.services.settings import save_directory_settings
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.services.domains import create_domain

User = get_user_model()
result = {"domain_created": False, "users_created": [], "passwords_reset": [], "directory_configured": False}
with transaction.atomic():
    if not Domain.objects.filter(name=PARAMS["domain"]).exists():
        create_domain(name=PARAMS["domain"], description=PARAMS["description"])
        result["domain_created"] = True
    domain = Domain.objects.get(name=PARAMS["domain"])
    directory = PARAMS["directory"]
    if not DirectorySettings.objects.filter(domain=domain).exists():
        save_directory_settings(
            domain=domain,
            values=directory["settings"],
            new_password=directory["password"],
            changed_by="make demo",
            source="make demo",
        )
        result["directory_configured"] = True
    elif DirectorySettings.objects.get(domain=domain).host != directory["settings"]["host"]:
        # The demo directory came back on other ports: follow it.
        save_directory_settings(
            domain=domain,
            values={"host": directory["settings"]["host"]},
            changed_by="make demo",
            source="make demo",
        )
    for username, role_name in PARAMS["users"].items():
        try:
            role = Group.objects.get(name=role_name)
        except Group.DoesNotExist:
            raise SystemExit(f"role {role_name!r} is missing: did the migrations run?")
        user, created = User.objects.get_or_create(username=username, defaults={"is_staff": False})
        if created or PARAMS["reset_passwords"]:
            user.set_password(PARAMS["password"])
            user.save()
            result["users_created" if created else "passwords_reset"].append(username)
        user.groups.add(role)
print(json.dumps(result))
"""


class DemoError(RuntimeError):
    """A demo step failed; the message says which and why."""


@dataclass(frozen=True)
class Paths:
    """Where the demo keeps its state: <var-dir>/demo/."""

    var_dir: Path

    @property
    def root(self) -> Path:
        """The demo's state directory."""
        return self.var_dir / "demo"

    @property
    def logs(self) -> Path:
        """Log directory of web, worker and beat."""
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        """pids.json: component name -> pid."""
        return self.root / "pids.json"

    @property
    def info(self) -> Path:
        """demo.json: URL, logins and directory connection facts."""
        return self.root / "demo.json"

    @property
    def password(self) -> Path:
        """The demo users' password (mode 0600)."""
        return self.root / "admin_password"

    @property
    def beat_schedule(self) -> Path:
        """Celery beat's schedule database."""
        return self.root / "celerybeat-schedule"

    def server_dir(self, name: str) -> Path:
        """Directory of the slapd or redis instance."""
        return self.root / name

    def log(self, name: str) -> Path:
        """Log file of an app process."""
        return self.logs / f"{name}.log"


def say(message: str, *, error: bool = False) -> None:
    """Print a progress (or error) line; a closed stdout (`| head`) must not stop a cleanup half-way."""
    with contextlib.suppress(OSError):
        print(f"demo: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def say_block(text: str) -> None:
    """Print a block of text as is (ignoring a closed stdout, as say does)."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


# ----- environment and commands -----


def executable(name: str) -> str:
    """A program of the project's venv (<repo>/.venv/bin), else next to this Python, else on PATH."""
    for directory in (ROOT / ".venv" / "bin", Path(sys.executable).parent):
        candidate = directory / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise DemoError(f"{name!r} not found in {ROOT / '.venv/bin'} or on PATH: run `make bootstrap` first")


def python() -> str:
    """The Python that runs manage.py (the venv's when there is one)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if os.access(venv, os.X_OK) else sys.executable


def url_host(host: str) -> str:
    """host as it appears in a URL or a bind address (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host


def child_env(var_dir: Path, broker_url: str, host: str) -> dict[str, str]:
    """The environment of manage.py, gunicorn, worker and beat (DATABASE_URL is kept if the caller set it)."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    hosts = ["127.0.0.1", "localhost"]
    if url_host(host) not in hosts:
        hosts.append(url_host(host))
    env.update(
        DJANGO_SETTINGS_MODULE="icewarp_admin.settings",
        VAR_DIR=str(var_dir),
        CELERY_BROKER_URL=broker_url,
        DEBUG="0",
        # The demo serves plain http: cookies marked Secure would never come back.
        SESSION_COOKIE_SECURE="0",
        ALLOWED_HOSTS=",".join(hosts),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_step(what: str, cmd: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    """Run a setup command in the repo root; return its stdout or raise DemoError with its output."""
    try:
        res = subprocess.run(
            cmd,
            cwd=ROOT,
            env=env,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(
            f"{what} did not finish within {STEP_TIMEOUT:.0f} s: {_proc.format_cmd(cmd)}"
        ) from exc
    if res.returncode != 0:
        output = (res.stdout + res.stderr).strip()[-4000:] or "(no output)"
        raise DemoError(f"{what} failed (exit {res.returncode}): {_proc.format_cmd(cmd)}\n{output}")
    return res.stdout


def manage(what: str, env: dict[str, str], *args: str) -> str:
    """Run a manage.py command."""
    return run_step(what, [python(), str(ROOT / "manage.py"), *args], env)


def ensure_password(paths: Paths) -> tuple[str, bool]:
    """The demo users' password from admin_password, or a new one written there; (password, is_new)."""
    if paths.password.exists():
        password = paths.password.read_text().strip()
        if password:
            paths.password.chmod(0o600)
            return password, False
    password = secrets.token_urlsafe(12)
    fd = os.open(paths.password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    paths.password.chmod(0o600)  # O_CREAT's mode does not apply to an existing file
    return password, True


def setup_database(
    env: dict[str, str], password: str, reset_passwords: bool, slapd: SlapdInstance
) -> dict[str, Any]:
    """Create the demo domain (synced from the demo directory) and the three role users, when missing."""
    params = {
        "directory": {
            "settings": {
                "active": True,
                "host": slapd.ldap_url,
                # Passwords never cross in clear, even on loopback: StartTLS with the demo CA's certificate.
                "use_starttls": True,
                "ca_bundle": slapd.ca_cert.read_text(),
                "bind_user": slapd.reader_dn,
                "base_dn": BASE_DN,
                "server_type": "generic",
                "login_source": "dn",
                "group_filter": "(|(objectClass=groupOfNames)(objectClass=posixGroup))",
                "create_ou_groups": True,
                "ou_groups_root": f"ou=People,{BASE_DN}",
                "ou_groups_root_name": "Company",
            },
            "password": slapd.reader_password,
        },
        "domain": MAIL_DOMAIN,
        "description": DOMAIN_DESCRIPTION,
        "users": DEMO_USERS,
        # A new password file (lost, or a database shared with an earlier demo): existing users get it too,
        # otherwise the printed logins would not work.
        "reset_passwords": reset_passwords,
        "password": password,
    }
    script = f"PARAMS = json.loads({json.dumps(params)!r})\n" + SETUP_SCRIPT
    out = run_step("creating the demo domain and users", [python(), "-"], env, stdin="import json\n" + script)
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise DemoError(f"unexpected output of the database setup script:\n{out}") from exc
    return result


# ----- processes -----


def spawn(name: str, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start an app process detached (own session, output appended to log, stdin /dev/null)."""
    with log.open("ab") as fh:
        fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {_proc.format_cmd(cmd)}\n".encode())
        fh.flush()
        try:
            return subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise DemoError(f"cannot start the {name} ({_proc.format_cmd(cmd)}): {exc}") from exc


def app_alive(name: str, pid: int) -> bool:
    """True if the web, worker or beat process pid is alive (and still ours)."""
    return _proc.pid_alive(pid, APP_PROCESSES[name])


def session_members(sid: int) -> list[int]:
    """Live processes of the session that the app process sid leads (gunicorn workers, the worker's pool)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp session ...
        if len(fields) > 3 and fields[0] not in ("Z", "X") and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def stop_app_processes(pids: dict[str, int]) -> list[str]:
    """SIGTERM web, worker and beat together, SIGKILL what is left after STOP_TIMEOUT; return what ran."""
    apps = {name: pid for name, pid in pids.items() if name in APP_PROCESSES}
    alive = [name for name, pid in apps.items() if app_alive(name, pid)]
    for name in alive:
        _proc.send_signal(apps[name], APP_PROCESSES[name], signal.SIGTERM)
    _proc.poll(lambda: not any(app_alive(n, apps[n]) for n in alive), STOP_TIMEOUT, max_interval=0.1)

    def leftovers() -> list[int]:
        # A leader that ignored SIGTERM, or children orphaned by a leader that died earlier; the name check
        # keeps a recycled session id from matching someone else's processes.
        return [
            member
            for name, pid in apps.items()
            for member in session_members(pid)
            if _proc.pid_alive(member, APP_PROCESSES[name])
        ]

    for member in leftovers():
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    if not _proc.poll(lambda: not leftovers(), STOP_TIMEOUT):
        raise DemoError(f"processes {leftovers()} survived SIGKILL")
    return alive


def read_pids(paths: Paths) -> dict[str, int]:
    """pids.json, or {} if missing or unreadable."""
    try:
        data = json.loads(paths.pids.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file atomically."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def load_server(paths: Paths, name: str) -> SlapdInstance | RedisInstance | None:
    """The saved slapd or redis instance of the demo, or None."""
    directory = paths.server_dir(name)
    if not (directory / "instance.json").exists():
        return None
    try:
        return SlapdInstance.load(directory) if name == "slapd" else RedisInstance.load(directory)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def component_state(paths: Paths) -> dict[str, int | None]:
    """Every component -> its pid if it is running, else None."""
    pids = read_pids(paths)
    state: dict[str, int | None] = {}
    for name in APP_PROCESSES:
        pid = pids.get(name)
        state[name] = pid if pid is not None and app_alive(name, pid) else None
    for name in SERVERS:
        server = load_server(paths, name)
        state[name] = server.pid if server is not None and server.running else None
    return state


# ----- port and readiness -----


def check_loopback(host: str) -> None:
    """Refuse to serve the demo anywhere but on loopback."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise DemoError(f"refusing to serve the demo on {host!r}: use a loopback address (127.0.0.1 or ::1)")


def port_free(host: str, port: int) -> bool:
    """True if gunicorn could bind host:port (SO_REUSEADDR as gunicorn sets it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, requested: int | None) -> int:
    """--port, else $PORT, else 8000 if free, else any free port."""
    source = "--port"
    if requested is None and os.environ.get("PORT"):
        source = "PORT"
        try:
            requested = int(os.environ["PORT"])
        except ValueError as exc:
            raise DemoError(f"PORT={os.environ['PORT']!r} is not a port number") from exc
    if requested is not None:
        if not 0 < requested < 65536:
            raise DemoError(f"{source} {requested} is not a port number")
        if not port_free(host, requested):
            raise DemoError(f"port {requested} on {host} ({source}) is in use; choose another one")
        return requested
    return DEFAULT_PORT if port_free(host, DEFAULT_PORT) else free_port(host)


def check_running(procs: dict[str, subprocess.Popen[bytes]], paths: Paths, what: str) -> None:
    """Raise DemoError, with the end of its log, if one of procs has exited."""
    for name, proc in procs.items():
        rc = proc.poll()
        if rc is not None:
            raise DemoError(
                f"the {name} process exited with status {rc} while {what}; "
                f"end of {paths.log(name)}:\n{_proc.tail(paths.log(name))}"
            )


def wait_until(
    what: str,
    ready: Callable[[], bool],
    procs: dict[str, subprocess.Popen[bytes]],
    paths: Paths,
    timeout: float,
) -> None:
    """Poll ready() until it is true; fail early if one of procs exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        check_running(procs, paths, f"waiting for {what}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def login_page_ok(url: str) -> bool:
    """True if GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own http://loopback URL
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def log_contains(log: Path, offset: int, text: str) -> bool:
    """True if log, from byte offset on, contains text."""
    try:
        with log.open("rb") as fh:
            fh.seek(offset)
            return text.encode() in fh.read()
    except OSError:
        return False


# ----- commands -----


def summary(info: dict[str, Any], password: str, var_dir: Path) -> str:
    """The human-readable description of a running demo."""
    stop = (
        "make demo-stop"
        if var_dir == default_var_dir()
        else f"python -m devservers.demo down --var-dir {var_dir}"
    )
    logins = "\n".join(
        f"  {'Logins' if i == 0 else '':<11}{user:<9} {password}   ({role})"
        for i, (user, role) in enumerate(info["logins"].items())
    )
    return f"""
The demo console is running: {info["url"]}

{logins}
  Directory  {info["ldap_url"]}  (LDAPS {info["ldaps_url"]}, CA {info["ca_cert"]})
             base {info["base_dn"]}, bind {info["bind_dn"]} / {info["bind_password"]}
             {info["people_count"]} people (password {DEMO_PASSWORD}), groups in {info["groups_dn"]}
  Mail users {info["url"]}me/  e.g. {info.get("mail_user", "")} / {DEMO_PASSWORD}, once a sync has run
  Broker     {info["broker_url"]}
  Logs       {info["logs_dir"]}/{{web,worker,beat,watcher}}.log
  State      {info["state_file"]}

Stop it with: {stop}
"""


def default_var_dir() -> Path:
    """$VAR_DIR, else <repo>/var (what the settings use)."""
    return Path(os.environ.get("VAR_DIR") or ROOT / "var").resolve()


def start_directory(paths: Paths) -> SlapdInstance:
    """Restart the demo directory of an earlier run (same ports and data), else build and seed a new one."""
    # Keeping the ports and the data means that a domain configured to sync from it keeps working, and
    # changes made to the directory survive a restart like the console's database does.
    seeded = paths.server_dir("slapd") / "demo-seeded"
    previous = load_server(paths, "slapd")
    if isinstance(previous, SlapdInstance) and seeded.exists():
        say(f"restarting the demo directory on {previous.ldap_url}")
        try:
            previous.restart()
            return previous
        except RuntimeError as exc:
            say(f"could not restart it ({str(exc).splitlines()[0]}); building a new one")
    say("building the demo directory (slapd)")
    seeded.unlink(missing_ok=True)
    slapd = start_slapd(paths.server_dir("slapd"), base_dn=BASE_DN, stop_at_exit=False)
    try:
        # Added online (not slapadd-ed) so that the memberof overlay fills memberOf, as a live directory does.
        slapd.ldapadd(demo_ldif(BASE_DN, MAIL_DOMAIN))
    except RuntimeError:
        slapd.stop()
        raise
    seeded.touch()
    return slapd


def up(paths: Paths, host: str, requested_port: int | None) -> int:
    """Start the demo (or describe it when it already runs)."""
    state = component_state(paths)
    if all(state.values()) and paths.info.exists() and paths.password.exists():
        info = json.loads(paths.info.read_text())
        ignored = f" (--port {requested_port} ignored)" if requested_port not in (None, info["port"]) else ""
        say(f"already running{ignored}")
        say_block(summary(info, paths.password.read_text().strip(), paths.var_dir))
        return 0
    if any(state.values()):
        running = ", ".join(name for name, pid in state.items() if pid)
        say(f"only partly running ({running}); stopping it to start afresh")
        down(paths, quiet=True)

    check_loopback(host)
    port = choose_port(host, requested_port)
    started = time.monotonic()
    paths.logs.mkdir(parents=True, exist_ok=True)
    servers: list[SlapdInstance | RedisInstance] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        slapd = start_directory(paths)
        servers.append(slapd)
        say("starting Redis")
        redis = start_redis(paths.server_dir("redis"), stop_at_exit=False)
        servers.append(redis)
        write_json(paths.pids, {"slapd": slapd.pid, "redis": redis.pid})

        env = child_env(paths.var_dir, redis.url, host)
        say("migrating the database")
        manage("manage.py migrate", env, "migrate", "--noinput")
        say("collecting static files")
        manage("manage.py collectstatic", env, "collectstatic", "--noinput")
        password, new_password = ensure_password(paths)
        result = setup_database(env, password, reset_passwords=new_password, slapd=slapd)
        if result["domain_created"]:
            say(f"created the domain {MAIL_DOMAIN}")
        if result["users_created"]:
            say(f"created the users {', '.join(result['users_created'])}")
        if result["passwords_reset"]:
            say(f"set a new password for {', '.join(result['passwords_reset'])} ({paths.password} was new)")
        if result["directory_configured"]:
            say(f"pointed {MAIL_DOMAIN}'s Directory Service at the demo directory")
        say("synchronizing the demo directory")
        manage("the first synchronization", env, "directory_sync", MAIL_DOMAIN)

        say(f"starting gunicorn on {url_host(host)}:{port}, the Celery worker, beat and the watcher")
        celery = executable("celery")
        worker_log_offset = paths.log("worker").stat().st_size if paths.log("worker").exists() else 0
        commands = {
            "web": [
                executable("gunicorn"), "icewarp_admin.wsgi:application",
                "--bind", f"{url_host(host)}:{port}", "--workers", "2", "--timeout", "60",
                "--access-logfile", "-", "--no-control-socket",
            ],
            "worker": [
                celery, "-A", "icewarp_admin", "worker", "--loglevel", "INFO", "--concurrency", "2",
                "--queues", "celery,schedule",
            ],
            # Beat, and the one slot of the schedule's queue (the tick, the reaper) that syncs never occupy:
            # the compose file runs that slot as its scheduler service, the demo keeps to three processes.
            "beat": [
                celery, "-A", "icewarp_admin", "worker", "--beat", "--loglevel", "INFO", "--concurrency", "1",
                "--queues", "schedule", "--hostname", "scheduler@%h", "--schedule", str(paths.beat_schedule),
            ],
            # Changes the demo directory pushes (syncrepl) are applied within a second or two.
            "watcher": [python(), str(ROOT / "manage.py"), "directory_watch"],
        }  # fmt: skip
        for name, cmd in commands.items():
            procs[name] = spawn(name, cmd, env, paths.log(name))
            write_json(paths.pids, {**read_pids(paths), name: procs[name].pid})

        url = f"http://{url_host(host)}:{port}/"
        wait_until(
            f"{url}login/ to answer 200", lambda: login_page_ok(f"{url}login/"), procs, paths, WEB_TIMEOUT
        )
        wait_until(
            "the Celery worker to be ready",
            lambda: log_contains(paths.log("worker"), worker_log_offset, " ready."),
            procs,
            paths,
            WORKER_TIMEOUT,
        )
        check_running(procs, paths, "starting")  # beat has had the worker's start-up time to fail

        info = {
            "url": url,
            "host": host,
            "port": port,
            "domain": MAIL_DOMAIN,
            "logins": DEMO_USERS,
            "admin_username": "admin",
            "password_file": str(paths.password),
            "ldap_url": slapd.ldap_url,
            "ldaps_url": slapd.ldaps_url,
            "base_dn": BASE_DN,
            "people_dn": f"ou=People,{BASE_DN}",
            "groups_dn": f"ou=Groups,{BASE_DN}",
            "people_count": len(demo_people(BASE_DN, MAIL_DOMAIN)),
            "mail_user": next(
                (person.mails[0] for person in demo_people(BASE_DN, MAIL_DOMAIN) if person.mails), ""
            ),
            "bind_dn": slapd.reader_dn,
            "bind_password": slapd.reader_password,
            "ca_cert": str(slapd.ca_cert),
            "broker_url": redis.url,
            "var_dir": str(paths.var_dir),
            "logs_dir": str(paths.logs),
            "state_file": str(paths.info),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(paths.info, info)
    except (RuntimeError, OSError, ValueError) as exc:  # DemoError and the devservers' errors
        say(str(exc), error=True)
        say("stopping what was started")
        abort(paths, procs, servers)
        return 1
    except KeyboardInterrupt:
        say("interrupted; stopping what was started")
        abort(paths, procs, servers)
        return 130
    say(f"up in {time.monotonic() - started:.1f} s")
    say_block(summary(info, password, paths.var_dir))
    return 0


def abort(
    paths: Paths,
    procs: dict[str, subprocess.Popen[bytes]],
    servers: list[SlapdInstance | RedisInstance],
) -> None:
    """Stop the processes and servers a failed up started."""
    stop_app_processes({name: proc.pid for name, proc in procs.items()})
    for proc in procs.values():
        proc.poll()  # reap
    for server in reversed(servers):
        server.stop()
    paths.pids.unlink(missing_ok=True)


def down(paths: Paths, quiet: bool = False) -> int:
    """Stop web, worker and beat, then slapd and Redis; fine if nothing runs."""
    stopped = stop_app_processes(read_pids(paths))
    for name in SERVERS:
        server = load_server(paths, name)
        if server is not None and server.running:
            server.stop()
            stopped.append(name)
    paths.pids.unlink(missing_ok=True)
    paths.info.unlink(missing_ok=True)
    if not quiet:
        say(f"stopped {', '.join(stopped)}" if stopped else f"nothing was running ({paths.root})")
    return 0


def status(paths: Paths) -> int:
    """Print what runs; exit 0 if everything does, 3 otherwise."""
    state = component_state(paths)
    for name, pid in state.items():
        print(f"{name:<7} {'running, pid ' + str(pid) if pid else 'stopped'}")
    if all(state.values()) and paths.info.exists():
        info = json.loads(paths.info.read_text())
        print(f"url     {info['url']}\nldap    {info['ldap_url']}\nstate   {paths.info}")
        return 0
    return 3


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m devservers.demo", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--var-dir", type=Path, default=None, help="state and database directory ($VAR_DIR, <repo>/var)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="loopback address for the web server (default 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=int, default=None, help="web port (default: $PORT, else 8000 if free, else any)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = parser().parse_args(argv)
    var_dir: Path = args.var_dir.resolve() if args.var_dir else default_var_dir()
    paths = Paths(var_dir)
    try:
        if args.action == "up":
            return up(paths, args.host, args.port)
        if args.action == "down":
            return down(paths)
        return status(paths)
    except DemoError as exc:
        say(str(exc), error=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
