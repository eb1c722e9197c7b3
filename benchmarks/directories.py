"""The directories the sync benchmark reads: people in departments, groups of random members, changes; and the
raw reads (ldapsearch, ldap3, python-ldap) of the same entries the sync asks for."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BASE = "dc=example,dc=com"
DEPARTMENTS = ("Sales", "Engineering", "Support", "Finance", "Legal", "Operations")
GROUPS_OU = f"ou=groups,{BASE}"
# People locked by the password policy overlay leave the user filter: how "disable" looks on OpenLDAP.
USER_FILTER = "(&(objectClass=inetOrgPerson)(!(pwdAccountLockedTime=*)))"
GROUP_FILTER = "(objectClass=groupOfNames)"


def person_dn(number: int) -> str:
    return f"uid=u{number:06d},ou={DEPARTMENTS[number % len(DEPARTMENTS)]},{BASE}"


def group_dn(number: int) -> str:
    return f"cn=group{number:05d},{GROUPS_OU}"


@dataclass(frozen=True)
class Shape:
    people: int
    groups: int
    members_per_group: int

    @property
    def memberships(self) -> int:
        return self.groups * self.members_per_group


def group_members(shape: Shape, *, seed: int = 7) -> list[list[int]]:
    """The people each group holds (the same for the same seed)."""
    chooser = random.Random(seed)
    size = min(shape.members_per_group, shape.people)
    return [chooser.sample(range(shape.people), size) for _ in range(shape.groups)]


def write_ldif(path: Path, shape: Shape) -> None:
    """Departments, people with the attributes the default vCard map reads, mail-enabled groups."""
    with path.open("w") as out:
        for name in (*DEPARTMENTS, "groups"):
            out.write(f"dn: ou={name},{BASE}\nobjectClass: organizationalUnit\nou: {name}\n\n")
        for number in range(shape.people):
            department = DEPARTMENTS[number % len(DEPARTMENTS)]
            uid = f"u{number:06d}"
            out.write(
                f"dn: {person_dn(number)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Person {number}\n"
                f"sn: Person\ngivenName: P{number}\ndisplayName: Person {number} {department}\n"
                f"mail: {uid}@example.com\ntitle: {department} staff\n"
                f"telephoneNumber: +1 555 {number:07d}\n\n"
            )
        for number, members in enumerate(group_members(shape)):
            out.write(
                f"dn: {group_dn(number)}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\n"
                f"cn: group{number:05d}\nmail: group{number:05d}@example.com\n"
            )
            out.write("".join(f"member: {person_dn(member)}\n" for member in members))
            out.write("\n")


def mixed_changes(shape: Shape, *, count: int = 100, seed: int = 11) -> str:
    """count changes in five equal parts as LDIF: edits, renames, disables, deletes, and memberships (half the
    groups gain a member, half lose one)."""
    part = count // 5
    chooser = random.Random(seed)
    chosen = chooser.sample(range(shape.people), 4 * part)
    touched = set(chosen)
    edits, renames, disables, deletes = (chosen[i * part : (i + 1) * part] for i in range(4))
    blocks = []
    for number in edits:
        blocks.append(
            f"dn: {person_dn(number)}\nchangetype: modify\nreplace: title\ntitle: Promoted\n-\n"
            f"replace: telephoneNumber\ntelephoneNumber: +1 555 9{number:06d}\n-\n"
        )
    for number in renames:
        new_uid = f"r{number:06d}"
        parent = person_dn(number).split(",", 1)[1]
        blocks.append(
            f"dn: {person_dn(number)}\nchangetype: modrdn\nnewrdn: uid={new_uid}\ndeleteoldrdn: 1\n\n"
            f"dn: uid={new_uid},{parent}\nchangetype: modify\nreplace: mail\nmail: {new_uid}@example.com\n-\n"
        )
    for number in disables:
        blocks.append(
            f"dn: {person_dn(number)}\nchangetype: modify\nadd: pwdAccountLockedTime\n"
            "pwdAccountLockedTime: 000001010000Z\n-\n"
        )
    blocks += [f"dn: {person_dn(number)}\nchangetype: delete\n" for number in deletes]
    members = group_members(shape)
    for index, number in enumerate(chooser.sample(range(shape.groups), part)):
        if index % 2:
            member = next(member for member in members[number] if member not in touched)
            action = "delete"
        else:
            candidates = chooser.sample(range(shape.people), 50)
            member = next(item for item in candidates if item not in touched and item not in members[number])
            action = "add"
        blocks.append(
            f"dn: {group_dn(number)}\nchangetype: modify\n{action}: member\nmember: {person_dn(member)}\n-\n"
        )
    return "\n".join(blocks)


def timed_ldapsearch(
    url: str, bind_dn: str, password: str, searches: Sequence[tuple[str, list[str]]]
) -> float:
    """OpenLDAP's C client: every entry of each (filter, attributes), paged by 1,000, to /dev/null."""
    started = time.perf_counter()
    for search_filter, attributes in searches:
        subprocess.run(
            ["ldapsearch", "-x", "-LLL", "-H", url, "-D", bind_dn, "-w", password, "-b", BASE,
             "-E", "pr=1000/noprompt", search_filter, *attributes],
            stdout=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    return time.perf_counter() - started


def timed_ldap3(
    url: str, bind_dn: str, password: str, searches: Sequence[tuple[str, list[str]]]
) -> tuple[float, int]:
    """ldap3's own paged search (no schema read), as a program using the library plainly would."""
    from ldap3 import NONE, SUBTREE, Connection, Server

    connection = Connection(Server(url, get_info=NONE), bind_dn, password, auto_bind=True, read_only=True)
    started, count = time.perf_counter(), 0
    for search_filter, attributes in searches:
        for _ in connection.extend.standard.paged_search(
            BASE, search_filter, SUBTREE, attributes=attributes, paged_size=1000, generator=True
        ):
            count += 1
    connection.unbind()
    return time.perf_counter() - started, count


def timed_python_ldap(
    url: str, bind_dn: str, password: str, searches: Sequence[tuple[str, list[str]]]
) -> tuple[float, int]:
    """python-ldap's paged search, one message at a time."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    connection = ldap.initialize(url)
    connection.simple_bind_s(bind_dn, password)
    started, count = time.perf_counter(), 0
    for search_filter, attributes in searches:
        paging = SimplePagedResultsControl(True, size=1000, cookie=b"")
        while True:
            message = connection.search_ext(
                BASE, ldap.SCOPE_SUBTREE, search_filter, attributes, serverctrls=[paging]
            )
            while True:
                kind, data, _, controls = connection.result3(message, all=0)
                if kind == ldap.RES_SEARCH_RESULT:
                    break
                count += len(data)
            cookie = next(
                (control.cookie for control in controls if control.controlType == paging.controlType), b""
            )
            if not cookie:
                break
            paging.cookie = cookie
    connection.unbind_s()
    return time.perf_counter() - started, count
