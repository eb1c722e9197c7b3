"""A real Samba AD DC for the suite (session-scoped, provisioned once per run) and its seed directory.

The seed: OU=Staff (alice, bob disabled, erin 66048, group Engineers and Admins-Nested), OU=Devel,OU=Staff
(carol with a UPN in another suffix, frank), OU=Sales (dave with a partner address, grace), OU=Bulk
(1,600 users, all members of BigGroup), and the service account websvc (SPN HTTP/localhost, AES keytab in
DIR/http.keytab). Set SAMBA_TEST_DIR to keep the DC in a folder of your own between runs: a provisioned and
seeded folder is only restarted (~1 s instead of ~20 s).

PYTEST_DONT_REWRITE: no asserts here, and test modules import it before pytest_plugins can mark it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import ssl
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ldap3 import MODIFY_REPLACE, SIMPLE, Connection, Server, Tls
from ldap3.utils.dn import to_dn

from devservers.samba import SambaInstance, start_samba

if TYPE_CHECKING:  # Django models load only once pytest-django set Django up (this plugin may load earlier)
    from directory_sync.models import DirectorySettings
    from icewarp_admin.mailserver.models import Domain

logger = logging.getLogger(__name__)

BASE = "DC=example,DC=test"
STAFF = f"OU=Staff,{BASE}"
DEVEL = f"OU=Devel,{STAFF}"
SALES = f"OU=Sales,{BASE}"
BULK = f"OU=Bulk,{BASE}"
USERS = f"CN=Users,{BASE}"
BULK_USERS = 1600
UPN_SUFFIX = "corp.example.local"
KEYTAB_PRINCIPAL = "HTTP/localhost"
UAC_NORMAL = 512
UAC_DISABLED = 514
UAC_NORMAL_DONT_EXPIRE = 66048
UAC_NORMAL_NO_PASSWORD = 544  # NORMAL_ACCOUNT | PASSWD_NOTREQD: enabled, no password (bulk users)
TREE_DELETE_OID = "1.2.840.113556.1.4.805"
TEMP_PASSWORD = "Temp!Passw0rd-1"


@dataclass(frozen=True)
class SeedUser:
    """One named user of the seed, as written to the directory."""

    sam: str
    parent: str
    password: str
    cn: str = ""
    upn: str = ""
    mail: str | None = None
    given_name: str = ""
    surname: str = ""
    display_name: str = ""
    proxy_addresses: tuple[str, ...] = ()
    uac: int = UAC_NORMAL
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rdn(self) -> str:
        return self.cn or self.sam

    @property
    def dn(self) -> str:
        return f"CN={self.rdn},{self.parent}"

    @property
    def user_principal_name(self) -> str:
        return self.upn or f"{self.sam}@example.test"


ALICE = SeedUser(
    "alice", STAFF, "Al1ce!Passw0rd", mail="alice@example.test", given_name="Alice", surname="Anders",
    display_name="Alice Anders",
    proxy_addresses=(
        "SMTP:alice@example.test", "smtp:alice.anders@example.test", "smtp:aa@example.test",
        "X400:c=US;a= ;p=Example",
    ),
)  # fmt: skip
BOB = SeedUser(
    "bob", STAFF, "B0b!Passw0rd", mail="bob@example.test", given_name="Bob", surname="Brown",
    display_name="Bob Brown", uac=UAC_DISABLED,
)  # fmt: skip
CAROL = SeedUser(
    "carol", DEVEL, "C4rol!Passw0rd", cn="Carol Clark", upn=f"carol@{UPN_SUFFIX}", mail="carol@example.test",
    given_name="Carol", surname="Clark",
)  # fmt: skip
DAVE = SeedUser(
    "dave", SALES, "D4ve!Passw0rd", mail="dave@partner.example.net", given_name="Dave", surname="Dent",
    display_name="Dave Dent",
)  # fmt: skip
ERIN = SeedUser(
    "erin", STAFF, "Er1n!Passw0rd", mail="erin@example.test", given_name="Erin", surname="Evans",
    display_name="Erin Evans", uac=UAC_NORMAL_DONT_EXPIRE,
)  # fmt: skip
FRANK = SeedUser(
    "frank", DEVEL, "Fr4nk!Passw0rd", mail="frank.fischer@example.test", given_name="Frank",
    surname="Fischer", display_name="Frank Fischer",
)  # fmt: skip
GRACE = SeedUser(
    "grace", SALES, "Gr4ce!Passw0rd", mail="grace@example.test", given_name="Grace", surname="Green",
    display_name="Grace Green",
)  # fmt: skip
WEBSVC = SeedUser(
    "websvc", USERS, "W3bsvc!Passw0rd-Keytab",
    # An exported keytab holds AES keys only if the account asks for them (24 = AES128 | AES256).
    extra={"servicePrincipalName": [KEYTAB_PRINCIPAL], "msDS-SupportedEncryptionTypes": ["24"]},
)  # fmt: skip
SEED_USERS = (ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, WEBSVC)
# Mail-enabled users of the seed outside OU=Bulk (websvc has no address).
MAIL_USERS = tuple(user for user in SEED_USERS if user.mail)


@dataclass(frozen=True)
class SeedGroup:
    name: str
    parent: str
    mail: str
    members: tuple[str, ...]  # DNs

    @property
    def dn(self) -> str:
        return f"CN={self.name},{self.parent}"


ADMINS_NESTED = SeedGroup("Admins-Nested", STAFF, "admins-nested@example.test", (CAROL.dn,))
ENGINEERS = SeedGroup("Engineers", STAFF, "engineers@example.test", (ALICE.dn, BOB.dn, ADMINS_NESTED.dn))


def bulk_dn(number: int) -> str:
    return f"CN=bulk{number:04d},{BULK}"


BIG_GROUP = SeedGroup("BigGroup", BULK, "biggroup@example.test", tuple(bulk_dn(n) for n in range(BULK_USERS)))
SEED_GROUPS = (ADMINS_NESTED, ENGINEERS, BIG_GROUP)


# --------------------------------------------------------------------------- LDIF


def _line(name: str, value: str) -> str:
    safe = value.isascii() and value.isprintable() and not value.startswith((" ", ":", "<"))
    if safe and value == value.rstrip():
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _password(password: str) -> str:
    """AD's unicodePwd: the password in double quotes, UTF-16-LE, base64 in LDIF."""
    return "unicodePwd:: " + base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()


def _ou(dn: str) -> str:
    return f"dn: {dn}\nobjectClass: organizationalUnit\n"


def _user(user: SeedUser) -> str:
    lines = [
        f"dn: {user.dn}",
        "objectClass: user",
        _line("sAMAccountName", user.sam),
        _line("userPrincipalName", user.user_principal_name),
    ]
    for name, value in (
        ("givenName", user.given_name),
        ("sn", user.surname),
        ("displayName", user.display_name),
        ("mail", user.mail or ""),
    ):
        if value:
            lines.append(_line(name, value))
    lines += [_line("proxyAddresses", value) for value in user.proxy_addresses]
    for name, values in user.extra.items():
        lines += [_line(name, value) for value in values]
    lines += [_password(user.password), f"userAccountControl: {user.uac}"]
    return "\n".join(lines) + "\n"


def _group(group: SeedGroup) -> str:
    lines = [
        f"dn: {group.dn}",
        "objectClass: group",
        _line("sAMAccountName", group.name),
        _line("mail", group.mail),
        _line("description", f"{group.name} (seed)"),
    ]
    lines += [_line("member", member) for member in group.members]
    return "\n".join(lines) + "\n"


def _bulk_user(number: int) -> str:
    name = f"bulk{number:04d}"
    return (
        f"dn: {bulk_dn(number)}\nobjectClass: user\nsAMAccountName: {name}\n"
        f"userPrincipalName: {name}@example.test\nmail: {name}@example.test\ngivenName: Bulk\n"
        f"sn: User {number:04d}\ndisplayName: Bulk User {number:04d}\n"
        f"userAccountControl: {UAC_NORMAL_NO_PASSWORD}\n"
    )


def seed_ldif() -> str:
    """Every entry of the seed, parents before children, groups after their members."""
    entries = [_ou(STAFF), _ou(DEVEL), _ou(SALES), _ou(BULK)]
    entries += [_user(user) for user in SEED_USERS]
    entries += [_bulk_user(n) for n in range(BULK_USERS)]
    entries += [_group(group) for group in SEED_GROUPS]
    return "\n".join(entries)


UPN_SUFFIX_LDIF = f"""dn: CN=Partitions,CN=Configuration,{BASE}
changetype: modify
add: uPNSuffixes
uPNSuffixes: {UPN_SUFFIX}
"""

SEED_VERSION = hashlib.sha256((seed_ldif() + UPN_SUFFIX_LDIF + KEYTAB_PRINCIPAL).encode()).hexdigest()[:16]


def seed(samba: SambaInstance) -> None:
    """Write the seed and export websvc's keytab (timings in samba.timings).

    Measured on 2 cores: ldbadd on sam.ldb runs Samba's whole DSDB stack at ~5 ms an entry; the same adds
    over LDAPS with ldap3 cost ~12 ms each (~15 ms pipelined), ~35 ms with a password, and samba-tool
    ~0.4 s a call. So one ldbadd of one LDIF for everything, one ldbmodify, one samba-tool call.
    """
    started = time.monotonic()
    samba.ldbadd(seed_ldif())
    samba.timings["seed_entries_s"] = round(time.monotonic() - started, 2)
    started = time.monotonic()
    samba.ldbmodify(UPN_SUFFIX_LDIF)
    keytab = samba.directory / "http.keytab"
    keytab.unlink(missing_ok=True)
    samba.samba_tool("domain", "exportkeytab", str(keytab), f"--principal={KEYTAB_PRINCIPAL}")
    samba.timings["seed_keytab_s"] = round(time.monotonic() - started, 2)


# --------------------------------------------------------------------------- LDAP as Administrator


def admin_connection(samba: SambaInstance) -> Connection:
    """ldap3 over LDAPS (certificate verified against the DC's CA), bound as Administrator."""
    tls = Tls(ca_certs_file=str(samba.ca_cert), validate=ssl.CERT_REQUIRED)
    server = Server("127.0.0.1", port=636, use_ssl=True, tls=tls, connect_timeout=10)
    with warnings.catch_warnings():
        # ldap3 2.9.1 checks the host name with ssl.match_hostname (deprecated; the check still runs).
        warnings.filterwarnings("ignore", "ssl.match_hostname", DeprecationWarning)
        return Connection(
            server,
            user=samba.admin_upn,
            password=samba.admin_password,
            authentication=SIMPLE,
            auto_bind=True,
            raise_exceptions=True,
            receive_timeout=30,
        )


def find_dn(conn: Connection, sam: str) -> str:
    """The current DN of the entry with this sAMAccountName."""
    conn.search(BASE, f"(sAMAccountName={sam})", attributes=["1.1"])
    if len(conn.entries) != 1:
        raise LookupError(f"no single entry with sAMAccountName={sam} under {BASE}")
    return str(conn.entries[0].entry_dn)


def move(conn: Connection, dn: str, new_parent: str) -> str:
    """Move an entry to another OU (its RDN stays); its new DN."""
    rdn = to_dn(dn)[0]  # RDN values may hold escaped commas: CN=Anders\, Alice
    conn.modify_dn(dn, rdn, new_superior=new_parent)
    return f"{rdn},{new_parent}"


def add_user(
    conn: Connection,
    dn: str,
    sam: str,
    *,
    password: str = TEMP_PASSWORD,
    uac: int = UAC_NORMAL,
    **attributes: str | list[str],
) -> str:
    """Create a user over LDAPS as an AD tool does (unicodePwd needs the encrypted connection); its DN."""
    values: dict[str, Any] = {
        "sAMAccountName": sam,
        "userPrincipalName": f"{sam}@example.test",
        "unicodePwd": f'"{password}"'.encode("utf-16-le"),
        "userAccountControl": str(uac),
        **attributes,
    }
    conn.add(dn, ["top", "person", "organizationalPerson", "user"], values)
    return dn


def delete_tree(conn: Connection, dn: str) -> None:
    """Delete an entry and everything under it (AD's tree-delete control); nothing if it does not exist."""
    conn.raise_exceptions = False
    try:
        conn.delete(dn, controls=[(TREE_DELETE_OID, True, None)])
        if conn.result["result"] not in (0, 32):  # success, noSuchObject
            raise RuntimeError(f"deleting {dn} failed: {conn.result}")
    finally:
        conn.raise_exceptions = True


def restore_seed_users(samba: SambaInstance) -> None:
    """Undo what tests change: alice, bob, erin (place, addresses, state) and Engineers' members."""
    conn = admin_connection(samba)
    try:
        for user in (ALICE, BOB, ERIN):
            dn = find_dn(conn, user.sam)
            if dn.lower() != user.dn.lower():
                dn = move(conn, dn, user.parent)
            changes: dict[str, Any] = {
                "mail": [(MODIFY_REPLACE, [user.mail] if user.mail else [])],
                "proxyAddresses": [(MODIFY_REPLACE, list(user.proxy_addresses))],
                "userAccountControl": [(MODIFY_REPLACE, [str(user.uac)])],
            }
            conn.modify(dn, changes)
        conn.modify(ENGINEERS.dn, {"member": [(MODIFY_REPLACE, list(ENGINEERS.members))]})
    finally:
        conn.unbind()


# --------------------------------------------------------------------------- fixture and settings


_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line at the end of the run: how long the DC took (provision, seed, restart)."""
    for line in _SUMMARY:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def samba(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaInstance]:
    """The seeded Samba AD DC (example.test / EXAMPLE), provisioned once per run and stopped at its end."""
    configured = os.environ.get("SAMBA_TEST_DIR", "").strip()
    directory = Path(configured) if configured else Path(tmp_path_factory.mktemp("samba"))
    began = time.monotonic()
    instance = start_samba(directory, seed=seed, seed_version=SEED_VERSION)
    if "restart_s" in instance.timings:  # a DC kept from an earlier run: undo what its tests changed
        restore_seed_users(instance)
    line = f"Samba AD DC ready in {time.monotonic() - began:.1f} s ({directory}): " + ", ".join(
        f"{name.removesuffix('_s')} {value} s" for name, value in instance.timings.items()
    )
    logger.info(line)
    _SUMMARY.append(line)
    try:
        yield instance
    finally:
        instance.stop()


def configure_ad(domain: Domain, samba: SambaInstance, **values: Any) -> DirectorySettings:
    """Point the domain at the Samba DC as Active Directory: LDAPS, CA pasted, Administrator, whole domain.

    For StartTLS pass host=samba.ldap_url, use_starttls=True.
    """
    from directory_sync.services.settings import save_directory_settings

    settings = {
        "active": True,
        "host": samba.ldaps_url,
        "use_starttls": False,
        "bind_user": samba.admin_upn,
        "base_dn": samba.base_dn,
        "server_type": "ad",
        "ca_bundle": samba.ca_cert.read_text(),
        "verify_certificate": True,
        "page_size": 500,
        **values,
    }
    saved, _ = save_directory_settings(domain=domain, values=settings, new_password=samba.admin_password)
    return saved
