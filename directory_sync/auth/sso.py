"""Single sign-on: a Negotiate token signs a mail user in, with no password (rules §9).

The ticket's service picks the domains (those with single sign-on on and that service name), the keytab of
that service accepts the token (auth.kerberos), and the principal is matched to one account of those domains
as each
says: by username, by alias, or by the login of the account's auth value. The principal's realm must be the
realm of the domain's service name: a trusted realm's "alice" is not this domain's alice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db.models import Q

from directory_sync.auth.kerberos import Acceptance, TicketRefused, accept, realm_of, service_principal
from directory_sync.auth.krb5_tokens import TokenError, ticket_facts
from directory_sync.auth.passwords import AuthResult
from directory_sync.choices import SsoMatching
from directory_sync.models import DirectorySettings, SignIn
from directory_sync.rules.names import login_of_auth_value
from icewarp_admin.mailserver.models import Account, Address

logger = logging.getLogger(__name__)

Reason = SignIn.Reason
_RULE_WORDS: dict[int, str] = {
    SsoMatching.USERNAME: "username",
    SsoMatching.ALIAS: "alias",
    SsoMatching.AUTH_VALUE: "auth value",
}


@dataclass(frozen=True)
class TicketSignIn:
    """How a Negotiate sign-in ended, and the token that completes mutual authentication (on success)."""

    result: AuthResult
    answer: bytes | None = None


def single_sign_on_domains() -> list[DirectorySettings]:
    """The settings of the domains with single sign-on on (and a service name)."""
    return list(
        DirectorySettings.objects.select_related("domain")
        .filter(sso_active=True)
        .exclude(sso_service_name="")
        .order_by("domain__name")
    )


def _record(
    *, principal: str, client: str, channel: str, reason: str, detail: str, account: Account | None = None
) -> AuthResult:
    SignIn.objects.create(
        account=account,
        address=principal[:320],
        client=client[:64],
        channel=channel,
        method=SignIn.Method.KERBEROS,
        reason=reason,
        detail=detail[:500],
    )
    if reason == Reason.OK:
        logger.info("Kerberos sign-in of %s as %s from %s", principal, account, client or "-")
    else:
        logger.warning(
            "Kerberos sign-in of %s from %s refused: %s (%s)", principal, client or "-", reason, detail
        )
    return AuthResult(reason=reason, message=detail, account=account, detail=detail)


def matching_accounts(settings: DirectorySettings, acceptance: Acceptance) -> list[Account]:
    """The domain's accounts this principal matches by the domain's rule (SSOMATCHING)."""
    name = acceptance.name.lower()
    accounts = Account.objects.select_related("domain").filter(domain_id=settings.domain_id)
    if settings.sso_matching == SsoMatching.ALIAS:
        owners = Address.objects.filter(
            domain_id=settings.domain_id, local_part=name, account__isnull=False
        ).values("account_id")
        return list(accounts.filter(pk__in=owners))
    if settings.sso_matching == SsoMatching.AUTH_VALUE:
        # The login of host;login: a UPN, a sAMAccountName or DOMAIN\name (a DN cannot name a principal).
        principal = acceptance.principal.lower()
        candidates = accounts.filter(auth_mode=Account.AuthMode.DIRECTORY).filter(
            Q(auth_value__iendswith=f";{principal}")
            | Q(auth_value__iendswith=f";{name}")
            | Q(auth_value__iendswith=f"\\{name}")
        )
        found = []
        for account in candidates:
            login = login_of_auth_value(account.auth_value).lower()
            if login in (principal, name) or ("\\" in login and login.rpartition("\\")[2] == name):
                found.append(account)
        return found
    return list(accounts.filter(username=name))


def sign_in_with_ticket(*, token: bytes, client: str = "", channel: str) -> TicketSignIn:
    """Sign in whoever the Negotiate token proves to be, or say why not (recorded as a sign-in)."""
    try:
        ticket = ticket_facts(token)
    except TokenError as exc:
        detail = f"The Negotiate token cannot be used: {exc}"
        return TicketSignIn(
            _record(principal="", client=client, channel=channel, reason=Reason.TICKET, detail=detail)
        )
    domains = single_sign_on_domains()
    chosen = [s for s in domains if service_principal(s.sso_service_name).lower() == ticket.service.lower()]
    if not chosen:
        services = sorted({service_principal(s.sso_service_name) for s in domains}) or ["none"]
        detail = (
            f"The ticket is for {ticket.service}, but no domain signs in with that service name (single "
            "sign-on "
            f"uses {', '.join(services)}): set it as the service name of the domain, or use that host name"
        )
        return TicketSignIn(
            _record(principal="", client=client, channel=channel, reason=Reason.TICKET, detail=detail)
        )
    service = service_principal(chosen[0].sso_service_name)
    try:
        acceptance = accept(token, service=service)
    except TicketRefused as exc:
        return TicketSignIn(
            _record(principal="", client=client, channel=channel, reason=Reason.TICKET, detail=exc.message)
        )
    principal = acceptance.principal
    realm = realm_of(service)
    if acceptance.realm != realm:
        detail = (
            f"{principal} is from the realm {acceptance.realm}, not from {realm}, the realm of "
            f"{', '.join(s.domain.name for s in chosen)}: sign in with a password"
        )
        return TicketSignIn(
            _record(principal=principal, client=client, channel=channel, reason=Reason.UNKNOWN, detail=detail)
        )
    found = [account for settings in chosen for account in matching_accounts(settings, acceptance)]
    if len(found) != 1:
        rules = ", ".join(f"{s.domain.name} by {_RULE_WORDS.get(s.sso_matching, 'username')}" for s in chosen)
        detail = (
            f"No account matches {principal} ({rules})"
            if not found
            else f"{principal} matches several accounts ({', '.join(sorted(map(str, found)))}): sign in with "
            "a password"
        )
        return TicketSignIn(
            _record(principal=principal, client=client, channel=channel, reason=Reason.UNKNOWN, detail=detail)
        )
    account = found[0]
    if not account.enabled:
        detail = f"{principal} matches {account}, which is disabled"
        return TicketSignIn(
            _record(
                principal=principal,
                client=client,
                channel=channel,
                reason=Reason.DISABLED,
                detail=detail,
                account=account,
            )
        )
    result = _record(
        principal=principal, client=client, channel=channel, reason=Reason.OK,
        detail=f"Kerberos ticket of {principal}", account=account,
    )  # fmt: skip
    return TicketSignIn(result, acceptance.answer)
