"""A Samba AD DC for the benchmark: users in units of 500, mail-enabled groups; provisioned once per size and
kept under var/bench.

Samba's adds slow down as the domain grows (every add rewrites index lists that hold every user: 2.4 s for the
first thousand, 7 s for the fourth here), so the default is 10,000 users, added a thousand per transaction.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from devservers.samba import SambaInstance, start_samba

ROOT = Path(__file__).resolve().parent.parent
BASE = "DC=example,DC=test"
PEOPLE_OU = f"OU=BenchPeople,{BASE}"
GROUPS_OU = f"OU=BenchGroups,{BASE}"
# UF_NORMAL_ACCOUNT | UF_PASSWD_NOTREQD: an enabled user without a password (no password hashing per entry).
UAC_NORMAL_NO_PASSWORD = 544
UNIT_SIZE = 500
BATCH = 1000


def person_dn(number: int) -> str:
    return f"CN=b{number:06d},OU=U{number // UNIT_SIZE:03d},{PEOPLE_OU}"


def _people(start: int, count: int) -> str:
    entries = []
    for number in range(start, start + count):
        if number % UNIT_SIZE == 0:
            entries.append(
                f"dn: OU=U{number // UNIT_SIZE:03d},{PEOPLE_OU}\nobjectClass: organizationalUnit\n"
            )
        name = f"b{number:06d}"
        entries.append(
            f"dn: {person_dn(number)}\nobjectClass: user\nsAMAccountName: {name}\n"
            f"userPrincipalName: {name}@example.test\nmail: {name}@example.test\ngivenName: Bench\n"
            f"sn: User {number}\ndisplayName: Bench User {number}\ntitle: Staff\n"
            f"userAccountControl: {UAC_NORMAL_NO_PASSWORD}\n"
        )
    return "\n".join(entries)


def _groups(people: int, groups: int, members: int) -> str:
    chooser = random.Random(5)
    entries = [f"dn: {GROUPS_OU}\nobjectClass: organizationalUnit\n"]
    for number in range(groups):
        chosen = chooser.sample(range(people), min(members, people))
        entries.append(
            f"dn: CN=bgroup{number:05d},{GROUPS_OU}\nobjectClass: group\nsAMAccountName: bgroup{number:05d}\n"
            f"mail: bgroup{number:05d}@example.test\n"
            + "".join(f"member: {person_dn(member)}\n" for member in chosen)
        )
    return "\n".join(entries)


def start_bench_samba(people: int, *, groups: int | None = None, members: int = 50) -> SambaInstance:
    """The DC with `people` users and people/100 groups of `members` each (made once, then restarted)."""
    group_count = groups if groups is not None else max(1, people // 100)
    version = hashlib.sha256(f"{people} {group_count} {members} {UNIT_SIZE} v2".encode()).hexdigest()[:16]

    def seed(samba: SambaInstance) -> None:
        samba.ldbadd(f"dn: {PEOPLE_OU}\nobjectClass: organizationalUnit\n")
        for start in range(0, people, BATCH):
            samba.ldbadd(_people(start, min(BATCH, people - start)))
        samba.ldbadd(_groups(people, group_count, members))

    return start_samba(ROOT / "var" / "bench" / f"samba-{people}", seed=seed, seed_version=version)
