"""IceWarp's config/syncad.dat: <DOMAINS><DOMAIN><DOMAIN>name</DOMAIN><KEY>value</KEY>...</DOMAIN></DOMAINS>.

Every key is kept: the ones with behaviour map to settings fields, the rest ride along in extra_keys and are
written back in their order, so export → import gives the same settings.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from defusedxml import ElementTree as SafeET
from django.core.exceptions import ValidationError
from django.db import transaction

from directory_sync.choices import LoginSource, ServerType, UsernameSource
from directory_sync.forms import ALL_FIELDS, DirectorySettingsForm
from directory_sync.models import DirectorySettings
from directory_sync.services.settings import save_directory_settings, settings_for
from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import find_domain
from icewarp_admin.mailserver.services.domains import create_domain
from icewarp_admin.mailserver.validators import normalize_domain_name

# A syncad.dat of a thousand domains is a few hundred kB; the longest value, a vCard map, a few kB. Anything
# beyond would be stored (and recorded in the settings history) as it is.
MAX_FILE_BYTES: Final = 1024 * 1024
MAX_VALUE_CHARS: Final = 64 * 1024


def _bool_out(value: Any) -> str:
    return "1" if value else "0"


def _bool_in(text: str) -> bool:
    return text.strip() not in {"", "0", "false", "False"}


@dataclass(frozen=True)
class Key:
    """One syncad.dat key that maps to one settings field."""

    name: str
    field: str
    write: Callable[[Any], str] = str
    read: Callable[[str], Any] = lambda text: text


def _boolean(name: str, field_name: str) -> Key:
    return Key(name, field_name, _bool_out, _bool_in)


SERVER_TYPE_OUT = {ServerType.ACTIVE_DIRECTORY: "0", ServerType.GENERIC: "1"}
SERVER_TYPE_IN = {"0": ServerType.ACTIVE_DIRECTORY, "1": ServerType.GENERIC}

# IceWarp's keys in the order its own files list them; then ours (IceWarp ignores keys it does not know).
KEYS: tuple[Key, ...] = (
    _boolean("ACTIVE", "active"),
    Key("HOST", "host"),
    Key("SECHOST", "backup_host"),
    Key("USER", "bind_user"),
    Key("DN", "base_dn"),
    Key(
        "LDAPSERVERTYPE",
        "server_type",
        lambda v: SERVER_TYPE_OUT[v],
        lambda t: SERVER_TYPE_IN.get(t.strip(), t),
    ),
    _boolean("SYNCACCOUNTS", "sync_accounts"),
    Key("ACCOUNTFILTERS", "account_filter"),
    _boolean("SYNCGROUPS", "sync_groups"),
    Key("GROUPFILTERS", "group_filter"),
    _boolean("SYNCMAILINGLISTS", "sync_mailing_lists"),
    Key("MAILINGLISTFILTERS", "mailing_list_filter"),
    _boolean("HOSTDOMAINACTIVE", "host_domain_active"),
    Key("HOSTDOMAIN", "host_domain"),
    Key("USERNAMEFROMSPECIALFIELD", "username_attribute"),
    _boolean("ADUSERNAMETOALIAS", "add_login_to_aliases"),
    _boolean("SSOACTIVE", "sso_active"),
    Key("SSOSERVICENAME", "sso_service_name"),
    Key("SSOMATCHING", "sso_matching", str, lambda t: int(t) if t.strip().isdigit() else t),
    _boolean("USERNAMEFROMADUSERNAME", "full_name_from_given_and_sn"),
    _boolean("DISPLAYNAMEFROMADGIVENNAME", "display_name_from_given_name"),
    _boolean("ALLDATADELETION", "delete_all_data"),
    Key("VCARDMAP", "vcard_map"),
    _boolean("GROUPSUPPORTREMOTEMEMBERS", "group_remote_members"),
    _boolean("CREATEGROUPSFOROUS", "create_ou_groups"),
    Key("GROUPSFOROUSROOT", "ou_groups_root"),
    Key("GROUPSFOROUSROOTNAME", "ou_groups_root_name"),
    Key("GUIDSOURCE", "guid_attribute"),
    _boolean("GUIDISBINARY", "guid_is_binary"),
    Key("WHENCHANGEDSOURCE", "change_stamp_attribute"),
    _boolean("ALLOWMISSINGWHENCHANGEDSOURCE", "allow_missing_change_stamp"),
    _boolean("LDAPVCARDWINS", "directory_vcard_wins"),
    _boolean("DISABLEVCARDSYNC", "disable_vcard_sync"),
    _boolean("DISABLEVCARDDOMAINRENAME", "disable_vcard_domain_rename"),
    _boolean("USESTARTTLS", "use_starttls"),
    _boolean("ALLOWPLAINBIND", "allow_plain_bind"),
    _boolean("DIRECTORYSIGNIN", "directory_sign_in"),
    _boolean("VERIFYCERTIFICATE", "verify_certificate"),
    Key("CABUNDLE", "ca_bundle"),
    Key("TIMEOUT", "timeout_seconds", str, lambda t: int(t) if t.strip().isdigit() else t),
    Key("PAGESIZE", "page_size", str, lambda t: int(t) if t.strip().isdigit() else t),
    Key("REMOVALGRACEDAYS", "removal_grace_days", str, lambda t: int(t) if t.strip().isdigit() else t),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}
# Two choices IceWarp spreads over several boolean keys.
LOGIN_SOURCE_KEYS = ("LDAPUSERFROMDN", "USERNAME_PREFERE_SAMACCOUNTNAME")
USERNAME_SOURCE_KEYS = ("USERNAMEFROMCN", "USERNAMEFROMLOGIN")
PASSWORD_KEY = "PASS"  # noqa: S105 - the element name, not a password
HANDLED = set(KEYS_BY_NAME) | set(LOGIN_SOURCE_KEYS) | set(USERNAME_SOURCE_KEYS) | {PASSWORD_KEY, "DOMAIN"}


def export_syncad(domains: Iterable[Domain], *, include_secrets: bool = False) -> str:
    """syncad.dat text for the given domains (the bind password only when include_secrets)."""
    root = ET.Element("DOMAINS")
    for domain in domains:
        settings = settings_for(domain)
        block = ET.SubElement(root, "DOMAIN")
        ET.SubElement(block, "DOMAIN").text = domain.name
        for key in KEYS:
            ET.SubElement(block, key.name).text = key.write(getattr(settings, key.field))
            if key.name == "USER" and include_secrets:
                ET.SubElement(block, PASSWORD_KEY).text = settings.get_bind_password()
        ET.SubElement(block, "LDAPUSERFROMDN").text = _bool_out(settings.login_source == LoginSource.DN)
        ET.SubElement(block, "USERNAME_PREFERE_SAMACCOUNTNAME").text = _bool_out(
            settings.login_source == LoginSource.SAM_ACCOUNT_NAME
        )
        ET.SubElement(block, "USERNAMEFROMCN").text = _bool_out(settings.username_source == UsernameSource.CN)
        ET.SubElement(block, "USERNAMEFROMLOGIN").text = _bool_out(
            settings.username_source == UsernameSource.LOGIN
        )
        for name, value in settings.extra_keys.items():
            ET.SubElement(block, name).text = value
    ET.indent(root)
    # XML parsers turn a raw CR into LF; write it as a character reference so CRLF vCard maps come back whole.
    return ET.tostring(root, encoding="unicode").replace("\r", "&#13;") + "\n"


@dataclass
class ImportedDomain:
    name: str
    created_domain: bool = False
    changed_fields: list[str] = field(default_factory=list)


class SyncadImportError(Exception):
    """The file cannot be imported; nothing was changed. The message lists every problem."""


def file_too_large(size: int) -> str:
    """The refusal of a file of this many bytes (empty: it is small enough)."""
    if size <= MAX_FILE_BYTES:
        return ""
    return (
        f"The file is {size:,} bytes; a syncad.dat file is at most {MAX_FILE_BYTES:,} bytes (1 MiB). "
        "Nothing was imported: check that this is the right file."
    )


class _LineNumbers(ET.TreeBuilder):
    """Builds the tree and notes the line each element starts on (by the element's id)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[int, int] = {}
        self.expat: Any = None

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        element = super().start(tag, attrs)
        self.lines[id(element)] = self.expat.CurrentLineNumber
        return element


def _parse(text: str) -> tuple[ET.Element, dict[int, int]]:
    """defusedxml's fromstring, also noting each element's line."""
    builder = _LineNumbers()
    parser = SafeET.DefusedXMLParser(target=builder)
    builder.expat = parser.parser
    parser.feed(text)
    root: ET.Element = parser.close()
    return root, builder.lines


def import_syncad(text: str, *, changed_by: Any = None) -> list[ImportedDomain]:
    """Create or update the settings of every domain in the file, all or nothing."""
    too_large = file_too_large(len(text.encode("utf-8", "surrogatepass")))
    if too_large:
        raise SyncadImportError(too_large)
    try:
        root, lines = _parse(text)
    except SafeET.ParseError as error:
        raise SyncadImportError(f"This is not a readable syncad.dat file: {error}.") from None
    except Exception as error:  # defusedxml refuses entity tricks with its own exception types
        raise SyncadImportError(f"This file is refused: {error}.") from None
    if root.tag != "DOMAINS":
        raise SyncadImportError(f"A syncad.dat file starts with <DOMAINS>, not <{root.tag}>.")

    parsed = [_parse_block(block, position, lines) for position, block in enumerate(root, start=1)]
    problems = [problem for _, _, _, block_problems in parsed for problem in block_problems]
    names = [name for name, _, _, _ in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"Domains listed more than once: {', '.join(duplicates)}.")
    if problems:
        raise SyncadImportError("Nothing was imported:\n" + "\n".join(f"- {problem}" for problem in problems))

    results = []
    with transaction.atomic():
        for name, values, password, _ in parsed:
            domain = find_domain(name)
            result = ImportedDomain(name=name)
            if domain is None:
                domain = create_domain(name=name)
                result.created_domain = True
            form = DirectorySettingsForm(data=_form_data(values), instance=settings_for(domain))
            if not form.is_valid():
                transaction.set_rollback(True)
                raise SyncadImportError(f"Nothing was imported: {name}: {_describe_errors(form)}")
            cleaned = {field: form.cleaned_data[field] for field in ALL_FIELDS}
            cleaned["extra_keys"] = values["extra_keys"]
            _, change = save_directory_settings(
                domain=domain,
                values=cleaned,
                new_password=password,
                changed_by=changed_by,
                source="syncad import",
            )
            result.name = domain.name
            result.changed_fields = sorted(change.changes) if change else []
            results.append(result)
    return results


def _parse_block(
    block: Any, position: int, lines: dict[int, int]
) -> tuple[str, dict[str, Any], str | None, list[str]]:
    problems: list[str] = []
    if block.tag != "DOMAIN":
        return "", {}, None, [f"Block {position}: expected <DOMAIN>, found <{block.tag}>."]
    children = list(block)
    name_elements = [child for child in children if child.tag == "DOMAIN"]
    if len(name_elements) != 1 or not (name_elements[0].text or "").strip():
        return "", {}, None, [f"Block {position}: needs exactly one <DOMAIN>name</DOMAIN>."]
    try:
        name = normalize_domain_name(name_elements[0].text or "")
    except ValidationError as error:
        return "", {}, None, [f"Block {position}: {' '.join(error.messages)}"]
    defaults = DirectorySettings()  # an absent key takes its default (IceWarp's rule), not the current value
    values: dict[str, Any] = {field: getattr(defaults, field) for field in ALL_FIELDS}
    extra: dict[str, str] = {}
    texts: dict[str, str] = {}
    seen_on: dict[str, list[int]] = {}
    for child in children:
        if child.tag == "DOMAIN":
            continue
        line = lines.get(id(child), 0)
        seen_on.setdefault(child.tag, []).append(line)
        if len(child):
            problems.append(f"{name}: <{child.tag}> must hold text, not other elements.")
            continue
        if len(child.text or "") > MAX_VALUE_CHARS:
            problems.append(
                f"{name}: <{child.tag}> on line {line} holds {len(child.text or ''):,} characters; a value "
                f"is at most {MAX_VALUE_CHARS:,} (the longest one, a vCard map, is a few thousand)."
            )
            continue
        texts[child.tag] = child.text or ""
        if child.tag not in HANDLED:
            extra[child.tag] = child.text or ""
    for tag, on in seen_on.items():
        if len(on) > 1:
            where = ", ".join(str(line) for line in on[:-1]) + f" and {on[-1]}"
            problems.append(f"{name}: <{tag}> is given {len(on)} times (lines {where}); keep one.")
    for key_name, text in texts.items():
        key = KEYS_BY_NAME.get(key_name)
        if key is not None:
            values[key.field] = key.read(text.strip() if key.name not in {"VCARDMAP", "CABUNDLE"} else text)
    if any(key in texts for key in LOGIN_SOURCE_KEYS):
        if _bool_in(texts.get("LDAPUSERFROMDN", "0")):
            values["login_source"] = LoginSource.DN
        elif _bool_in(texts.get("USERNAME_PREFERE_SAMACCOUNTNAME", "0")):
            values["login_source"] = LoginSource.SAM_ACCOUNT_NAME
        else:
            values["login_source"] = LoginSource.USER_PRINCIPAL_NAME
    if any(key in texts for key in USERNAME_SOURCE_KEYS):
        if _bool_in(texts.get("USERNAMEFROMCN", "0")):
            values["username_source"] = UsernameSource.CN
        elif _bool_in(texts.get("USERNAMEFROMLOGIN", "0")):
            values["username_source"] = UsernameSource.LOGIN
        else:
            values["username_source"] = UsernameSource.PRIMARY_ALIAS
    values["extra_keys"] = extra
    password = texts.get(PASSWORD_KEY) or None
    return name, values, password, problems


def _form_data(values: dict[str, Any]) -> dict[str, Any]:
    """Field values as a browser would post them (unchecked boxes absent)."""
    data: dict[str, Any] = {}
    for name in ALL_FIELDS:
        value = values[name]
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else str(value)
    return data


def _describe_errors(form: DirectorySettingsForm) -> str:
    reverse = {key.field: key.name for key in KEYS}
    parts = []
    for field_name, errors in form.errors.items():
        key = reverse.get(field_name, field_name)
        parts.append(f"{key}: {' '.join(str(error) for error in errors)}")
    return "; ".join(parts)
