"""Keytab files for Kerberos SSO: uploaded per domain, kept in CONFIG_DIR/_keytabs as IceWarp keeps them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from directory_sync.keytabs import KeytabError, parse_keytab, principal_from_file_name
from directory_sync.models import Keytab
from icewarp_admin.mailserver.models import Domain

KEYTAB_FOLDER = "_keytabs"


def keytab_folder() -> Path:
    """The folder that holds every domain's keytab files."""
    return Path(settings.CONFIG_DIR) / KEYTAB_FOLDER


def keytab_path(keytab: Keytab) -> Path:
    """The file of a keytab row, refusing a stored name that would leave the keytab folder."""
    folder = keytab_folder()
    path = folder / keytab.file_name
    if path.parent != folder or keytab.file_name in {"", ".", ".."}:
        raise ValueError(f"Keytab file name “{keytab.file_name}” points outside {folder}.")
    return path


def store_keytab(*, domain: Domain, file_name: str, data: bytes, uploaded_by: str) -> Keytab:
    """Check an uploaded keytab against its file name, keep it (mode 0600) and record the keys it holds."""
    try:
        principal = principal_from_file_name(file_name)
        entries = parse_keytab(data)
    except KeytabError as exc:
        raise ValidationError(str(exc), code="invalid") from exc

    found = sorted({entry.principal for entry in entries})
    if found != [principal]:
        hint = ""
        if any(p.lower() == principal.lower() for p in found):
            hint = " Kerberos names are case-sensitive: the case must match too."
        raise ValidationError(
            f"The file is named for {principal}, but it holds keys for {', '.join(found)}. "
            f"Upload a keytab exported for {principal} only (ktpass -princ {principal}), "
            f"or name the file after the principal it holds.{hint}",
            code="principal_mismatch",
        )

    row = Keytab(
        domain=domain,
        file_name=file_name,
        principal=principal,
        entries=[
            {
                "principal": entry.principal,
                "kvno": entry.kvno,
                "enctype": entry.enctype,
                "enctype_name": entry.enctype_name,
                "timestamp": entry.timestamp.isoformat(),
            }
            for entry in entries
        ],
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=uploaded_by,
    )
    path = keytab_path(row)
    written = False
    try:
        # The row goes in first: a second upload of the same name waits on the unique index and fails
        # there, instead of overwriting a file that the first upload's row already points to.
        with transaction.atomic():
            _refuse_taken_name(file_name)
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                _refuse_taken_name(file_name)
                raise
            _write_private_file(path, data)
            written = True
    except BaseException:
        if written:
            path.unlink(missing_ok=True)
        raise
    return row


def delete_keytab(*, keytab: Keytab) -> None:
    """Remove a keytab's row and its file (a file already gone is fine)."""
    path = keytab_path(keytab)
    with transaction.atomic():
        keytab.delete()
        path.unlink(missing_ok=True)


def _refuse_taken_name(file_name: str) -> None:
    holder = Keytab.objects.filter(file_name=file_name).select_related("domain").first()
    if holder is not None:
        raise ValidationError(
            f"A keytab named {file_name} is already uploaded for the domain {holder.domain.name}; "
            "delete it there first (IceWarp keeps one file per principal for the whole server).",
            code="duplicate",
        )


def _write_private_file(path: Path, data: bytes) -> None:
    """Write the file atomically and readable by the owner only, from its first byte on."""
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), 0o600)  # mkstemp's 0600 already; said again, as the key depends on it
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
