"""Directory Service form validators, and the filter and DN checks they rely on."""

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ValidationError

from directory_sync.ldap.filters import DnError, FilterError, check_dn, dn_is_within, dn_key, normalize_filter
from directory_sync.validation import (
    parse_host,
    parse_host_domain_list,
    validate_attribute_name,
    validate_base_dn,
    validate_bind_user,
    validate_ca_bundle,
    validate_filter,
    validate_host,
    validate_host_domain_list,
    validate_ou_root,
    validate_service_name,
    validate_vcard_map,
)


def refused(validator: Callable[[str], object], value: str) -> str:
    """Return the message validator gives for value (which it must refuse)."""
    with pytest.raises(ValidationError) as error:
        validator(value)
    return " ".join(error.value.messages)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("User", "(objectClass=User)"),
        (" inetOrgPerson ", "(objectClass=inetOrgPerson)"),
        ("groupOfNames", "(objectClass=groupOfNames)"),
        ("group-of-x2", "(objectClass=group-of-x2)"),
        ("(userAccountControl=66048)", "(userAccountControl=66048)"),
        ("(userAccountControl:1.2.840.113556.1.4.803:=2)", "(userAccountControl:1.2.840.113556.1.4.803:=2)"),
        ("(:dn:2.4.6.8.10:=Dino)", "(:dn:2.4.6.8.10:=Dino)"),
        ("(cn=\\2a\\28x\\29)", "(cn=\\2a\\28x\\29)"),
        ("(mail=*)", "(mail=*)"),
        ("(cn=*a*b)", "(cn=*a*b)"),
        ("(cn=)", "(cn=)"),
        ("(cn~=Jon)", "(cn~=Jon)"),
        ("(uSNChanged>=1000)", "(uSNChanged>=1000)"),
        ("(cn;lang-en=x)", "(cn;lang-en=x)"),
        ("(2.5.4.3=x)", "(2.5.4.3=x)"),
        ("(cn=Novák)", "(cn=Novák)"),
        ("(cn=a=b)", "(cn=a=b)"),
        ("(&(objectClass=inetOrgPerson)(mail=*))", "(&(objectClass=inetOrgPerson)(mail=*))"),
        ("(&(a=1) (b=2))", "(&(a=1) (b=2))"),
        (
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(|(mail=*)(proxyAddresses=*)))",
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(|(mail=*)(proxyAddresses=*)))",
        ),
    ],
)
def test_good_filters(typed: str, sent: str) -> None:
    assert normalize_filter(typed) == sent


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Enter a filter"),
        ("(cn=a", "The filter is not closed: it opens 1 parenthesis and closes 0"),
        ("(&(cn=a)(sn=b)", "it opens 3 parentheses and closes 2"),
        ("(cn=a))", "one “)” too many: it opens 1 parenthesis and closes 2"),
        ("cn=a)", "Put the whole filter in parentheses, e.g. (cn=a)"),
        ("cn=a", "Put the whole filter in parentheses, e.g. (cn=a)"),
        ("user_class", "neither an object class name"),
        ("((cn=a))", "Remove the extra “(”"),
        ("(cn=a)(sn=b)", "write (&(a=1)(b=2))"),
        ("(cn~a)", "use =, ~=, >= or <="),
        ("(cn>a)", "use =, ~=, >= or <="),
        ("()", "empty condition “()”"),
        ("( )", "empty condition"),
        ("(=a)", "“(=a)” has no attribute before “=”"),
        ("(>=a)", "no attribute before “=”"),
        ("(a b=1)", "“a b” in “(a b=1)” cannot contain spaces"),
        ("(1a=b)", "“1a” in “(1a=b)” is not an attribute name"),
        ("(User)", "write attribute=value, e.g. (objectClass=User)"),
        ("(cn=a(b)", "write it as \\28"),
        ("(cn=John (Sales))", "write it as \\28"),
        ("(cn=a)b)", "write it as \\29"),
        ("(&)", "“(&)” needs at least one condition"),
        ("(|)", "“(|)” needs at least one condition"),
        ("(!)", "“(!)” needs one condition"),
        ("(!(a=1)(b=2))", "write (!(|(a=1)(b=2)))"),
        ("(!a=1)", "write (!(a=1))"),
        ("(&(a=1)b=2)", "each condition needs its own parentheses"),
        ("(cn=a\\zz)", "“\\zz” in “(cn=a\\zz)” is not a valid escape"),
        ("(cn=a\\2)", "“\\2” in “(cn=a\\2)” is not a valid escape"),
        ("(cn>=a*)", "write \\2a to match a literal *"),
        ("(cn=a**b)", "two * in a row"),
        ("(:=a)", "is not a valid extensible match"),
    ],
)
def test_bad_filters_say_what_to_fix(typed: str, says: str) -> None:
    with pytest.raises(FilterError) as error:
        normalize_filter(typed)
    assert says in str(error.value)


def test_validate_filter_keeps_what_was_typed() -> None:
    assert validate_filter("") == ""
    assert validate_filter("  User ") == "User"
    assert validate_filter(" (&(a=1)(b=2)) ") == "(&(a=1)(b=2))"
    assert "has no attribute before" in refused(validate_filter, "(=a)")
    assert "is not closed" in refused(validate_filter, "(&(a=1)")


# --------------------------------------------------------------------------- DNs


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("dc=example,dc=com", "dc=example,dc=com"),
        ("cn=Users, dc=example, dc=com", "cn=Users,dc=example,dc=com"),
        (" CN = Lukas Novak , OU=Client,DC=icewarp,DC=in ", "CN=Lukas Novak,OU=Client,DC=icewarp,DC=in"),
        ("cn=Smith\\, John,dc=x", "cn=Smith\\, John,dc=x"),
        ("cn=a\\2Cb,dc=x", "cn=a\\2Cb,dc=x"),
        ("cn=a+sn=b,dc=x", "cn=a+sn=b,dc=x"),
        ("cn=a=b,dc=x", "cn=a=b,dc=x"),
        ("cn=a#b,dc=x", "cn=a#b,dc=x"),
        ("cn=\\#a,dc=x", "cn=\\#a,dc=x"),
        ("cn=trailing\\ ,dc=x", "cn=trailing\\ ,dc=x"),
        ("ou=Zürich,dc=x", "ou=Zürich,dc=x"),
    ],
)
def test_good_dns(typed: str, stored: str) -> None:
    assert check_dn(typed) == stored
    assert validate_base_dn(typed) == stored


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("example.com", "“example.com” is not attribute=value: a DN looks like cn=Users,dc=example,dc=com"),
        ("cn=a,,dc=b", "has an empty part"),
        (",cn=a", "has an empty part"),
        ("cn=a,", "“cn=a,” ends with “,”"),
        ("cn=a+", "ends with “+”"),
        ("=a", "has no attribute name before an “=”"),
        ("cn=", "“cn=” has no value"),
        ("cn=,dc=x", "“cn=” in “cn=,dc=x” has no value"),
        ("dc=example;dc=com", "with commas, not “;”"),
        ("c n=a", "“c n” in “c n=a” cannot contain spaces"),
        ("1cn=a", "“1cn” in “1cn=a” is not an attribute name"),
        ("2.5.4.3=a", "rather than the numeric OID “2.5.4.3”"),
        ("cn=a\\zz", "“\\z” in “cn=a\\zz” is not a valid escape"),
        ("cn=a\\", "is not a valid escape"),
        ('cn="Smith, John",dc=x', "Quotes are not DN syntax"),
        ("cn=a<b", "write \\<"),
        ("cn=#04024869", "Hex-encoded values"),
    ],
)
def test_bad_dns_say_what_to_fix(typed: str, says: str) -> None:
    with pytest.raises(DnError) as error:
        check_dn(typed)
    assert says in str(error.value)
    assert says in refused(validate_base_dn, typed)


def test_base_dn_may_be_empty() -> None:
    assert validate_base_dn("  ") == ""


def test_dn_comparison_ignores_case_spaces_and_escaping() -> None:
    assert dn_key("CN=Smith\\, John, DC=Example") == dn_key("cn=smith\\2c  john,dc=example")
    assert dn_is_within("OU=Webmail,OU=Devel,DC=icewarp,DC=in", "ou=devel, dc=ICEWARP, dc=in")
    assert dn_is_within("ou=devel,dc=icewarp,dc=in", "OU=Devel,DC=icewarp,DC=in")
    assert dn_is_within("ou=devel,dc=icewarp,dc=in", "")
    assert not dn_is_within("OU=Devel,DC=icewarp,DC=com", "DC=icewarp,DC=in")
    assert not dn_is_within("DC=in", "DC=icewarp,DC=in")
    assert not dn_is_within("ou=develop,dc=in", "ou=devel,dc=in")


# --------------------------------------------------------------------------- hosts


@pytest.mark.parametrize(
    ("typed", "stored", "parsed"),
    [
        ("dc1.example.com", "dc1.example.com", ("dc1.example.com", None, False)),
        (" DC1.Example.COM. ", "DC1.Example.COM.", ("DC1.Example.COM", None, False)),
        ("dc1", "dc1", ("dc1", None, False)),
        ("10.0.0.5", "10.0.0.5", ("10.0.0.5", None, False)),
        ("2001:db8::1", "2001:db8::1", ("2001:db8::1", None, False)),
        ("[2001:DB8:0::1]", "[2001:DB8:0::1]", ("2001:db8::1", None, False)),
        ("dc1.example.com:3268", "dc1.example.com:3268", ("dc1.example.com", 3268, False)),
        ("ldap://dc1.example.com", "ldap://dc1.example.com", ("dc1.example.com", None, False)),
        ("LDAPS://dc1.example.com:636/", "ldaps://dc1.example.com:636", ("dc1.example.com", 636, True)),
        ("ldaps://[2001:db8::1]:636", "ldaps://[2001:db8::1]:636", ("2001:db8::1", 636, True)),
        ("ldap://10.0.0.5:389", "ldap://10.0.0.5:389", ("10.0.0.5", 389, False)),
        ("ldaps://dc.bücher.de", "ldaps://dc.bücher.de", ("dc.xn--bcher-kva.de", None, True)),
    ],
)
def test_good_hosts(typed: str, stored: str, parsed: tuple[str, int | None, bool]) -> None:
    assert validate_host(typed) == stored
    assert parse_host(typed) == parsed


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("ldaps://dc1.example.com:70000", "Port 70000 is out of range 1–65535"),
        ("dc1:0", "Port 0 is out of range 1–65535"),
        ("ldap://dc1:abc", "The port “abc” must be a number"),
        ("ldap://dc1:", "ends with “:” but no port"),
        ("http://dc1.example.com", "Use ldap:// or ldaps://, not http://"),
        ("LDAPI://dc1", "Use ldap:// or ldaps://, not ldapi://"),
        ("dc 1.example.com", "a host name cannot contain spaces"),
        ("dc_1.example.com", "“_” is not allowed in a host name"),
        ("-dc.example.com", "each part between dots (here “-dc”)"),
        ("dc..example.com", "two dots in a row"),
        ("ldap://admin@dc1.example.com", "Remove “admin@” from the address"),
        ("ldap://dc1.example.com/dc=example,dc=com", "Remove “/dc=example,dc=com” after the host"),
        ("ldap://dc1.example.com/?x", "Remove “/?x” after the host"),
        ("dc1.example.com/", "Remove “/” after the host"),
        ("ldap://", "has no host name"),
        ("ldap://2001:db8::1", "ldap://[2001:db8::1]"),
        ("ldap://[2001:db8::1", "opens “[” but does not close it"),
        ("[2001:db8::1]x", "only :port may follow"),
        ("[10.0.0.1]", "Brackets are only for IPv6 addresses"),
        ("[dc1]", "“dc1” is not a valid IPv6 address"),
        ("300.1.1.1", "“300.1.1.1” is not a valid IPv4 address"),
        ("10.0.0", "is not a valid IPv4 address"),
        ("x://y://z", "Use ldap:// or ldaps://, not x://"),
    ],
)
def test_bad_hosts_say_what_to_fix(typed: str, says: str) -> None:
    assert says in refused(validate_host, typed)


def test_empty_host() -> None:
    assert validate_host("  ") == ""
    assert "Enter the directory server's host name" in refused(parse_host, "")


# --------------------------------------------------------------------------- bind user


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("", ""),
        ("cn=sync,dc=example,dc=com", "cn=sync,dc=example,dc=com"),
        ("CN=Sync User, CN=Users, DC=example, DC=com", "CN=Sync User,CN=Users,DC=example,DC=com"),
        ("sync@example.com", "sync@example.com"),
        ("Sync.User@CORP.EXAMPLE.COM", "Sync.User@CORP.EXAMPLE.COM"),
        ("sync@corp", "sync@corp"),
        (" EXAMPLE\\sync ", "EXAMPLE\\sync"),
        ("EXAMPLE-01\\sync.user", "EXAMPLE-01\\sync.user"),
    ],
)
def test_good_bind_users(typed: str, stored: str) -> None:
    assert validate_bind_user(typed) == stored


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("sync", "Enter the bind user as a DN (cn=sync,dc=example,dc=com), as user@REALM"),
        ("@example.com", "Write the user name before “@”"),
        ("sync@", "Write the realm after “@”"),
        ("a@b@example.com", "has more than one “@”"),
        ("sync @example.com", "Remove the space before “@”"),
        ("sync@exa mple.com", "the realm cannot contain spaces"),
        ("sync@-bad.com", "each part between dots"),
        ("\\sync", "Write the NetBIOS domain before “\\”"),
        ("EXAMPLE\\", "Write the user name after “EXAMPLE\\”"),
        ("VERYLONGDOMAINNAME\\sync", "“VERYLONGDOMAINNAME” is not a NetBIOS domain name"),
        ("EX AMPLE\\sync", "“EX AMPLE” is not a NetBIOS domain name"),
        ("EXAMPLE\\a/b", "The user name “a/b” cannot contain /"),
        ("EXAMPLE\\a\\b", "cannot contain \\"),
        ("cn=sync,", "“cn=sync,” ends with “,”"),
        ("cn=sync;dc=x", "with commas, not “;”"),
    ],
)
def test_bad_bind_users_say_what_to_fix(typed: str, says: str) -> None:
    assert says in refused(validate_bind_user, typed)


# --------------------------------------------------------------------------- HOSTDOMAIN


@pytest.mark.parametrize(
    ("typed", "stored", "parsed"),
    [
        ("", "", ("", [])),
        ("ADDomain", "ADDomain", ("ADDomain", [])),
        ("ADDomain;", "ADDomain;", ("ADDomain", [])),
        (" ADDomain ; Example.COM ; * ", "ADDomain;Example.COM;*", ("ADDomain", ["example.com", "*"])),
        ("corp.example.local;mail.example.com", "corp.example.local;mail.example.com", None),
        ("ADDomain;bücher.de;", "ADDomain;bücher.de;", ("ADDomain", ["xn--bcher-kva.de"])),
        ("example.com;example.com", "example.com;example.com", ("example.com", ["example.com"])),
    ],
)
def test_good_host_domain_lists(typed: str, stored: str, parsed: tuple[str, list[str]] | None) -> None:
    assert validate_host_domain_list(typed) == stored
    if parsed is not None:
        assert parse_host_domain_list(typed) == parsed


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        (";example.com", "The first item must be the directory's own domain"),
        ("*;example.com", "“*” stands for any mail domain: it can only follow the directory's own domain"),
        ("ADDomain;example.com;EXAMPLE.com", "The mail domain “EXAMPLE.com” is listed twice"),
        ("ADDomain;*;*", "The mail domain “*” is listed twice"),
        ("ADDomain;;example.com", "Item 2 is empty"),
        ("ADDomain;*.example.com", "use * alone to accept any mail domain"),
        ("ADDomain;localhost", "“localhost” has a single label"),
        ("ADDomain;exa mple.com", "is not a domain name"),
        ("NetBIOSNameTooLong;example.com", "is not a NetBIOS domain name (1 to 15 letters"),
        ("AD Domain", "a domain name cannot contain spaces"),
        ("admin@ADDomain", "write only the part after the @"),
        ("corp..local", "two dots in a row"),
    ],
)
def test_bad_host_domain_lists_say_what_to_fix(typed: str, says: str) -> None:
    assert says in refused(validate_host_domain_list, typed)


# --------------------------------------------------------------------------- Kerberos service name


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "HTTP/mail.example.com@EXAMPLE.COM",
        "mail@EXAMPLE.COM",
        "imap/mail@CORP",
        "HTTP/mail@EXAMPLE-1.COM",
    ],
)
def test_good_service_names(typed: str) -> None:
    assert validate_service_name(f" {typed} ") == typed


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("HTTP/mail.example.com@example.com", "Write the realm in capitals: EXAMPLE.COM"),
        ("mail@Example.Com", "Write the realm in capitals: EXAMPLE.COM"),
        ("HTTP/mail.example.com", "Add “@” and the Active Directory realm"),
        ("HTTP/mail@EXAMPLE.COM@X", "exactly one “@”"),
        ("HTTP/mail.example.com@", "Write the realm after “@”, in capitals"),
        ("@EXAMPLE.COM", "Write the service and host before “@”"),
        ("HTTP/@EXAMPLE.COM", "Write the host name after “HTTP/”"),
        ("/mail@EXAMPLE.COM", "Write the service before “/”"),
        ("HTTP/a/b@EXAMPLE.COM", "A service name has one “/”"),
        ("HTTP/mail example@EXAMPLE.COM", "A service name cannot contain spaces"),
        ("HTTP/mail_1@EXAMPLE.COM", "“_” is not allowed in a host name"),
        ("HTTP/mail@EXAMPLE..COM", "two dots in a row"),
        ("HTTP/mail@ÜBER.COM", "must be plain ASCII"),
    ],
)
def test_bad_service_names_say_what_to_fix(typed: str, says: str) -> None:
    assert says in refused(validate_service_name, typed)


# --------------------------------------------------------------------------- attribute names


@pytest.mark.parametrize("typed", ["", "objectGUID", "entryUUID", "whenChanged", "x-custom-id", "2.5.4.3"])
def test_good_attribute_names(typed: str) -> None:
    assert validate_attribute_name(f" {typed}") == typed


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        (
            "objectGUID;binary",
            "Attribute options such as ;binary are not allowed here: write “objectGUID” alone",
        ),
        ("1abc", "“1abc” is not an attribute name"),
        ("object_guid", "“object_guid” is not an attribute name"),
        ("object GUID", "an attribute name cannot contain spaces"),
        ("2.5.04.3", "is not an attribute name"),
        ("2.", "is not an attribute name"),
    ],
)
def test_bad_attribute_names_say_what_to_fix(typed: str, says: str) -> None:
    assert says in refused(validate_attribute_name, typed)


# --------------------------------------------------------------------------- vCard map


def test_vcard_map_validation() -> None:
    assert validate_vcard_map(" \r\n ") == ""
    assert validate_vcard_map("FN:${displayName}\r\nN:${sn};${givenName}\r\n") == (
        "FN:${displayName}\nN:${sn};${givenName}"
    )
    message = refused(validate_vcard_map, "# map\r\nFN:${displayName}\r\nTEL;TYPE=CELL ${mobile}\r\n")
    assert message.startswith("Line 3 “TEL;TYPE=CELL ${mobile}”: expected ITEM:template")
    assert "Line 1 “FN:${}”" in refused(validate_vcard_map, "FN:${}")


# --------------------------------------------------------------------------- CA bundle


def _certificate_and_key(common_name: str) -> tuple[str, str]:
    """Return a self-signed certificate and its private key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@pytest.fixture(scope="module")
def pems() -> dict[str, str]:
    root, key = _certificate_and_key("Example Root CA")
    intermediate, _ = _certificate_and_key("Example Issuing CA")
    return {"root": root, "intermediate": intermediate, "key": key}


def test_good_ca_bundles(pems: dict[str, str]) -> None:
    assert validate_ca_bundle("") == ""
    assert validate_ca_bundle(f"\n  {pems['root']}  \n") == pems["root"]
    both = pems["root"] + pems["intermediate"]
    assert validate_ca_bundle(both.replace("\n", "\r\n")) == both
    labelled = f"subject=Example Root CA\n{pems['root']}\nsubject=Example Issuing CA\n{pems['intermediate']}"
    assert validate_ca_bundle(labelled) == labelled.strip() + "\n"


def test_bad_ca_bundles(pems: dict[str, str]) -> None:
    assert "This is a private key, paste the CA certificate" in refused(validate_ca_bundle, pems["key"])
    assert "This is a private key" in refused(validate_ca_bundle, pems["root"] + pems["key"])
    assert "This is not a PEM certificate" in refused(validate_ca_bundle, "MIIBEDCBt6ADAgECAgEBMAoGCCqGSM49")
    assert "This is a public key" in refused(
        validate_ca_bundle, "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
    )
    assert "certificate request (CSR)" in refused(
        validate_ca_bundle, "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
    )
    assert "PKCS#7" in refused(validate_ca_bundle, "-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----")
    lines = pems["root"].splitlines()
    damaged = "\n".join([lines[0], lines[1][:10] + "!!" + lines[1][12:], *lines[2:]])
    assert "damaged or incomplete" in refused(validate_ca_bundle, damaged)
    truncated = "\n".join(lines[:-1])
    assert "damaged or incomplete" in refused(validate_ca_bundle, truncated)
    assert "incomplete" in refused(validate_ca_bundle, pems["root"] + "\n".join(lines[:-1]))


# --------------------------------------------------------------------------- root OU


def test_root_ou_inside_the_base_dn() -> None:
    base = "DC=icewarp,DC=in"
    assert validate_ou_root("", base) == ""
    assert validate_ou_root("OU=Webmail, OU=Devel, DC=icewarp, DC=in", base) == (
        "OU=Webmail,OU=Devel,DC=icewarp,DC=in"
    )
    assert validate_ou_root("ou=devel,dc=ICEWARP,dc=in", base) == "ou=devel,dc=ICEWARP,dc=in"
    assert validate_ou_root("dc=icewarp,dc=in", base) == "dc=icewarp,dc=in"
    assert validate_ou_root("ou=Devel,dc=other,dc=com", "") == "ou=Devel,dc=other,dc=com"
    assert validate_ou_root("ou=Devel,dc=other,dc=com", "not a dn") == "ou=Devel,dc=other,dc=com"


def test_root_ou_outside_the_base_dn_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        validate_ou_root("OU=Devel,DC=icewarp,DC=com", "DC=icewarp,DC=in")
    assert "The root organizational unit must be inside the DN DC=icewarp,DC=in" in error.value.messages[0]
    with pytest.raises(ValidationError) as error:
        validate_ou_root("Devel", "DC=icewarp,DC=in")
    assert "“Devel” is not attribute=value" in error.value.messages[0]
