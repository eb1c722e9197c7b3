"""Validators for the Directory Service form fields: each takes the raw text, returns the value to store."""

from __future__ import annotations

import ipaddress
import re

import idna
from cryptography import x509
from django.core.exceptions import ValidationError

from directory_sync.ldap.filters import DnError, FilterError, check_dn, dn_is_within, normalize_filter
from directory_sync.rules.vcard import VCardMapError, parse_vcard_map
from icewarp_admin.mailserver.validators import normalize_domain_name

__all__ = [
    "parse_host",
    "parse_host_domain_list",
    "validate_attribute_name",
    "validate_base_dn",
    "validate_bind_user",
    "validate_ca_bundle",
    "validate_filter",
    "validate_host",
    "validate_host_domain_list",
    "validate_ou_root",
    "validate_service_name",
    "validate_vcard_map",
]

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_NETBIOS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,14}\Z")
_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+\Z")
_SERVICE = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_WINDOWS_USER_FORBIDDEN = frozenset('"/\\[]:;|=,+*?<>@')
_MAX_PORT = 65535
_MAX_DNS_NAME = 253
_BEGIN_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


def _invalid(message: str) -> ValidationError:
    """Return a ValidationError with code "invalid"."""
    return ValidationError(message, code="invalid")


def _dns_name(value: str, what: str) -> str:
    """Return the ASCII (IDNA) form of a DNS name (one label or more), or raise ValidationError."""
    name = value[:-1] if value.endswith(".") else value
    if not name:
        raise _invalid(f"Enter {what}.")
    if any(char.isspace() for char in name):
        raise _invalid(f"“{value}” is not valid: {what} cannot contain spaces.")
    if "_" in name:
        raise _invalid(f"“{value}” is not valid: “_” is not allowed in {what} (use a hyphen).")
    ascii_name = name
    if not name.isascii():
        try:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise _invalid(f"“{value}” is not a valid internationalized name: {exc}.") from exc
    if len(ascii_name) > _MAX_DNS_NAME:
        raise _invalid(
            f"{what.capitalize()} is at most {_MAX_DNS_NAME} characters; “{value}” has {len(name)}."
        )
    for label in ascii_name.split("."):
        if not label:
            raise _invalid(
                f"“{value}” is not valid: {what} cannot have two dots in a row or start with a dot."
            )
        if not _LABEL.match(label):
            raise _invalid(
                f"“{value}” is not valid: in {what}, each part between dots (here “{label}”) has 1 to 63 "
                "letters, digits or hyphens, with no hyphen at either end."
            )
    return ascii_name


# --------------------------------------------------------------------------- hosts


def _port(text: str, value: str) -> int:
    """Return the port number text stands for, or raise ValidationError."""
    if not text:
        raise _invalid(f"“{value}” ends with “:” but no port: add the port number, or remove the colon.")
    if not text.isascii() or not text.isdigit():
        raise _invalid(
            f"The port “{text}” must be a number from 1 to {_MAX_PORT} (389 for LDAP, 636 for LDAPS)."
        )
    port = int(text)
    if not 1 <= port <= _MAX_PORT:
        raise _invalid(f"Port {port} is out of range 1–{_MAX_PORT} (389 for LDAP, 636 for LDAPS).")
    return port


def parse_host(value: str) -> tuple[str, int | None, bool]:
    """Return (ASCII host without brackets, port or None, use_ssl) of a Hostname value, or raise."""
    text = value.strip()
    if not text:
        raise _invalid("Enter the directory server's host name or IP address.")
    use_ssl = False
    rest = text
    scheme_match = _SCHEME.match(text)
    if scheme_match:
        scheme = scheme_match.group(1).lower()
        if scheme not in ("ldap", "ldaps"):
            raise _invalid(f"Use ldap:// or ldaps://, not {scheme}://.")
        use_ssl = scheme == "ldaps"
        rest = text[scheme_match.end() :]
    elif "://" in text:
        raise _invalid(f"“{text}” does not start with ldap:// or ldaps://.")
    if "@" in rest:
        raise _invalid(
            f"Remove “{rest.split('@')[0]}@” from the address: enter the bind user in the Bind user field."
        )
    for separator in "/?#":
        if separator in rest:
            position = rest.index(separator)
            tail = rest[position:]
            if tail == "/" and scheme_match:
                rest = rest[:position]
                break
            raise _invalid(
                f"Remove “{tail}” after the host: the address is only ldap[s]://host[:port]; "
                "put the base DN in the DN field."
            )
    bracketed = rest.startswith("[")
    port: int | None = None
    if bracketed:
        close = rest.find("]")
        if close < 0:
            raise _invalid(
                f"“{text}” opens “[” but does not close it: write [2001:db8::1] or [2001:db8::1]:389."
            )
        host, after = rest[1:close], rest[close + 1 :]
        if after:
            if not after.startswith(":"):
                raise _invalid(f"Unexpected “{after}” after “]”: only :port may follow an IPv6 address.")
            port = _port(after[1:], text)
    elif rest.count(":") >= 2:
        if scheme_match:
            raise _invalid(
                "Write an IPv6 address in brackets inside an ldap:// address: "
                f"{scheme_match.group(0).lower()}[{rest}] (a port goes after the bracket: [{rest}]:389)."
            )
        host = rest
    elif ":" in rest:
        host, port_text = rest.split(":")
        port = _port(port_text, text)
    else:
        host = rest
    if not host:
        raise _invalid(f"“{text}” has no host name: write e.g. ldaps://dc1.example.com:636.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if bracketed and address.version != 6:
            raise _invalid(f"Brackets are only for IPv6 addresses: write {host} without them.")
        return address.compressed if address.version == 6 else str(address), port, use_ssl
    if bracketed or ":" in host:
        raise _invalid(f"“{host}” is not a valid IPv6 address.")
    last_label = host.rstrip(".").rsplit(".", 1)[-1]
    if last_label.isascii() and last_label.isdigit():
        raise _invalid(
            f"“{host}” is not a valid IPv4 address: write four numbers from 0 to 255, e.g. 10.0.0.5."
        )
    return _dns_name(host, "a host name"), port, use_ssl


def validate_host(value: str) -> str:
    """Return a Hostname field's value (scheme lower-cased, trailing / dropped); empty is allowed."""
    text = value.strip()
    if not text:
        return ""
    parse_host(text)
    scheme_match = _SCHEME.match(text)
    if scheme_match:
        text = scheme_match.group(1).lower() + "://" + text[scheme_match.end() :].removesuffix("/")
    return text


# --------------------------------------------------------------------------- bind user, DNs, filters


def validate_bind_user(value: str) -> str:
    """Return the bind user (a DN, user@REALM or DOMAIN\\user); empty means an anonymous bind."""
    text = value.strip()
    if not text:
        return ""
    if "=" in text:
        try:
            return check_dn(text)
        except DnError as exc:
            raise _invalid(str(exc)) from exc
    if "\\" in text:
        domain, _, user = text.partition("\\")
        if not domain:
            raise _invalid("Write the NetBIOS domain before “\\”, e.g. EXAMPLE\\sync.")
        if not _NETBIOS.match(domain):
            raise _invalid(
                f"“{domain}” is not a NetBIOS domain name: 1 to 15 letters, digits, hyphens or underscores "
                "(for a DNS domain write sync@example.com instead)."
            )
        if not user:
            raise _invalid(f"Write the user name after “{domain}\\”, e.g. {domain}\\sync.")
        forbidden = sorted(set(user) & _WINDOWS_USER_FORBIDDEN)
        if forbidden or user != user.strip():
            shown = " ".join(forbidden) if forbidden else "spaces at either end"
            raise _invalid(f"The user name “{user}” cannot contain {shown}.")
        return text
    if "@" in text:
        user, _, realm = text.rpartition("@")
        if not user:
            raise _invalid("Write the user name before “@”, e.g. sync@example.com.")
        if "@" in user:
            raise _invalid(f"“{text}” has more than one “@”: write user@REALM, e.g. sync@example.com.")
        if not realm:
            raise _invalid(f"Write the realm after “@”, e.g. {user}@example.com.")
        if user != user.rstrip():
            raise _invalid(f"Remove the space before “@” in “{text}”.")
        _dns_name(realm, "the realm")
        return text
    raise _invalid(
        "Enter the bind user as a DN (cn=sync,dc=example,dc=com), as user@REALM (sync@example.com) or as "
        "DOMAIN\\user (EXAMPLE\\sync); leave it empty for an anonymous bind."
    )


def validate_base_dn(value: str) -> str:
    """Return the base DN with insignificant spaces removed; empty is allowed."""
    text = value.strip()
    if not text:
        return ""
    try:
        return check_dn(text)
    except DnError as exc:
        raise _invalid(str(exc)) from exc


def validate_filter(value: str) -> str:
    """Return the filter as typed (stripped) once it is a valid objectClass name or RFC 4515 filter."""
    text = value.strip()
    if not text:
        return ""
    try:
        normalize_filter(text)
    except FilterError as exc:
        raise _invalid(str(exc)) from exc
    return text


def validate_ou_root(value: str, base_dn: str) -> str:
    """Return the root OU's DN (spaces removed) once it lies within base_dn; empty is allowed."""
    text = value.strip()
    if not text:
        return ""
    try:
        root = check_dn(text)
    except DnError as exc:
        raise _invalid(str(exc)) from exc
    base = base_dn.strip()
    try:
        inside = dn_is_within(root, base)
    except DnError:
        return root  # the base DN's own field reports its error
    if not inside:
        raise _invalid(
            f"The root organizational unit must be inside the DN {base}, e.g. ou=Staff,{check_dn(base)}."
        )
    return root


# --------------------------------------------------------------------------- domains, Kerberos, attributes


def _directory_domain(item: str) -> str:
    """Check the first HOSTDOMAIN item: a NetBIOS name or a DNS domain; return it as typed."""
    if not item:
        raise _invalid(
            "The first item must be the directory's own domain, e.g. ADDomain or corp.example.com; "
            "mail domains come after it, separated by “;”."
        )
    if item == "*" or "*" in item:
        raise _invalid(
            "“*” stands for any mail domain: it can only follow the directory's own domain, e.g. ADDomain;*."
        )
    if "@" in item:
        raise _invalid(f"“{item}” is not a domain: write only the part after the @.")
    if "." in item:
        _dns_name(item, "a domain name")
        return item
    if any(char.isspace() for char in item):
        raise _invalid(f"“{item}” is not valid: a domain name cannot contain spaces.")
    if not _NETBIOS.match(item):
        raise _invalid(
            f"“{item}” is not a NetBIOS domain name (1 to 15 letters, digits, hyphens or underscores); "
            "for a DNS domain write it in full, e.g. corp.example.com."
        )
    return item


def _host_domain_items(value: str) -> tuple[list[str], bool]:
    """Split a HOSTDOMAIN list into trimmed items; tell whether it ended with “;”."""
    items = [item.strip() for item in value.strip().split(";")]
    trailing = len(items) > 1 and not items[-1]
    if trailing:
        items.pop()
    return items, trailing


def parse_host_domain_list(value: str) -> tuple[str, list[str]]:
    """Return (directory domain as typed, [mail domains in ASCII lower case, or "*"]); ("", []) when empty."""
    if not value.strip():
        return "", []
    items, _ = _host_domain_items(value)
    directory = _directory_domain(items[0])
    mail_domains: list[str] = []
    for position, item in enumerate(items[1:], start=2):
        if not item:
            raise _invalid(f"Item {position} is empty: remove the extra “;”.")
        if item == "*":
            domain = "*"
        elif "*" in item:
            raise _invalid(f"“{item}”: use * alone to accept any mail domain, or write the domain in full.")
        else:
            domain = normalize_domain_name(item)
        if domain in mail_domains:
            raise _invalid(f"The mail domain “{item}” is listed twice: remove one.")
        mail_domains.append(domain)
    return directory, mail_domains


def validate_host_domain_list(value: str) -> str:
    """Return HOSTDOMAIN (directoryDomain[;mailDomain...]), spaces around items removed; empty is allowed."""
    if not value.strip():
        return ""
    parse_host_domain_list(value)
    items, trailing = _host_domain_items(value)
    return ";".join(items) + (";" if trailing else "")


def validate_service_name(value: str) -> str:
    """Return the SSO service name (SERVICE/host@REALM or host@REALM); empty is allowed."""
    text = value.strip()
    if not text:
        return ""
    example = "HTTP/mail.example.com@EXAMPLE.COM"
    if any(char.isspace() for char in text):
        raise _invalid(f"A service name cannot contain spaces; write it like {example}.")
    if "@" not in text:
        raise _invalid(f"Add “@” and the Active Directory realm, e.g. {example}.")
    if text.count("@") > 1:
        raise _invalid(f"A service name has exactly one “@”, e.g. {example}.")
    principal, realm = text.split("@")
    if not realm:
        raise _invalid(f"Write the realm after “@”, in capitals, e.g. {example}.")
    if not realm.isascii():
        raise _invalid(f"The realm “{realm}” must be plain ASCII, e.g. EXAMPLE.COM.")
    _dns_name(realm, "the realm")
    if realm != realm.upper():
        raise _invalid(f"Write the realm in capitals: {realm.upper()}.")
    if not principal:
        raise _invalid(f"Write the service and host before “@”, e.g. {example}.")
    host = principal
    if "/" in principal:
        service, _, host = principal.partition("/")
        if "/" in host:
            raise _invalid(f"A service name has one “/”, between the service and the host, e.g. {example}.")
        if not _SERVICE.match(service):
            raise _invalid(f"Write the service before “/” (HTTP, IMAP, SMTP, XMPP…), e.g. {example}.")
        if not host:
            raise _invalid(f"Write the host name after “{service}/”, e.g. {example}.")
    _dns_name(host, "a host name")
    return text


def validate_attribute_name(value: str) -> str:
    """Return an LDAP attribute name (RFC 4512 descr or numeric OID); empty is allowed."""
    text = value.strip()
    if not text:
        return ""
    if ";" in text:
        raise _invalid(
            f"Attribute options such as ;binary are not allowed here: write “{text.split(';')[0]}” alone."
        )
    if any(char.isspace() for char in text):
        raise _invalid(f"“{text}” is not valid: an attribute name cannot contain spaces.")
    if not (_DESCR.match(text) or _NUMERICOID.match(text)):
        raise _invalid(
            f"“{text}” is not an attribute name: it starts with a letter and has only letters, digits and "
            "hyphens (e.g. objectGUID, entryUUID), or is a numeric OID (e.g. 2.5.4.3)."
        )
    return text


# --------------------------------------------------------------------------- vCard map, certificates


def validate_vcard_map(value: str) -> str:
    """Return the vCard map with LF line ends; empty is allowed (the default map applies)."""
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return ""
    try:
        parse_vcard_map(value)
    except VCardMapError as exc:
        raise _invalid(str(exc)) from exc
    return text


def validate_ca_bundle(value: str) -> str:
    """Return one or more PEM CA certificates (LF line ends, final newline); empty is allowed."""
    text = value.replace("\r\n", "\n").strip()
    if not text:
        return ""
    if "PRIVATE KEY-----" in text:
        raise _invalid(
            "This is a private key, paste the CA certificate (the text from -----BEGIN CERTIFICATE----- "
            "to -----END CERTIFICATE-----); keep the key secret."
        )
    if "-----BEGIN CERTIFICATE REQUEST-----" in text or "-----BEGIN NEW CERTIFICATE REQUEST-----" in text:
        raise _invalid(
            "This is a certificate request (CSR), paste the CA certificate that signs the server's."
        )
    if "-----BEGIN PKCS7-----" in text:
        raise _invalid(
            "This is a PKCS#7 bundle: convert it with “openssl pkcs7 -print_certs” "
            "and paste the certificates."
        )
    if "-----BEGIN PUBLIC KEY-----" in text or "-----BEGIN RSA PUBLIC KEY-----" in text:
        raise _invalid("This is a public key, paste the CA certificate.")
    if _BEGIN_CERTIFICATE not in text:
        raise _invalid(
            "This is not a PEM certificate: paste the CA certificate's text, from "
            "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE----- (convert a binary .cer/.der file with "
            "“openssl x509 -inform der -in ca.cer”)."
        )
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError as exc:
        raise _invalid(
            "A certificate in the text is damaged or incomplete: paste it again, from "
            "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
        ) from exc
    if len(certificates) != text.count(_BEGIN_CERTIFICATE):
        raise _invalid(
            "A certificate in the text is incomplete: each -----BEGIN CERTIFICATE----- needs its "
            "-----END CERTIFICATE-----."
        )
    return text + "\n"
