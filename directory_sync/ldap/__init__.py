"""The only package that imports an LDAP library: ldap3 for the console, python-ldap for the sync's bulk reads
and syncrepl; sessions, paged searches and the root DSE, as plain data."""

from directory_sync.ldap.bulk import BulkSession, SyncMessage, open_bulk_session
from directory_sync.ldap.connection import (
    ENCRYPTION_FIX,
    DirectorySession,
    Endpoint,
    SessionOptions,
    endpoint_from_host,
    fetch_peer_certificate,
    make_ssl_context,
    open_endpoint,
    open_session,
    options_from_settings,
)
from directory_sync.ldap.entries import BINARY_ATTRIBUTES, Entry, Value
from directory_sync.ldap.errors import ERROR_KINDS, DirectoryError, ErrorKind
from directory_sync.ldap.rootdse import RootDse

__all__ = [
    "BINARY_ATTRIBUTES",
    "ENCRYPTION_FIX",
    "ERROR_KINDS",
    "BulkSession",
    "DirectoryError",
    "DirectorySession",
    "Endpoint",
    "Entry",
    "ErrorKind",
    "RootDse",
    "SessionOptions",
    "SyncMessage",
    "Value",
    "endpoint_from_host",
    "fetch_peer_certificate",
    "make_ssl_context",
    "open_bulk_session",
    "open_endpoint",
    "open_session",
    "options_from_settings",
]
