"""Synchronizing a large directory, measured against the targets of the sync engine; writes RESULTS.md.

Scenarios (each in a process of its own, see sync_scenarios.py):
- generic: slapd with 100,000 people, 10,000 groups and 500,000 memberships (BENCH_SYNC_PEOPLE, _GROUPS,
  _MEMBERS) on the database DATABASE_URL names (PostgreSQL under `make bench`): the raw reads of the same
  entries (ldapsearch, python-ldap, ldap3), the first run, a run with nothing changed, 100 mixed changes, and
  runs after the server restarted;
- sqlite: the embedded default, a first run of 10,000 people (BENCH_SYNC_SQLITE_PEOPLE);
- ad: a Samba AD DC with 10,000 users (BENCH_SYNC_AD_PEOPLE; provisioned once, kept under var/bench): the
  first run and a run with nothing changed. BENCH_SYNC_SCENARIOS picks some (comma-separated).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SCENARIOS = ("generic", "sqlite", "ad")


def _run(name: str) -> dict[str, Any] | None:
    output = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".json")[1])
    print(f"=== sync benchmark: {name}", flush=True)
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.sync_scenarios", name, str(output)], cwd=ROOT
    )
    if completed.returncode != 0:
        print(f"    {name}: failed (exit {completed.returncode})", flush=True)
        return None
    return json.loads(output.read_text())


def machine() -> dict[str, str]:
    """Cores, memory and CPU of this machine, as RESULTS.md reports them."""
    memory = next(
        (
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "0",
    )
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )  # fmt: skip
    postgres = ""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        found = subprocess.run(["psql", url, "-tAc", "SHOW server_version"], capture_output=True, text=True)
        postgres = found.stdout.strip().split()[0] if found.returncode == 0 and found.stdout.strip() else ""
    slapd = subprocess.run(["slapd", "-VV"], capture_output=True, text=True)
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{int(memory) / 1024 / 1024:.1f} GiB",
        "cpu": model,
        "python": platform.python_version(),
        "postgresql": postgres,
        "openldap": ((slapd.stderr or slapd.stdout).split("slapd ", 1)[-1].split() or ["?"])[0],
    }


def verdict(value: float, must: float, aim: float) -> str:
    if value <= aim:
        return "met (aim too)"
    if value <= must:
        return "met"
    return "**NOT met**"


def report(results: dict[str, Any], facts: dict[str, str]) -> str:
    """RESULTS.md: every figure next to the raw reads, with the targets and whether each is met."""
    lines = [
        "# Sync benchmark results",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {facts['cores']} "
        f"cores, {facts['memory']} memory ({facts['cpu']}); Python {facts['python']}, PostgreSQL "
        f"{facts['postgresql'] or '—'}, OpenLDAP {facts['openldap']}.",
        "",
        "Each run's time is its own (claim to finish, as the run page shows); memory is the peak resident "
        "set of the process that ran it (`manage.py directory_sync`, Django included). Phases are in "
        "seconds. After the first run the tables are vacuumed and analyzed, as autovacuum leaves them.",
        "",
    ]
    generic = results.get("generic")
    if generic:
        shape = generic["shape"]
        raw = generic["raw_reads"]
        ldap3 = raw["ldap3"]
        lines += [
            f"## Generic LDAP (slapd, syncrepl), {generic['database']}",
            "",
            f"{shape['people']:,} people, {shape['groups']:,} groups, "
            f"{shape['groups'] * shape['members_per_group']:,} memberships. Raw reads of the same entries "
            "and "
            f"attributes the sync asks for: `ldapsearch` {raw['ldapsearch']:.1f} s, python-ldap "
            f"{raw['python-ldap']:.1f} s, ldap3 {ldap3:.1f} s.",
            "",
            "| run | seconds | × ldap3 read | peak memory | how changes were found | phases |",
            "|---|---|---|---|---|---|",
        ]
        for run in generic["runs"]:
            phases = ", ".join(f"{name} {value:.2f}" for name, value in run["phases"].items())
            lines.append(
                f"| {run['label']} | {run['seconds']:.2f} | {run['seconds'] / ldap3:.2f} | {run['peak_mb']} "
                "MB | "
                f"{run['tracking']} | {phases} |"
            )
        first, unchanged, changes = generic["runs"][0], generic["runs"][1], generic["runs"][2]
        rows = 2 * shape["people"] + 2 * shape["groups"] + shape["groups"] * shape["members_per_group"]
        peak = max(run["peak_mb"] for run in generic["runs"])
        lines += [
            "",
            "| target | must | aim | measured | verdict |",
            "|---|---|---|---|---|",
            f"| first run | ≤ 60 s and ≤ 2 × ldap3 read ({2 * ldap3:.1f} s) | ≤ 15 s | "
            f"{first['seconds']:.1f} s | "
            f"{verdict(first['seconds'], min(60.0, 2 * ldap3), 15.0)} |",
            f"| nothing changed | ≤ 2 s | ≤ 0.5 s | {unchanged['seconds']:.2f} s | "
            f"{verdict(unchanged['seconds'], 2.0, 0.5)} |",
            f"| 100 mixed changes | ≤ 2 s | ≤ 0.5 s | {changes['seconds']:.2f} s | "
            f"{verdict(changes['seconds'], 2.0, 0.5)} |",
            f"| peak memory of the sync | ≤ 400 MB | ≤ 200 MB | {peak} MB | {verdict(peak, 400, 200)} |",
            "",
            f"Where the first run's time goes (its phases above): **apply** is PostgreSQL's work on {rows:,} "
            "new rows: COPY, the trigram indexes of the account search, and at commit the deferred "
            "foreign-key checks of every row (about 8 s of the apply when measured apart); **read** is "
            "mapping each entry by IceWarp's rules in Python (the raw python-ldap read above is the floor); "
            "**record** writes an event per object, field by field. Memory: Django and the libraries take "
            "about 100 MB before the run; the mapped people, the plan and the memberships the rest.",
            "",
        ]
    sqlite = results.get("sqlite")
    if sqlite:
        run = sqlite["runs"][0]
        phases = ", ".join(f"{name} {value:.2f}" for name, value in run["phases"].items())
        lines += [
            f"## SQLite (the embedded default), {sqlite['shape']['people']:,} people",
            "",
            f"First run: {run['seconds']:.1f} s, peak {run['peak_mb']} MB ({phases}). Target ≤ 15 s (aim ≤ "
            "5 s): "
            f"{verdict(run['seconds'], 15.0, 5.0)}.",
            "",
        ]
    ad = results.get("ad")
    if ad:
        lines += [
            f"## Active Directory (Samba 4 DC, USN tracking), {ad['people']:,} users, {ad['database']}",
            "",
            "| run | seconds | peak memory | how changes were found | phases |",
            "|---|---|---|---|---|",
        ]
        for run in ad["runs"]:
            phases = ", ".join(f"{name} {value:.2f}" for name, value in run["phases"].items())
            lines.append(
                f"| {run['label']} | {run['seconds']:.2f} | {run['peak_mb']} MB | {run['tracking']} | "
                f"{phases} |"
            )
        unchanged = ad["runs"][1]["seconds"]
        lines += [
            "",
            f"Nothing changed: {unchanged:.2f} s against ≤ 2 s (aim ≤ 0.5 s): "
            f"{verdict(unchanged, 2.0, 0.5)}. "
            "Samba's adds slow down as its domain grows (each rewrites index lists that hold every user), so "
            "the benchmark provisions 10,000 users once (about two minutes) and keeps them under var/bench; "
            "`BENCH_SYNC_AD_PEOPLE` sets another size. A run that finds nothing changed makes three searches "
            "that return nothing and loads nothing but two counts, whatever the size.",
            "",
        ]
    missing = [name for name in SCENARIOS if name not in results]
    if missing:
        lines += [f"Not run or failed: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def main() -> None:
    wanted = [name.strip() for name in os.environ.get("BENCH_SYNC_SCENARIOS", ",".join(SCENARIOS)).split(",")]
    results = {name: result for name in wanted if name in SCENARIOS and (result := _run(name)) is not None}
    text = report(results, machine())
    RESULTS.write_text(text)
    print(f"\n{text}\nWritten to {RESULTS.relative_to(ROOT)}", flush=True)
    if len(results) < len(wanted):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
