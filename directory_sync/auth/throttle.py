"""Wrong passwords are refused without asking anyone once an account or a client address has had too many.

Each attempt is written (as "pending") before its password is checked and counted against the ones before it,
under a lock on the account's row: parallel attempts (Dovecot runs several checkpassword processes at once)
cannot all slip under the limit and reach the directory, whose own lockout would then shut the person out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from directory_sync.models import SignIn
from icewarp_admin.mailserver.models import Account

# What counts against the limits: wrong passwords, and attempts still being checked (or whose process died).
ACCOUNT_FAILURES = (SignIn.Reason.BAD_PASSWORD, SignIn.Reason.PENDING)
# A client is also charged for addresses that do not exist (guessing who has an account).
CLIENT_FAILURES = (*ACCOUNT_FAILURES, SignIn.Reason.UNKNOWN)
# After these the account's count starts again.
FRESH_START = (SignIn.Reason.OK, SignIn.Reason.CLEARED)


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_client: int
    window: timedelta


def current_limits() -> Limits:
    """The limits the settings give (SIGN_IN_FAILURES_PER_ACCOUNT, _PER_CLIENT, _FAILURE_WINDOW_SECONDS)."""
    return Limits(
        per_account=settings.SIGN_IN_FAILURES_PER_ACCOUNT,
        per_client=settings.SIGN_IN_FAILURES_PER_CLIENT,
        window=timedelta(seconds=settings.SIGN_IN_FAILURE_WINDOW_SECONDS),
    )


@dataclass(frozen=True)
class Attempt:
    """An attempt written as pending, and whether the limits refuse it before any password check."""

    record: SignIn
    throttled: bool


def begin_attempt(
    *, account: Account | None, address: str, client: str, channel: str, action: str
) -> Attempt:
    """Write the attempt (pending) and decide whether the failures before it exceed a limit."""
    limits = current_limits()
    with transaction.atomic():
        if account is not None:
            # Serializes the attempts of one account (PostgreSQL; SQLite has one writer anyway).
            list(Account.objects.select_for_update().filter(pk=account.pk).values_list("pk", flat=True))
        record = SignIn.objects.create(
            account=account, address=address[:320], client=client[:64], channel=channel, action=action
        )
        since = record.at - limits.window
        throttled = False
        if account is not None:
            fresh = SignIn.objects.filter(account=account, reason__in=FRESH_START).aggregate(last=Max("at"))
            start = max(since, fresh["last"]) if fresh["last"] else since
            failures = (
                SignIn.objects.filter(account=account, at__gte=start, reason__in=ACCOUNT_FAILURES)
                .exclude(pk=record.pk)
                .count()
            )
            throttled = failures >= limits.per_account
        if client and not throttled:
            failures = (
                SignIn.objects.filter(client=client[:64], at__gte=since, reason__in=CLIENT_FAILURES)
                .exclude(pk=record.pk)
                .count()
            )
            throttled = failures >= limits.per_client
    return Attempt(record=record, throttled=throttled)


def finish_attempt(
    attempt: Attempt, *, reason: str, method: str = "", detail: str = "", host: str = ""
) -> None:
    """Record how the attempt ended."""
    record = attempt.record
    record.reason = reason
    record.method = method
    record.detail = detail[:500]
    record.host = host[:300]
    record.save(update_fields=["reason", "method", "detail", "host"])


def clear_failures(*, account: Account, by: str) -> SignIn:
    """Forgive an account's failures (an administrator, once the person is known to be who they say)."""
    return SignIn.objects.create(
        account=account,
        address=str(account),
        channel=SignIn.Channel.CONSOLE,
        reason=SignIn.Reason.CLEARED,
        detail=f"Failures cleared by {by}"[:500],
    )
