"""Build test directories on the real slapd: one OU per test, people and changes as LDIF."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from devservers.ldif import ldif_line
from devservers.slapd import SlapdInstance
from directory_sync.models import DirectorySettings, SyncRun
from directory_sync.services.settings import save_directory_settings
from directory_sync.services.sync import run_now
from icewarp_admin.mailserver.models import Domain

_counter = itertools.count(1)


@dataclass
class Directory:
    """A private OU of the shared slapd, with the operations a test needs."""

    slapd: SlapdInstance
    base_dn: str
    created: list[str] = field(default_factory=list)

    def add_ou(self, name: str, parent: str | None = None) -> str:
        dn = f"ou={name},{parent or self.base_dn}"
        self.slapd.ldapadd(f"dn: {dn}\nobjectClass: organizationalUnit\n{ldif_line('ou', name)}\n")
        return dn

    def add_person(
        self,
        uid: str,
        *,
        mail: str | list[str] | None = None,
        cn: str | None = None,
        sn: str = "Person",
        given_name: str | None = None,
        parent: str | None = None,
        **attributes: Any,
    ) -> str:
        """An inetOrgPerson; keyword attributes are added as given (a list for several values)."""
        dn = f"uid={uid},{parent or self.base_dn}"
        lines = [f"dn: {dn}", "objectClass: inetOrgPerson", f"uid: {uid}"]
        lines += [ldif_line("cn", cn or uid.title()), ldif_line("sn", sn)]
        if given_name:
            lines.append(ldif_line("givenName", given_name))
        mails = [mail] if isinstance(mail, str) else (mail if mail is not None else [f"{uid}@example.com"])
        lines += [ldif_line("mail", value) for value in mails]
        for name, value in attributes.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(ldif_line(name, str(item)))
        self.slapd.ldapadd("\n".join(lines) + "\n")
        return dn

    def modify(self, dn: str, **replace: Any) -> None:
        """Replace attributes (None deletes the attribute)."""
        parts = [f"dn: {dn}", "changetype: modify"]
        for name, value in replace.items():
            if value is None:
                parts += [f"delete: {name}", "-"]
            else:
                parts.append(f"replace: {name}")
                parts += [
                    ldif_line(name, str(item)) for item in (value if isinstance(value, list) else [value])
                ]
                parts.append("-")
        self.slapd.ldapmodify("\n".join(parts) + "\n")

    def move(self, dn: str, new_parent: str) -> str:
        rdn = dn.split(",", 1)[0]
        self.slapd.ldapmodify(
            f"dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 1\nnewsuperior: {new_parent}\n"
        )
        return f"{rdn},{new_parent}"

    def delete(self, *dns: str) -> None:
        self.slapd.ldapdelete(*dns)


def new_directory(slapd: SlapdInstance) -> Directory:
    name = f"test{next(_counter)}"
    base = f"ou={name},dc=example,dc=com"
    slapd.ldapadd(f"dn: {base}\nobjectClass: organizationalUnit\nou: {name}\n")
    return Directory(slapd=slapd, base_dn=base)


def configure(domain: Domain, directory: Directory, **values: Any) -> DirectorySettings:
    """Point the domain at the test directory (generic LDAP, bind as the server's admin)."""
    settings = {
        "active": True,
        "host": directory.slapd.ldap_url,
        "bind_user": directory.slapd.admin_dn,
        "base_dn": directory.base_dn,
        "server_type": "generic",
        "login_source": "dn",
        "page_size": 100,
        "allow_plain_bind": True,  # the test slapd listens on plain ldap:// on loopback
        **values,
    }
    saved, _ = save_directory_settings(
        domain=domain, values=settings, new_password=directory.slapd.admin_password
    )
    return saved


def sync(domain: Domain, *, dry_run: bool = False) -> SyncRun:
    """One run, exactly as the command line does it (through the per-domain lock, in this process)."""
    start = run_now(domain=domain, trigger=SyncRun.Trigger.COMMAND, requested_by="test", dry_run=dry_run)
    assert not start.joined, f"run #{start.run.pk} of {domain} was still active"
    return start.run
