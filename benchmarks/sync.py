"""Synchronizing a large directory: first run (everything created) and a run over an unchanged directory.

Goals on the 2-core project machine: 100,000 people in under a minute, a no-change run in under 2 seconds.
BENCH_SYNC_PEOPLE sets the size (default 100,000); DATABASE_URL picks PostgreSQL (default: SQLite).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks._django import setup_benchmark_database
from devservers.ldif import people_ldif

DEPARTMENTS = ["Sales", "Engineering", "Support", "Finance", "Legal", "Operations"]


def people_in_departments(count: int) -> str:
    """count people spread over six OUs, with the attributes the default vCard map reads."""
    parts = []
    for index, department in enumerate(DEPARTMENTS):

        def more(number: int, department: str = department, index: int = index) -> list[tuple[str, str]]:
            return [
                ("givenName", f"Person{number}"),
                ("displayName", f"Person {number} {department}"),
                ("mail", f"person.{number}.{department.lower()}@example.com"),
                ("title", f"{department} staff"),
                ("telephoneNumber", f"+1 555 {index}{number:06d}"),
            ]

        size = count // 6 + (index < count % 6)
        parts.append(
            people_ldif(size, parent=f"ou={department},dc=example,dc=com", prefix=f"u{index}x", extra=more)
        )
    return "".join(parts)


def main() -> None:
    count = int(os.environ.get("BENCH_SYNC_PEOPLE", "100000"))
    vendor = setup_benchmark_database("sync")
    from devservers.slapd import start_slapd
    from directory_sync.models import SyncRun
    from directory_sync.services.settings import save_directory_settings
    from directory_sync.services.sync import run_now
    from icewarp_admin.mailserver.models import Account
    from icewarp_admin.mailserver.services.domains import create_domain

    folder = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    units = "".join(
        f"dn: ou={name},dc=example,dc=com\nobjectClass: organizationalUnit\nou: {name}\n\n"
        for name in DEPARTMENTS
    )
    started = time.perf_counter()
    server = start_slapd(folder / "slapd", ldifs=[units, people_in_departments(count)])
    print(f"sync [{vendor}]: slapd loaded with {count:,} people in {time.perf_counter() - started:.1f} s")
    # Entries stamped within two seconds of a run's read are read again by the next run (modifyTimestamp has
    # one-second resolution); a directory loaded a moment ago would make the no-change run look like a change.
    time.sleep(2.5)
    try:
        domain = create_domain(name="example.com")
        save_directory_settings(
            domain=domain,
            values={"active": True, "host": server.ldap_url, "bind_user": server.admin_dn,
                    "base_dn": "dc=example,dc=com", "server_type": "generic", "login_source": "dn",
                    "page_size": 1000},
            new_password=server.admin_password,
        )  # fmt: skip

        def timed_run(label: str) -> SyncRun:
            begin = time.perf_counter()
            run = run_now(domain=domain, trigger=SyncRun.Trigger.COMMAND, requested_by="benchmark").run
            seconds = time.perf_counter() - begin
            accounts = run.counts.get("accounts", {})
            rate = count / seconds if seconds else 0
            print(f"  {label:24s} {seconds:7.1f} s  ({rate:,.0f} entries/s)  {run.status}  {accounts}")
            assert run.status == "succeeded", run.errors
            return run

        timed_run("first run (all new)")
        assert Account.objects.count() == count
        timed_run("no-change run")
        Account.objects.filter(pk__in=list(Account.objects.values_list("pk", flat=True)[:100])).update(
            directory_change_stamp=""
        )
        timed_run("100 accounts edited here")
    finally:
        server.stop()
