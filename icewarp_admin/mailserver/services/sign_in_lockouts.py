"""Lifting a console sign-in lockout (System → Sign-in lockouts)."""

from __future__ import annotations

import logging

from axes.utils import reset
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from icewarp_admin.mailserver.lockout_selectors import LockoutKind

logger = logging.getLogger(__name__)


def lift_lockout(*, kind: LockoutKind, value: str, lifted_by: AbstractBaseUser | AnonymousUser) -> int:
    """Forget the failed sign-ins of a user name (from every address) or from an address (as every user
    name), which ends its lockout; returns how many of axes' records went."""
    if not value:
        # axes' reset() with neither a user name nor an address forgets every failure of everyone.
        raise ValueError("Name the user name or the address whose lockout to lift.")
    removed = reset(username=value) if kind == "user" else reset(ip=value)
    logger.info(
        "Sign-in lockout lifted: %s %r by %s (%d failure records removed)",
        "user name" if kind == "user" else "address",
        value,
        lifted_by.get_username(),
        removed,
    )
    return removed
