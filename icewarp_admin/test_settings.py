"""Settings for the test suite: the real ones, with a fast password hasher (PBKDF2 dominates otherwise)."""

from icewarp_admin.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
