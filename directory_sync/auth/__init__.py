"""Mail users' authentication: a password checked against the local hash or by a bind to the directory,
password changes, throttling and the sign-in records (rules §9)."""

from directory_sync.auth.passwords import AuthResult, authenticate, change_password
from directory_sync.auth.throttle import clear_failures, current_limits

__all__ = ["AuthResult", "authenticate", "change_password", "clear_failures", "current_limits"]
