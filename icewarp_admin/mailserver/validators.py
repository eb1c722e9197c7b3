"""Normalizing and checking the names a mail server deals in: domains, local parts, addresses."""

import functools
import re

import idna
from django.core.exceptions import ValidationError

# RFC 5321 dot-atom, narrowed to what IceWarp accepts in usernames and aliases (no quoting, no spaces).
_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_USERNAME_FORBIDDEN = re.compile(r"[/\\]|^\.|\.\.")
MAX_LOCAL_PART = 64
MAX_DOMAIN = 253


@functools.lru_cache(maxsize=4096)
def normalize_domain_name(value: str) -> str:
    """Return the domain's lower-case ASCII (IDNA 2008) form, or raise ValidationError saying what's wrong."""
    name = value.strip().rstrip(".").lower()
    if not name:
        raise ValidationError("Enter a domain name, for example example.com.", code="required")
    if "@" in name or "/" in name or " " in name:
        raise ValidationError(
            f"“{value}” is not a domain name: write only the part after the @, e.g. example.com.",
            code="invalid",
        )
    if "." not in name:
        raise ValidationError(
            f"“{value}” has a single label; a mail domain needs at least two, e.g. example.com.",
            code="invalid",
        )
    if len(name) > MAX_DOMAIN:
        raise ValidationError(f"A domain name is at most {MAX_DOMAIN} characters; this one has {len(name)}.")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError(f"“{value}” is not a valid internationalized domain name: {exc}.") from exc
    labels = ascii_name.split(".")
    if labels[-1].isdigit():
        raise ValidationError(f"“{value}” looks like an IP address; enter a domain name.", code="invalid")
    return ascii_name


def display_domain_name(ascii_name: str) -> str:
    """Return the Unicode form of a stored domain name for display (falls back to the ASCII form)."""
    try:
        return idna.decode(ascii_name)
    except idna.IDNAError:
        return ascii_name


def normalize_local_part(value: str) -> str:
    """Return the lower-case local part of an address, or raise ValidationError."""
    local = value.strip().lower()
    if not local:
        raise ValidationError("Enter the part before the @.", code="required")
    if len(local) > MAX_LOCAL_PART:
        raise ValidationError(f"“{value}” is longer than {MAX_LOCAL_PART} characters.", code="invalid")
    if not _LOCAL_PART.match(local):
        raise ValidationError(
            f"“{value}” is not a valid address part: use letters, digits and . _ - + "
            "(no spaces, no two dots in a row, no dot at either end).",
            code="invalid",
        )
    return local


def normalize_username(value: str) -> str:
    """Return a username fit for a login and a mailbox folder name, or raise ValidationError."""
    username = normalize_local_part(value)
    if _USERNAME_FORBIDDEN.search(username):
        raise ValidationError(f"“{value}” cannot be a username: it would not make a safe folder name.")
    return username


def split_address(value: str) -> tuple[str, str]:
    """Split user@domain into its normalized (local part, ASCII domain), or raise ValidationError."""
    address = value.strip()
    if address.count("@") != 1:
        raise ValidationError(f"“{value}” is not an e-mail address (expected one @).", code="invalid")
    local, domain = address.split("@")
    return normalize_local_part(local), normalize_domain_name(domain)
