"""What the acceptor reads of a Negotiate token itself, before and after GSSAPI: the ticket's service
principal, encryption type and key version (the clear part of an AP-REQ, RFC 4120 §5.5.1), and the error code
of the KRB-ERROR a refused context answers with (§5.9.1). GSSAPI only says "wrong principal" or "no key";
these name the service, the version and the type, so that the administrator knows which keytab to export.

A minimal DER reader: tag, length, value; nothing of the encrypted parts is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# GSS-API framing (RFC 2743 §3.1) and the mechanisms inside it.
_GSS_FRAME: Final = 0x60
_OID: Final = 0x06
SPNEGO_OID: Final = bytes.fromhex("2b0601050502")  # 1.3.6.1.5.5.2
KRB5_OIDS: Final = (
    bytes.fromhex("2a864886f712010202"),  # 1.2.840.113554.1.2.2
    bytes.fromhex("2a864882f712010202"),  # 1.2.840.48018.1.2.2 (Microsoft's misencoded one)
)
_TOK_AP_REQ: Final = b"\x01\x00"
_TOK_KRB_ERROR: Final = b"\x03\x00"
_AP_REQ: Final = 0x6E  # [APPLICATION 14]
_TICKET: Final = 0x61  # [APPLICATION 1]
_KRB_ERROR: Final = 0x7E  # [APPLICATION 30]
_NTLMSSP: Final = b"NTLMSSP\x00"


class TokenError(ValueError):
    """The bytes are not a Kerberos token this reader understands; the message says what they are."""


@dataclass(frozen=True)
class TicketFacts:
    """The clear part of the ticket in an AP-REQ."""

    service: str  # SERVICE/host@REALM
    enctype: int
    kvno: int | None


def _read(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at pos."""
    if pos + 2 > len(data):
        raise TokenError("the token ends inside an element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise TokenError("the token uses a tag form Kerberos does not")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise TokenError("the token has a length field that is not DER")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise TokenError("the token is shorter than it says")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """The elements of a constructed value by tag (the first of each tag)."""
    found: dict[int, tuple[int, int]] = {}
    pos = start
    while pos < end:
        tag, value_start, value_end = _read(data, pos)
        found.setdefault(tag, (value_start, value_end))
        pos = value_end
    return found


def _only(data: bytes, start: int, end: int, tag: int, what: str) -> tuple[int, int]:
    found_tag, value_start, value_end = _read(data, start)
    if found_tag != tag:
        raise TokenError(f"expected {what} in the token")
    return value_start, value_end


def _field(children: dict[int, tuple[int, int]], number: int, what: str) -> tuple[int, int]:
    try:
        return children[0xA0 + number]
    except KeyError:
        raise TokenError(f"the token lacks {what}") from None


def _integer(data: bytes, start: int, end: int) -> int:
    tag, value_start, value_end = _read(data, start)
    if tag != 0x02:
        raise TokenError("expected an integer in the token")
    return int.from_bytes(data[value_start:value_end], "big", signed=True)


def _string(data: bytes, start: int, end: int) -> str:
    tag, value_start, value_end = _read(data, start)
    if tag not in (0x1B, 0x0C, 0x16, 0x13):  # GeneralString, UTF8String, IA5String, PrintableString
        raise TokenError("expected a name in the token")
    return data[value_start:value_end].decode("utf-8", "replace")


def _unwrap_gss(data: bytes) -> tuple[bytes, bytes]:
    """(mechanism OID, inner token) of a GSS-API framed token."""
    tag, start, end = _read(data, 0)
    if tag != _GSS_FRAME:
        raise TokenError("the token is not a GSS-API token")
    oid_tag, oid_start, oid_end = _read(data, start)
    if oid_tag != _OID:
        raise TokenError("the GSS-API token names no mechanism")
    return data[oid_start:oid_end], data[oid_end:end]


def _krb5_message(data: bytes, token_id: bytes) -> bytes:
    """The Kerberos message in a krb5 GSS token of this TOK_ID."""
    oid, inner = _unwrap_gss(data)
    if oid not in KRB5_OIDS:
        raise TokenError("the token is for another mechanism than Kerberos")
    if inner[:2] != token_id:
        raise TokenError("the Kerberos token carries another message")
    return inner[2:]


def _spnego_inner(data: bytes) -> bytes:
    """The mechanism token inside a SPNEGO NegTokenInit (RFC 4178 §4.2.1), or the token itself."""
    if data.startswith(_NTLMSSP):
        raise TokenError(
            "the browser sent NTLM, not Kerberos: it has no Kerberos ticket for this server (not signed in "
            "to "
            "the domain, or the site is not in its list of servers allowed to negotiate)"
        )
    oid, inner = _unwrap_gss(data)
    if oid in KRB5_OIDS:
        return data
    if oid != SPNEGO_OID:
        raise TokenError("the token is neither SPNEGO nor Kerberos")
    tag, start, end = _read(inner, 0)
    if tag != 0xA0:
        raise TokenError("the SPNEGO token does not open a negotiation")
    sequence_start, sequence_end = _only(inner, start, end, 0x30, "a NegTokenInit")
    fields = _children(inner, sequence_start, sequence_end)
    if 0xA2 not in fields:
        raise TokenError(
            "the SPNEGO token carries no mechanism token (the browser offered no Kerberos ticket)"
        )
    mech_start, _ = fields[0xA2]
    tag, value_start, value_end = _read(inner, mech_start)
    if tag != 0x04:
        raise TokenError("the SPNEGO mechanism token is not an octet string")
    mech_token = inner[value_start:value_end]
    if mech_token.startswith(_NTLMSSP):
        return _spnego_inner(mech_token)
    return mech_token


def ticket_facts(token: bytes) -> TicketFacts:
    """The service, encryption type and key version of the ticket a Negotiate token presents."""
    message = _krb5_message(_spnego_inner(token), _TOK_AP_REQ)
    start, end = _only(message, 0, len(message), _AP_REQ, "an AP-REQ")
    sequence = _children(message, *_only(message, start, end, 0x30, "an AP-REQ"))
    ticket_start, ticket_end = _field(sequence, 3, "a ticket")
    inner_start, inner_end = _only(message, ticket_start, ticket_end, _TICKET, "a ticket")
    ticket = _children(message, *_only(message, inner_start, inner_end, 0x30, "a ticket"))
    realm = _string(message, *_field(ticket, 1, "the ticket's realm"))
    sname_start, sname_end = _field(ticket, 2, "the ticket's service")
    sname = _children(message, *_only(message, sname_start, sname_end, 0x30, "a principal name"))
    strings_start, strings_end = _field(sname, 1, "the service's name")
    list_start, list_end = _only(message, strings_start, strings_end, 0x30, "a principal name")
    components: list[str] = []
    pos = list_start
    while pos < list_end:
        _, _, element_end = _read(message, pos)
        components.append(_string(message, pos, element_end))
        pos = element_end
    encrypted = _children(
        message, *_only(message, *_field(ticket, 3, "the ticket's key"), 0x30, "a ticket part")
    )
    enctype = _integer(message, *_field(encrypted, 0, "the ticket's encryption type"))
    kvno = _integer(message, *encrypted[0xA1]) if 0xA1 in encrypted else None
    return TicketFacts(service="/".join(components) + "@" + realm, enctype=enctype, kvno=kvno)


def error_code(token: bytes) -> int | None:
    """The Kerberos error code of the KRB-ERROR an acceptor answered with (SPNEGO NegTokenResp or a krb5
    token), or None when the answer is not one."""
    try:
        data = token
        if data[:1] == b"\xa1":  # NegTokenResp
            _, start, end = _read(data, 0)
            fields = _children(data, *_only(data, start, end, 0x30, "a NegTokenResp"))
            if 0xA2 not in fields:
                return None
            _, value_start, value_end = _read(data, fields[0xA2][0])
            data = data[value_start:value_end]
        message = _krb5_message(data, _TOK_KRB_ERROR)
        start, end = _only(message, 0, len(message), _KRB_ERROR, "a KRB-ERROR")
        fields = _children(message, *_only(message, start, end, 0x30, "a KRB-ERROR"))
        return _integer(message, *_field(fields, 6, "an error code"))
    except (TokenError, IndexError):
        return None
