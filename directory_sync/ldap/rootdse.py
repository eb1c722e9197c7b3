"""The root DSE: what the server says about itself before any search of the data."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final

from directory_sync.ldap.entries import Entry

PAGED_RESULTS_OID: Final = "1.2.840.113556.1.4.319"
DIRSYNC_OID: Final = "1.2.840.113556.1.4.841"
SYNCREPL_OID: Final = "1.3.6.1.4.1.4203.1.9.1.1"
SERVER_SIDE_SORT_OID: Final = "1.2.840.113556.1.4.473"

# Operational attributes are only returned when asked for; AD ignores "+" and wants its names spelled out.
ROOT_DSE_ATTRIBUTES: Final[tuple[str, ...]] = (
    "*",
    "+",
    "objectClass",
    "namingContexts",
    "defaultNamingContext",
    "rootDomainNamingContext",
    "configurationNamingContext",
    "schemaNamingContext",
    "supportedControl",
    "supportedExtension",
    "supportedFeatures",
    "supportedLDAPVersion",
    "supportedSASLMechanisms",
    "vendorName",
    "vendorVersion",
    "highestCommittedUSN",
    "dnsHostName",
    "ldapServiceName",
    "serverName",
    "dsServiceName",
    "isGlobalCatalogReady",
    "isSynchronized",
    "forestFunctionality",
    "domainFunctionality",
    "domainControllerFunctionality",
    "currentTime",
    "contextCSN",
)


def _text(entry: Entry, name: str) -> str:
    value = entry.first(name)
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _texts(entry: Entry, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in entry.get(name)]


def _int(entry: Entry, name: str) -> int | None:
    try:
        return int(_text(entry, name))
    except ValueError:
        return None


@dataclass(frozen=True)
class RootDse:
    """The server's self-description (root DSE), with a guess of the server kind."""

    vendor_name: str = ""
    vendor_version: str = ""
    naming_contexts: list[str] = field(default_factory=list)
    default_naming_context: str = ""
    supported_controls: list[str] = field(default_factory=list)
    supported_extensions: list[str] = field(default_factory=list)
    supported_ldap_versions: list[str] = field(default_factory=list)
    supported_sasl_mechanisms: list[str] = field(default_factory=list)
    server_kind: str = "LDAP"
    dns_host_name: str = ""
    server_name: str = ""
    highest_committed_usn: int | None = None
    invocation_id: str | None = None
    ds_service_name: str = ""
    forest_functionality: int | None = None
    domain_functionality: int | None = None
    is_global_catalog_ready: bool | None = None
    paged_results: bool = False
    dirsync: bool = False
    syncrepl: bool = False
    server_side_sort: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_entry(cls, entry: Entry) -> RootDse:
        """Read the root DSE entry (attribute names compared case-insensitively)."""
        controls = _texts(entry, "supportedControl")
        object_classes = {v.lower() for v in _texts(entry, "objectClass")}
        vendor = _text(entry, "vendorName")
        gc_ready = _text(entry, "isGlobalCatalogReady").upper()
        is_ad = (
            entry.has("forestFunctionality")
            or entry.has("domainControllerFunctionality")
            or (entry.has("defaultNamingContext") and entry.has("isGlobalCatalogReady"))
            or entry.has("dsServiceName")
        )
        if is_ad:
            kind = "Active Directory"
        elif "openldaprootdse" in object_classes or "openldap" in vendor.lower():
            kind = "OpenLDAP"
        elif vendor:
            kind = vendor
        else:
            kind = "LDAP"
        return cls(
            vendor_name=vendor,
            vendor_version=_text(entry, "vendorVersion"),
            naming_contexts=_texts(entry, "namingContexts"),
            default_naming_context=_text(entry, "defaultNamingContext"),
            supported_controls=controls,
            supported_extensions=_texts(entry, "supportedExtension"),
            supported_ldap_versions=_texts(entry, "supportedLDAPVersion"),
            supported_sasl_mechanisms=_texts(entry, "supportedSASLMechanisms"),
            server_kind=kind,
            dns_host_name=_text(entry, "dnsHostName"),
            server_name=_text(entry, "serverName"),
            highest_committed_usn=_int(entry, "highestCommittedUSN"),
            invocation_id=None,
            ds_service_name=_text(entry, "dsServiceName"),
            forest_functionality=_int(entry, "forestFunctionality"),
            domain_functionality=_int(entry, "domainFunctionality"),
            is_global_catalog_ready={"TRUE": True, "FALSE": False}.get(gc_ready),
            paged_results=PAGED_RESULTS_OID in controls,
            dirsync=DIRSYNC_OID in controls,
            syncrepl=SYNCREPL_OID in controls,
            server_side_sort=SERVER_SIDE_SORT_OID in controls,
        )
