"""System checks (manage.py check, and before runserver and migrate): settings that would fail later."""

from __future__ import annotations

import os
from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured

from icewarp_admin.mailserver.services.mailboxes import mail_owner


@register()
def check_mail_owner(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """MAIL_OWNER names a user this machine knows, and this process may hand folders to it."""
    try:
        uid, gid = mail_owner()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="mailserver.E001")]
    if (uid, gid) != (os.geteuid(), os.getegid()) and os.geteuid() != 0:
        return [
            Error(
                f"Mailbox folders must belong to uid {uid} gid {gid} (MAIL_OWNER), but this process runs as "
                "uid "
                f"{os.geteuid()} and may not give folders away",
                hint="Run the console and its worker as root or as the mail owner, or change MAIL_OWNER.",
                id="mailserver.E002",
            )
        ]
    return []
