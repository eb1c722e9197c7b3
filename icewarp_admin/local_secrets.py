"""Secrets that an embedded install keeps in files when the environment does not provide them."""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet


def read_or_create(path: Path, *, generate: Callable[[], str]) -> str:
    """Return the secret stored at path, creating it (mode 0600) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once must agree on one secret, not overwrite each other's.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def new_django_secret_key() -> str:
    """A fresh value for Django's SECRET_KEY."""
    return secrets.token_urlsafe(50)


def new_fernet_key() -> str:
    """A fresh key for encrypting stored secrets."""
    return Fernet.generate_key().decode()
