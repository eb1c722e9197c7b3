"""Stored secrets (the bind password) are Fernet tokens under the keys in SECRETS_ENCRYPTION_KEYS."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts."""


def _keys() -> MultiFernet:
    return MultiFernet(
        [Fernet(key.encode() if isinstance(key, str) else key) for key in settings.SECRETS_ENCRYPTION_KEYS]
    )


def encrypt_secret(plain: str) -> str:
    """Encrypt under the first (current) key."""
    return _keys().encrypt(plain.encode()).decode() if plain else ""


def decrypt_secret(token: str) -> str:
    """Decrypt with any configured key; raise SecretUnreadable (never showing the token) when none fits."""
    if not token:
        return ""
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored password cannot be decrypted with the configured SECRETS_ENCRYPTION_KEYS; "
            "add the old key back or type the password again."
        ) from None


def reencrypt_secret(token: str) -> str:
    """The same secret under the current key (for key rotation)."""
    if not token:
        return ""
    try:
        return _keys().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("A stored password cannot be decrypted with any configured key.") from None
