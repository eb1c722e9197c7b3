"""What differs between directory servers: defaults, identity decoding, account state, change tracking."""

from __future__ import annotations

from directory_sync.choices import ServerType
from directory_sync.servers.active_directory import ACTIVE_DIRECTORY
from directory_sync.servers.base import ServerProfile
from directory_sync.servers.generic import GENERIC_LDAP

PROFILES: dict[str, ServerProfile] = {
    ServerType.ACTIVE_DIRECTORY: ACTIVE_DIRECTORY,
    ServerType.GENERIC: GENERIC_LDAP,
}


def profile_for(server_type: str) -> ServerProfile:
    """The profile of a server type (generic LDAP for anything unknown)."""
    return PROFILES.get(server_type, GENERIC_LDAP)


__all__ = ["PROFILES", "ServerProfile", "profile_for"]
