"""A deterministic demo directory: ~40 people in nested OUs, mail-enabled (nested) groups, a posixGroup."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from .ldif import ldif_line

__all__ = ["CONTRACTOR_MAIL_DOMAIN", "DEMO_PASSWORD", "demo_ldif", "demo_people"]

DEMO_PASSWORD = "Demo-pass-1"
CONTRACTOR_MAIL_DOMAIN = "partner.example.net"
DEVELOPERS_GID = 5000


class Person(NamedTuple):
    """One demo person as written to the directory."""

    given: str
    surname: str
    title: str
    description: str = ""
    aliases: tuple[str, ...] = ()  # extra local parts, each an additional mail value


class Unit(NamedTuple):
    """An organizational unit (path from the base, outermost first) and the people in it."""

    path: tuple[str, ...]
    description: str
    people: tuple[Person, ...]
    mail_domain: str | None = None  # None: the demo's mail domain


UNITS: tuple[Unit, ...] = (
    Unit(("People",), "Employees", ()),
    Unit(
        ("People", "Sales"),
        "Sales and customer success",
        (
            Person("Olivia", "Bennett", "Head of Sales", aliases=("sales-lead",)),
            Person("Marcus", "Reyes", "Account Executive"),
            Person("Priya", "Natarajan", "Account Executive", "Covers the DACH region"),
            Person("Hannah", "Schultz", "Sales Development Representative"),
            Person("Daniel", "Okafor", "Regional Sales Manager"),
            Person("Grace", "Liu", "Sales Operations Analyst"),
            Person("Ethan", "Whitaker", "Account Executive", "Works remotely from Lisbon"),
            Person("Fatima", "Haddad", "Customer Success Manager"),
            Person("Liam", "O'Connor", "Sales Engineer"),
        ),
    ),
    Unit(
        ("People", "Engineering"),
        "Product engineering",
        (
            Person("Rebecca", "Thornton", "VP Engineering", aliases=("cto",)),
            Person("Samuel", "Adeyemi", "Engineering Manager"),
            Person("Ingrid", "Larsen", "Staff Engineer"),
        ),
    ),
    Unit(
        ("People", "Engineering", "Backend"),
        "APIs, storage and the mail pipeline",
        (
            Person("Nikolai", "Petrov", "Senior Backend Engineer"),
            Person("Aisha", "Rahman", "Backend Engineer"),
            Person("Jonas", "Becker", "Backend Engineer", "On parental leave until March"),
            Person("Mei", "Tanaka", "Site Reliability Engineer", aliases=("oncall",)),
            Person("Carlos", "Mendoza", "Database Administrator"),
            Person("Rachel", "Goldberg", "Backend Engineer"),
            Person("Victor", "Nguyen", "Staff Engineer"),
        ),
    ),
    Unit(
        ("People", "Engineering", "Frontend"),
        "Web and mobile clients",
        (
            Person("Chloe", "Dubois", "Frontend Lead"),
            Person("Arjun", "Mehta", "Frontend Engineer"),
            Person("Sophie", "Marsh", "UX Engineer"),
            Person("Kenji", "Watanabe", "Frontend Engineer"),
            Person("Emily", "Carter", "Product Designer", "Owns the design system"),
            Person("Mateo", "Rossi", "Frontend Engineer"),
        ),
    ),
    Unit(
        ("People", "Engineering", "Vývoj"),
        "Vývojové centrum Brno",
        (
            Person("Lukáš", "Dvořák", "Vedoucí vývoje", "Tým v Brně"),
            Person("Tereza", "Procházková", "Software Developer"),
            Person("Petr", "Svoboda", "Software Developer"),
        ),
    ),
    Unit(
        ("People", "Support"),
        "Customer support",
        (
            Person("Maria", "Gonzalez", "Support Manager", aliases=("support-lead",)),
            Person("Kevin", "Walsh", "Support Engineer"),
            Person("Aaliyah", "Brooks", "Support Engineer"),
            Person("Benjamin", "Hart", "Tier 2 Support Engineer"),
            Person("Yuki", "Sato", "Support Engineer", "Night shift"),
            Person("Oscar", "Lindqvist", "Support Specialist"),
            Person("Nadia", "Karim", "Documentation Specialist"),
        ),
    ),
    Unit(
        ("People", "Management"),
        "Executive team",
        (
            Person("Catherine", "Blake", "Chief Executive Officer", aliases=("ceo",)),
            Person("Robert", "Kingsley", "Chief Financial Officer"),
            Person("Amelia", "Foster", "Chief Operating Officer"),
            Person("David", "Chen", "Executive Assistant"),
        ),
    ),
    Unit(
        ("Contractors",),
        "External contractors (mail at the partner's domain)",
        (
            Person("Felix", "Wagner", "Contract Backend Developer", "Contract ends in December"),
            Person("Isabella", "Moretti", "Contract Designer"),
            Person("George", "Papadopoulos", "Security Consultant"),
            Person("Zara", "Ahmed", "Contract QA Engineer"),
        ),
        mail_domain=CONTRACTOR_MAIL_DOMAIN,
    ),
    Unit(("Groups",), "Mail groups", ()),
)


def _ascii(text: str) -> str:
    """Strip accents and anything but letters, digits, dots and dashes; lower-case."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum() or ch in ".-")


def uid_of(person: Person) -> str:
    """The login name: given.surname in lower-case ASCII (Lukáš Dvořák -> lukas.dvorak)."""
    return _ascii(f"{person.given}.{person.surname}")


def _ou_dn(path: tuple[str, ...], base_dn: str) -> str:
    """DN of an OU given its path from the base (outermost first)."""
    return ",".join([*(f"ou={name}" for name in reversed(path)), base_dn])


def _ssha(password: str, salt_seed: str) -> str:
    """{SSHA} hash with a salt derived from salt_seed, so that the LDIF is the same on every run."""
    salt = hashlib.sha256(salt_seed.encode()).digest()[:8]
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class DemoPerson(NamedTuple):
    """A person with the facts derived from its unit: DN, uid and mail addresses (primary first)."""

    dn: str
    uid: str
    unit: tuple[str, ...]
    person: Person
    mails: tuple[str, ...]


def demo_people(base_dn: str = "dc=example,dc=com", mail_domain: str = "example.com") -> list[DemoPerson]:
    """Every demo person, in LDIF order."""
    people: list[DemoPerson] = []
    for unit in UNITS:
        domain = unit.mail_domain or mail_domain
        for person in unit.people:
            uid = uid_of(person)
            mails = (f"{uid}@{domain}", *(f"{alias}@{domain}" for alias in person.aliases))
            dn = f"uid={uid},{_ou_dn(unit.path, base_dn)}"
            people.append(DemoPerson(dn, uid, unit.path, person, mails))
    return people


def _entry(dn: str, attrs: list[tuple[str, str]]) -> str:
    """One LDIF entry."""
    return "\n".join([ldif_line("dn", dn), *(ldif_line(a, v) for a, v in attrs)]) + "\n"


def _person_entry(p: DemoPerson, index: int) -> str:
    """The inetOrgPerson entry of a demo person; index makes the numbers unique."""
    person = p.person
    attrs = [
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "inetOrgPerson"),
        ("uid", p.uid),
        ("cn", f"{person.given} {person.surname}"),
        ("sn", person.surname),
        ("givenName", person.given),
        ("displayName", f"{person.given} {person.surname}"),
        *(("mail", mail) for mail in p.mails),
        ("title", person.title),
        ("ou", p.unit[-1]),
        ("employeeNumber", str(1001 + index)),
        ("telephoneNumber", f"+1 555 010 {1000 + index * 7:04d}"),
    ]
    if index % 3 == 0:
        attrs.append(("mobile", f"+1 555 020 {2000 + index * 13:04d}"))
    if person.description:
        attrs.append(("description", person.description))
    attrs.append(("userPassword", _ssha(DEMO_PASSWORD, p.uid)))
    return _entry(p.dn, attrs)


def _group_entry(dn: str, name: str, mail: str, description: str, members: list[str], base_dn: str) -> str:
    """A mail-enabled groupOfNames (extensibleObject carries the mail attribute)."""
    attrs = [
        ("objectClass", "top"),
        ("objectClass", "groupOfNames"),
        ("objectClass", "extensibleObject"),
        ("cn", name),
        ("mail", mail),
        ("description", description),
        ("owner", f"cn=admin,{base_dn}"),
        *(("member", member) for member in members),
    ]
    return _entry(dn, attrs)


def _groups(people: list[DemoPerson], base_dn: str, mail_domain: str) -> Iterator[str]:
    """The group entries: nested groupOfNames (member groups first) and the developers posixGroup."""
    groups_dn = _ou_dn(("Groups",), base_dn)

    def in_unit(*path: str) -> list[DemoPerson]:
        return [p for p in people if p.unit == path]

    def gdn(name: str) -> str:
        return f"cn={name},{groups_dn}"

    contractors = {p.uid: p.dn for p in in_unit("Contractors")}
    backend = [p.dn for p in in_unit("People", "Engineering", "Backend")] + [contractors["felix.wagner"]]
    frontend = [p.dn for p in in_unit("People", "Engineering", "Frontend")] + [
        contractors["isabella.moretti"]
    ]
    engineering = [
        gdn("Backend"),
        gdn("Frontend"),
        *(p.dn for p in in_unit("People", "Engineering")),
        *(p.dn for p in in_unit("People", "Engineering", "Vývoj")),
    ]
    all_staff = [gdn("Engineering"), gdn("Sales"), gdn("Support")] + [
        p.dn for p in in_unit("People", "Management")
    ]
    specs = [
        ("Sales", "sales", "Sales team", [p.dn for p in in_unit("People", "Sales")]),
        ("Support", "support", "Customer support", [p.dn for p in in_unit("People", "Support")]),
        ("Backend", "backend", "Backend engineers and contractors", backend),
        ("Frontend", "frontend", "Frontend engineers and designers", frontend),
        ("Engineering", "engineering", "All of engineering (includes Backend and Frontend)", engineering),
        ("All Staff", "all-staff", "Everyone (Engineering, Sales, Support and management)", all_staff),
    ]
    for name, local, description, members in specs:
        yield _group_entry(gdn(name), name, f"{local}@{mail_domain}", description, members, base_dn)

    developers = [
        p.uid
        for p in people
        if (len(p.unit) == 3 and p.unit[:2] == ("People", "Engineering")) or p.uid == "felix.wagner"
    ]
    yield _entry(
        gdn("developers"),
        [
            ("objectClass", "top"),
            ("objectClass", "posixGroup"),
            ("cn", "developers"),
            ("gidNumber", str(DEVELOPERS_GID)),
            ("description", "Unix group of the developers (memberUid, no mail)"),
            *(("memberUid", uid) for uid in developers),
        ],
    )


def demo_ldif(base_dn: str = "dc=example,dc=com", mail_domain: str = "example.com") -> str:
    """LDIF of the demo directory below base_dn (the base entry itself is not included)."""
    entries = [
        _entry(
            _ou_dn(unit.path, base_dn),
            [
                ("objectClass", "top"),
                ("objectClass", "organizationalUnit"),
                ("ou", unit.path[-1]),
                ("description", unit.description),
            ],
        )
        for unit in UNITS
    ]
    people = demo_people(base_dn, mail_domain)
    entries += [_person_entry(p, i) for i, p in enumerate(people)]
    entries += _groups(people, base_dn, mail_domain)
    return "\n".join(entries)
