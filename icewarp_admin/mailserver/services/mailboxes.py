"""Mailbox folders on disk (Maildir layout) under the configured mail root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from django.conf import settings

MAILDIR_SUBFOLDERS = ("cur", "new", "tmp")


def mailbox_absolute_path(relative_path: str) -> Path:
    """The folder of a stored mailbox path, refusing any path that would leave the mail root."""
    root = Path(settings.MAIL_ROOT).resolve()
    path = (root / relative_path).resolve()
    if path == root or root not in path.parents:
        raise ValueError(f"Mailbox path “{relative_path}” points outside the mail root {root}.")
    return path


def create_mailbox(*, domain_name: str, username: str) -> str:
    """Create an empty Maildir for a new account and return its path relative to the mail root.

    A folder left behind by a removed account is never handed to a new one (it holds someone else's
    mail): the new account gets the next free name, username.1, username.2...
    """
    base = f"{domain_name}/{username}"
    # The names were validated (no "/", no ".."), so the folder is checked once, not resolved per account.
    mailbox_absolute_path(base)
    parent = os.path.join(settings.MAIL_ROOT, domain_name)
    if not os.path.isdir(parent):  # a stat costs a tenth of a failing mkdir, and the sync makes thousands
        os.makedirs(parent, mode=0o700, exist_ok=True)
    candidate, attempt = base, 0
    while True:
        folder = os.path.join(parent, os.path.basename(candidate))
        try:
            os.mkdir(folder, 0o700)
            break
        except FileExistsError:
            attempt += 1
            candidate = f"{base}.{attempt}"
    for name in MAILDIR_SUBFOLDERS:
        os.mkdir(os.path.join(folder, name), 0o700)
    return candidate


def delete_mailbox(*, relative_path: str) -> None:
    """Remove a mailbox folder and everything in it (only when the administrator asked for it)."""
    shutil.rmtree(mailbox_absolute_path(relative_path), ignore_errors=True)


def mailbox_exists(relative_path: str) -> bool:
    return mailbox_absolute_path(relative_path).is_dir()
