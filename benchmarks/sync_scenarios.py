"""One scenario of the sync benchmark in a process of its own (its own database): python -m
benchmarks.sync_scenarios NAME RESULT.json. benchmarks/sync.py runs them and writes RESULTS.md.

Each synchronization runs as `manage.py directory_sync --json` in a child process: its duration is the run's
own (from claim to finish, as the run page shows it), its memory the child's peak resident set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._django import setup_benchmark_database
from benchmarks.directories import (
    BASE,
    GROUP_FILTER,
    USER_FILTER,
    Shape,
    mixed_changes,
    timed_ldap3,
    timed_ldapsearch,
    timed_python_ldap,
    write_ldif,
)

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "example.com"


def peak_memory_sync(label: str, domain: str = DOMAIN) -> dict[str, Any]:
    """One run of `manage.py directory_sync DOMAIN --json` in a child process: its outcome, and the child's
    peak resident set (measured by wait4: Popen.wait would reap the child first)."""
    env = {**os.environ, "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "icewarp_admin.settings"}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "directory_sync", domain, "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    stdout = child.stdout.read().decode()
    stderr = child.stderr.read().decode()
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    wall = time.perf_counter() - started
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"{label}: the run printed no JSON:\n{stdout}\n{stderr[-3000:]}") from None
    if summary["status"] != "succeeded":
        raise RuntimeError(f"{label}: {summary['status']}: {summary['errors']}")
    peak_mb = usage.ru_maxrss / 1024
    print(
        f"  {label:34s} {summary['duration_s']:7.2f} s  peak {peak_mb:5.0f} MB  [{summary['tracking']}]",
        flush=True,
    )
    print(f"  {'':34s} phases: {summary['phases']}", flush=True)
    return {
        "label": label,
        "seconds": summary["duration_s"],
        "process_seconds": round(wall, 2),
        "peak_mb": round(peak_mb),
        "phases": summary["phases"],
        "tracking": summary["tracking"],
        "accounts": summary["accounts"],
        "groups": summary["groups"],
        "warnings": summary["warnings"][:3],
    }


def settle_tables() -> None:
    """VACUUM ANALYZE (PostgreSQL) or ANALYZE (SQLite), as autovacuum leaves the tables after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


def configure_generic(url: str, admin_dn: str, password: str) -> Any:
    from directory_sync.services.settings import save_directory_settings
    from icewarp_admin.mailserver.services.domains import create_domain

    domain = create_domain(name=DOMAIN)
    settings, _ = save_directory_settings(
        domain=domain,
        values={"active": True, "host": url, "bind_user": admin_dn, "base_dn": BASE, "server_type": "generic",
                "login_source": "dn", "page_size": 1000, "account_filter": USER_FILTER,
                "group_filter": GROUP_FILTER, "allow_plain_bind": True,
                # IceWarp's removal at once, as RESULTS.md measured it (REMOVALGRACEDAYS 0).
                "removal_grace_days": 0},
        new_password=password,
    )  # fmt: skip
    return settings


def searches_of(settings: Any) -> list[tuple[str, list[str]]]:
    """The searches a full read makes, with the attributes the sync asks for."""
    from directory_sync.sync.config import build_config

    config = build_config(settings)
    return [
        (config.account_filter, config.account_attributes()),
        (config.group_filter, config.group_attributes()),
    ]


def generic(shape: Shape) -> dict[str, Any]:
    """slapd with the shape: raw reads, then the first run, no change, 100 changes, a restart of the server"""
    vendor = setup_benchmark_database("sync")
    from devservers.slapd import start_slapd

    folder = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    os.environ["MAIL_ROOT"] = str(folder / "mail")
    ldif = folder / "directory.ldif"
    started = time.perf_counter()
    write_ldif(ldif, shape)
    server = start_slapd(folder / "slapd", ldifs=[ldif], size_limit=0)
    load_s = time.perf_counter() - started
    print(
        f"sync [{vendor}]: slapd loaded with {shape.people:,} people, {shape.groups:,} groups and "
        f"{shape.memberships:,} memberships in {load_s:.1f} s",
        flush=True,
    )
    result: dict[str, Any] = {"database": vendor, "shape": shape.__dict__, "load_s": round(load_s, 1)}
    try:
        settings = configure_generic(server.ldap_url, server.admin_dn, server.admin_password)
        searches = searches_of(settings)
        entries = shape.people + shape.groups
        raw = {
            "ldapsearch": timed_ldapsearch(server.ldap_url, server.admin_dn, server.admin_password, searches)
        }
        seconds, count = timed_python_ldap(server.ldap_url, server.admin_dn, server.admin_password, searches)
        assert count == entries, (count, entries)
        raw["python-ldap"] = seconds
        seconds, count = timed_ldap3(server.ldap_url, server.admin_dn, server.admin_password, searches)
        assert count == entries, (count, entries)
        raw["ldap3"] = seconds
        result["raw_reads"] = {name: round(value, 2) for name, value in raw.items()}
        print(f"  raw reads of {entries:,} entries: " + ", ".join(f"{k} {v:.2f} s" for k, v in raw.items()))
        runs = [peak_memory_sync("first run (all new)")]
        # The steady state the next runs meet in production: autovacuum has been through the new rows (else it
        # runs during the next runs and the figures measure it).
        settle_tables()
        runs.append(peak_memory_sync("nothing changed"))
        server.ldapmodify(mixed_changes(shape))
        runs.append(peak_memory_sync("100 mixed changes"))
        runs.append(peak_memory_sync("nothing changed, again"))
        server.stop()
        # syncprov's session log lives in memory: changes made now come with the present phase.
        server.restart()
        server.ldapmodify(mixed_changes(shape, count=10, seed=12))
        runs.append(peak_memory_sync("10 changes after a server restart"))
        result["runs"] = runs
    finally:
        server.stop()
    return result


def sqlite_small(shape: Shape) -> dict[str, Any]:
    """The embedded default: SQLite, a first run of a smaller directory."""
    os.environ.pop("DATABASE_URL", None)
    result = generic_first_only(shape, label="first run (all new), SQLite")
    return result


def generic_first_only(shape: Shape, *, label: str) -> dict[str, Any]:
    vendor = setup_benchmark_database("sync_small")
    from devservers.slapd import start_slapd

    folder = Path(tempfile.mkdtemp(prefix="bench-sync-small-"))
    os.environ["MAIL_ROOT"] = str(folder / "mail")
    ldif = folder / "directory.ldif"
    write_ldif(ldif, shape)
    server = start_slapd(folder / "slapd", ldifs=[ldif], size_limit=0)
    try:
        configure_generic(server.ldap_url, server.admin_dn, server.admin_password)
        print(f"sync [{vendor}]: {shape.people:,} people, {shape.groups:,} groups", flush=True)
        return {"database": vendor, "shape": shape.__dict__, "runs": [peak_memory_sync(label)]}
    finally:
        server.stop()


def active_directory(people: int) -> dict[str, Any]:
    """A Samba DC with `people` users (provisioned once, kept under var/bench): first run and no change."""
    vendor = setup_benchmark_database("sync_ad")
    from benchmarks.ad_directory import start_bench_samba
    from directory_sync.services.settings import save_directory_settings
    from icewarp_admin.mailserver.services.domains import create_domain

    folder = Path(tempfile.mkdtemp(prefix="bench-sync-ad-"))
    os.environ["MAIL_ROOT"] = str(folder / "mail")
    started = time.perf_counter()
    samba = start_bench_samba(people)
    print(
        f"sync [{vendor}]: Samba AD DC with {people:,} users ready in {time.perf_counter() - started:.1f} s"
    )
    try:
        domain = create_domain(name="example.test")
        save_directory_settings(
            domain=domain,
            values={"active": True, "host": samba.ldaps_url, "bind_user": samba.admin_upn,
                    "base_dn": samba.base_dn, "server_type": "ad", "page_size": 1000,
                    "ca_bundle": samba.ca_cert.read_text(), "account_filter": "(objectClass=user)",
                    "group_filter": "(&(objectClass=group)(mail=*))", "removal_grace_days": 0},
            new_password=samba.admin_password,
        )  # fmt: skip
        runs = [
            peak_memory_sync("AD first run (all new)", "example.test"),
            peak_memory_sync("AD nothing changed", "example.test"),
        ]
        return {"database": vendor, "people": people, "runs": runs}
    finally:
        samba.stop()


def main() -> None:
    name, output = sys.argv[1], Path(sys.argv[2])
    people = int(os.environ.get("BENCH_SYNC_PEOPLE", "100000"))
    shape = Shape(
        people=people,
        groups=int(os.environ.get("BENCH_SYNC_GROUPS", str(max(1, people // 10)))),
        members_per_group=int(os.environ.get("BENCH_SYNC_MEMBERS", "50")),
    )
    if name == "generic":
        result = generic(shape)
    elif name == "sqlite":
        small = int(os.environ.get("BENCH_SYNC_SQLITE_PEOPLE", "10000"))
        result = sqlite_small(Shape(people=small, groups=max(1, small // 10), members_per_group=50))
    elif name == "ad":
        result = active_directory(int(os.environ.get("BENCH_SYNC_AD_PEOPLE", "10000")))
    else:
        raise SystemExit(f"unknown scenario {name}")
    output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
