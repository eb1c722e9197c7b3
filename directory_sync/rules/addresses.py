"""Which addresses of a directory entry belong to this domain (IceWarp's candidate and accepted domains)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from icewarp_admin.mailserver.validators import normalize_domain_name, normalize_local_part

ANY_DOMAIN = "*"


@dataclass(frozen=True)
class AcceptedDomains:
    """This domain, plus the mail domains (or any, with *) whose addresses are rewritten to it."""

    domain: str
    rewritten: frozenset[str] = frozenset()
    any_domain: bool = False
    directory_domain: str = ""

    def accepts(self, mail_domain: str) -> bool:
        return mail_domain == self.domain or self.any_domain or mail_domain in self.rewritten

    def describe(self) -> str:
        if self.any_domain:
            return "any domain"
        return ", ".join([self.domain, *sorted(self.rewritten)])


def accepted_domains(*, domain: str, host_domain_active: bool, host_domain: str) -> AcceptedDomains:
    """IceWarp's HOSTDOMAIN directoryDomain[;mailDomain...]: further items are accepted, rewritten here."""
    if not host_domain_active or not host_domain.strip():
        return AcceptedDomains(domain=domain)
    items = [item.strip() for item in host_domain.split(";")]
    directory_domain, mail_domains = items[0], [item for item in items[1:] if item]
    rewritten = set()
    for item in mail_domains:
        if item != ANY_DOMAIN:
            rewritten.add(normalize_domain_name(item))
    return AcceptedDomains(
        domain=domain,
        rewritten=frozenset(rewritten - {domain}),
        any_domain=ANY_DOMAIN in mail_domains,
        directory_domain=directory_domain,
    )


@dataclass(frozen=True)
class Candidate:
    """One address the entry offers, and where it came from."""

    address: str
    source: str  # "proxyAddresses SMTP", "mail", "otherMailbox", "proxyAddresses smtp", "login"
    primary: bool = False


def candidate_addresses(
    *, mail: Sequence[str], other_mailbox: Sequence[str], proxy_addresses: Sequence[str]
) -> list[Candidate]:
    """Every address of an entry, the primary first: proxyAddresses SMTP:, else the first mail value.

    proxyAddresses prefixes other than SMTP/smtp (X400:, SIP:, x500:...) are not mail addresses.
    """
    primary_proxy = [value[5:] for value in proxy_addresses if value.startswith("SMTP:")]
    secondary_proxy = [value[5:] for value in proxy_addresses if value.startswith("smtp:")]
    found: list[Candidate] = [
        Candidate(address, "proxyAddresses SMTP", primary=True) for address in primary_proxy[:1]
    ]
    found += [Candidate(address, "mail") for address in mail]
    found += [Candidate(address, "proxyAddresses smtp") for address in [*primary_proxy[1:], *secondary_proxy]]
    found += [Candidate(address, "otherMailbox") for address in other_mailbox]
    if found and not any(candidate.primary for candidate in found):
        found[0] = Candidate(found[0].address, found[0].source, primary=True)
    return found


@dataclass(frozen=True)
class Qualified:
    """An entry's local parts in this domain (primary first), and what was left out and why."""

    local_parts: tuple[str, ...]
    foreign: tuple[str, ...]
    invalid: tuple[str, ...]


def qualifying_local_parts(
    candidates: Sequence[Candidate], accepted: AcceptedDomains, *, login_alias: str = ""
) -> Qualified:
    """The local parts of the accepted addresses (rewritten to this domain), deduplicated, primary first."""
    local_parts: list[str] = []
    foreign: list[str] = []
    invalid: list[str] = []
    ordered = sorted(candidates, key=lambda candidate: not candidate.primary)
    for candidate in ordered:
        local, at, mail_domain = candidate.address.strip().rpartition("@")
        if not at:
            invalid.append(candidate.address)
            continue
        try:
            normalized_domain = normalize_domain_name(mail_domain)
            normalized_local = normalize_local_part(local)
        except ValidationError:
            invalid.append(candidate.address)
            continue
        if not accepted.accepts(normalized_domain):
            foreign.append(f"{normalized_local}@{normalized_domain}")
        elif normalized_local not in local_parts:
            local_parts.append(normalized_local)
    if local_parts and login_alias:
        # IceWarp adds the login's alias part only, and only to an entry that qualifies by its addresses.
        try:
            alias = normalize_local_part(login_alias.split("@", 1)[0].split("\\")[-1])
        except ValidationError:
            invalid.append(login_alias)
        else:
            if alias not in local_parts:
                local_parts.append(alias)
    return Qualified(tuple(local_parts), tuple(foreign), tuple(invalid))
