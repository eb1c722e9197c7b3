"""A Samba AD DC for the benchmark: users in one OU, mail-enabled groups; provisioned once per size and kept
under var/bench (Samba writes about 200 entries a second: the first provisioning of 20,000 takes minutes)."""

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


def _ldif(people: int, groups: int, members: int) -> str:
    chooser = random.Random(5)
    entries = [
        f"dn: {PEOPLE_OU}\nobjectClass: organizationalUnit\n",
        f"dn: {GROUPS_OU}\nobjectClass: organizationalUnit\n",
    ]
    for number in range(people):
        name = f"b{number:06d}"
        entries.append(
            f"dn: CN={name},{PEOPLE_OU}\nobjectClass: user\nsAMAccountName: {name}\n"
            f"userPrincipalName: {name}@example.test\nmail: {name}@example.test\ngivenName: Bench\n"
            f"sn: User {number}\ndisplayName: Bench User {number}\ntitle: Staff\n"
            f"userAccountControl: {UAC_NORMAL_NO_PASSWORD}\n"
        )
    for number in range(groups):
        chosen = chooser.sample(range(people), min(members, people))
        entries.append(
            f"dn: CN=bgroup{number:05d},{GROUPS_OU}\nobjectClass: group\nsAMAccountName: bgroup{number:05d}\n"
            f"mail: bgroup{number:05d}@example.test\n"
            + "".join(f"member: CN=b{member:06d},{PEOPLE_OU}\n" for member in chosen)
        )
    return "\n".join(entries)


def start_bench_samba(people: int, *, groups: int | None = None, members: int = 50) -> SambaInstance:
    """The DC with `people` users and people/100 groups of `members` each (made once, then restarted)."""
    group_count = groups if groups is not None else max(1, people // 100)
    ldif = _ldif(people, group_count, members)
    version = hashlib.sha256(ldif.encode()).hexdigest()[:16]

    def seed(samba: SambaInstance) -> None:
        samba.ldbadd(ldif)

    folder = ROOT / "var" / "bench" / f"samba-{people}"
    return start_samba(folder, seed=seed, seed_version=version)
