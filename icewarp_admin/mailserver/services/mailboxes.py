"""Mailbox folders on disk under the configured mail root: <domain>/<username>/, one per account.

Creating an account creates its folder, which reserves the name: a folder left behind by a removed account
holds someone else's mail and is never handed to a new account (that one gets username.1, username.2...). The
Maildir inside (cur, new, tmp) is made by the mail server when the mailbox is first opened, as Dovecot and
IceWarp do: four directories per account cost the sync 17 s of kernel time per 100,000 new accounts here, one
costs a quarter.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def mailbox_absolute_path(relative_path: str) -> Path:
    """The folder of a stored mailbox path, refusing any path that would leave the mail root."""
    root = Path(settings.MAIL_ROOT).resolve()
    path = (root / relative_path).resolve()
    if path == root or root not in path.parents:
        raise ValueError(f"Mailbox path “{relative_path}” points outside the mail root {root}.")
    return path


def _user_ids(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise ImproperlyConfigured(
            f"MAIL_OWNER names the user “{name}”, which this machine does not know: create it (for example "
            "`useradd --system vmail`) or give uid:gid"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _group_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ImproperlyConfigured(
            f"MAIL_OWNER names the group “{name}”, which this machine does not know: create it or give a gid"
        ) from None


def mail_owner() -> tuple[int, int]:
    """The uid and gid that own mailbox folders (setting MAIL_OWNER: user, user:group or uid:gid; empty: the
    owner of the mail root). The mail server reads the mailboxes as this user: Dovecot refuses root."""
    value = str(settings.MAIL_OWNER or "").strip()
    if not value:
        try:
            info = os.stat(settings.MAIL_ROOT)
        except FileNotFoundError:
            return os.geteuid(), os.getegid()
        return info.st_uid, info.st_gid
    user, colon, group = value.partition(":")
    if colon and user.isdigit() and group.isdigit():
        return int(user), int(group)
    if not user:
        raise ImproperlyConfigured(
            f"MAIL_OWNER “{value}” names no user: write vmail, vmail:mail or 5000:5000"
        )
    uid, gid = _user_ids(user)
    return uid, _group_id(group) if group else gid


def _give_away(path: str, owner: tuple[int, int]) -> None:
    """Hand a folder this process made to the mail owner (a no-op when the process is the owner)."""
    if owner == (os.geteuid(), os.getegid()):
        return
    try:
        os.chown(path, *owner)
    except PermissionError:
        raise ImproperlyConfigured(
            f"Mailbox folders must belong to uid {owner[0]} gid {owner[1]} (MAIL_OWNER), but this process "
            f"(uid {os.geteuid()}) may not give files away: run the console and its worker as root or as the "
            "mail owner"
        ) from None


def _make_domain_folder(parent: str, owner: tuple[int, int]) -> None:
    try:
        os.makedirs(parent, mode=0o700)
    except FileExistsError:
        return
    _give_away(parent, owner)


def create_mailbox(*, domain_name: str, username: str) -> str:
    """Create the folder of a new account and return its path relative to the mail root."""
    base = f"{domain_name}/{username}"
    # The names were validated (no "/", no ".."), so the folder is checked once, not resolved per account.
    mailbox_absolute_path(base)
    parent = os.path.join(settings.MAIL_ROOT, domain_name)
    owner = mail_owner()
    _make_domain_folder(parent, owner)
    candidate, attempt = base, 0
    while True:
        try:
            folder = os.path.join(parent, os.path.basename(candidate))
            os.mkdir(folder, 0o700)
            _give_away(folder, owner)
            return candidate
        except FileExistsError:
            attempt += 1
            candidate = f"{base}.{attempt}"


def free_mailbox_paths(*, domain_name: str, usernames: Iterable[str], in_use: set[str]) -> dict[str, str]:
    """Folder names for many new accounts at once: one listing of the domain's folder instead of a failing
    mkdir per name. in_use: paths the domain's accounts hold (a renamed account keeps its folder)."""
    mailbox_absolute_path(f"{domain_name}/x")
    parent = os.path.join(settings.MAIL_ROOT, domain_name)
    try:
        taken = {f"{domain_name}/{name}" for name in os.listdir(parent)}
    except FileNotFoundError:
        taken = set()
    taken |= in_use
    chosen: dict[str, str] = {}
    for username in usernames:
        base = candidate = f"{domain_name}/{username}"
        attempt = 0
        while candidate in taken:
            attempt += 1
            candidate = f"{base}.{attempt}"
        taken.add(candidate)
        chosen[username] = candidate
    return chosen


def create_mailbox_folders(paths: Iterable[str], *, made: list[str] | None = None) -> int:
    """Create the folders of new accounts (made: collects the paths created, for an undo); a folder already
    there is left as it is."""
    created = made if made is not None else []
    parents: set[str] = set()
    owner = mail_owner()
    for relative in paths:
        folder = os.path.join(settings.MAIL_ROOT, relative)
        parent = os.path.dirname(folder)
        if parent not in parents:
            _make_domain_folder(parent, owner)
            parents.add(parent)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        created.append(relative)
        _give_away(folder, owner)
    return len(created)


def delete_mailbox(*, relative_path: str) -> None:
    """Remove a mailbox folder and everything in it (only when the administrator asked for it)."""
    shutil.rmtree(mailbox_absolute_path(relative_path), ignore_errors=True)


def mailbox_exists(relative_path: str) -> bool:
    return mailbox_absolute_path(relative_path).is_dir()
