"""The Directory Service tab's four sections as forms; the same checks serve syncad.dat imports."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import MaxLengthValidator

from directory_sync import validation
from directory_sync.choices import ServerType
from directory_sync.display import EMPTY, setting_text
from directory_sync.keytabs import KeytabError, check_keytab_size
from directory_sync.models import DirectorySettings
from directory_sync.rules.secret_attributes import is_secret_attribute
from directory_sync.servers import profile_for

GENERAL_FIELDS = ["active", "directory_sign_in"]
SERVER_FIELDS = [
    "host",
    "backup_host",
    "bind_user",
    "base_dn",
    "use_starttls",
    "allow_plain_bind",
    "verify_certificate",
    "ca_bundle",
    "timeout_seconds",
    "page_size",
]
ADVANCED_FIELDS = [
    "server_type",
    "sync_accounts",
    "account_filter",
    "sync_groups",
    "group_filter",
    "sync_mailing_lists",
    "mailing_list_filter",
    "host_domain_active",
    "host_domain",
    "login_source",
    "username_source",
    "username_attribute",
    "add_login_to_aliases",
    "guid_attribute",
    "guid_is_binary",
    "change_stamp_attribute",
    "allow_missing_change_stamp",
    "full_name_from_given_and_sn",
    "display_name_from_given_name",
    "vcard_map",
    "directory_vcard_wins",
    "disable_vcard_sync",
    "disable_vcard_domain_rename",
    "group_remote_members",
    "create_ou_groups",
    "ou_groups_root",
    "ou_groups_root_name",
    "delete_all_data",
    "removal_grace_days",
]
KERBEROS_FIELDS = ["sso_active", "sso_service_name", "sso_matching"]
ALL_FIELDS = GENERAL_FIELDS + SERVER_FIELDS + ADVANCED_FIELDS + KERBEROS_FIELDS

# The longest values the form takes (the model's text fields have no limit of their own): a DN or a filter
# longer than this is a paste gone wrong, not a directory.
TEXT_LIMITS: dict[str, int] = {
    "base_dn": 2048,
    "ou_groups_root": 2048,
    "account_filter": 4096,
    "group_filter": 4096,
    "mailing_list_filter": 4096,
    "vcard_map": 20_000,
    "ca_bundle": 200_000,
}

DEFAULT_REMOVAL_GRACE_DAYS: int = DirectorySettings._meta.get_field("removal_grace_days").get_default()
# The ranges the clean_ methods below keep, shown by the inputs too.
NUMBER_LIMITS: dict[str, tuple[int, int]] = {
    "timeout_seconds": (1, 120),
    "page_size": (1, 1000),
    "removal_grace_days": (0, 3650),
}

HELP = {
    "active": "Keep this domain's users and groups in one-way sync with the directory below.",
    "directory_sign_in": "Accounts synced from the directory sign in (web, IMAP) by a bind with their own "
    "password. Off: they cannot sign in at all.",
    "host": "Host name or IP of the directory server, or ldap://host:port, or ldaps://host:port for TLS.",
    "backup_host": "Used when the primary server does not answer.",
    "bind_user": "A DN, user@REALM or DOMAIN\\user that may read users and groups. Empty: anonymous.",
    "base_dn": "Where to search (whole subtree), e.g. cn=Users,dc=example,dc=com or dc=example,dc=com.",
    "use_starttls": "Upgrade an ldap:// connection to TLS before binding.",
    "allow_plain_bind": "Send the bind password (and the mail users' passwords at sign-in) over plain "
    "ldap:// without StartTLS. Off: such a bind is refused. Only on a network you trust; prefer ldaps:// or "
    "StartTLS.",
    "verify_certificate": "Refuse servers whose certificate is not trusted (keep this on).",
    "ca_bundle": "PEM certificates of the CA that signed the server's certificate; empty: the system's CAs.",
    "timeout_seconds": "How long to wait for the server before giving up (1–120).",
    "page_size": "Entries per page of the paged search (1–1000).",
    "server_type": "Choosing a type fills its defaults into the fields you have not typed in.",
    "account_filter": "A bare objectClass (User, inetOrgPerson) or a full filter in parentheses.",
    "group_filter": "A bare objectClass (Group, groupOfNames) or a full filter in parentheses.",
    "mailing_list_filter": "Entries that become mailing lists of this domain.",
    "host_domain_active": "When the directory's domain or its users' mail domain is not this domain.",
    "host_domain": "directoryDomain[;mailDomain...], e.g. ADDomain; or ADDomain;example.net (* is any).",
    "login_source": "What the account authenticates with at the directory (after host; in the auth value).",
    "username_source": "Which directory value becomes the local username.",
    "username_attribute": "A directory attribute to take the username from; overrides the choice above.",
    "add_login_to_aliases": "Add the directory login (its part before the @) to the account's aliases.",
    "guid_attribute": "The attribute that identifies an entry for good, even across renames.",
    "guid_is_binary": "The id attribute holds bytes (AD objectGUID), shown as a GUID.",
    "change_stamp_attribute": "Changes whenever the entry does; entries with the same stamp are skipped.",
    "allow_missing_change_stamp": "Entries without the change stamp are compared in full on every run (never "
    "skipped); off, each run warns how many there are.",
    "full_name_from_given_and_sn": "Full name is givenName sn when both are set and vCard sync is off.",
    "display_name_from_given_name": "Kept from IceWarp's file; same meaning as above in some IceWarp builds.",
    "vcard_map": "ITEM:template lines: ${attr}, ${a,b} (first non-empty), ${!attr} (drop line if empty). "
    "Empty: the default map.",
    "directory_vcard_wins": "The directory overwrites personal data even after the person edited it here.",
    "disable_vcard_sync": "Leave personal data alone; synchronize accounts only.",
    "disable_vcard_domain_rename": "When the directory's mail domains are rewritten to this domain "
    "(Directory service domain above), keep the e-mail addresses in personal data as the directory has them.",
    "group_remote_members": "Keep group members whose address is not a synced account here.",
    "create_ou_groups": "Turn the organizational units on users' DNs into nested groups (address book).",
    "ou_groups_root": "Only units below this one (inside the DN) become groups; it is the root group.",
    "ou_groups_root_name": "Name of the root group (default Contacts, or the root unit's name).",
    "delete_all_data": "Also delete the mailbox and data of accounts the sync removes. Off: kept.",
    "removal_grace_days": "A person who leaves the directory (or the filter, or the DN) is first disabled "
    "and kept this long, with the mailbox and aliases: back in time, the account is enabled again. 0: "
    "removed at once (0–3650; empty: 7).",
    "sso_active": "A person whose computer holds a Kerberos ticket is signed in to the self-service pages "
    "(/me/) without a password.",
    "sso_service_name": "The service principal browsers ask tickets for: HTTP/<host name in the address "
    "bar>@REALM, e.g. HTTP/mail.example.com@EXAMPLE.COM (host@REALM means HTTP/host@REALM). Its keytab is "
    "the file HTTP#host@REALM among the keytabs.",
    "sso_matching": "How a Kerberos principal is matched to an account of this domain.",
}


class DirectorySettingsForm(forms.ModelForm):
    """All fields with all their checks; the section forms below are subsets of it."""

    class Meta:
        model = DirectorySettings
        fields = ALL_FIELDS
        help_texts = HELP
        widgets = {
            "ca_bundle": forms.Textarea(attrs={"rows": 4, "placeholder": "-----BEGIN CERTIFICATE-----"}),
            "vcard_map": forms.Textarea(attrs={"rows": 8}),
            "base_dn": forms.TextInput(attrs={"size": 60}),
            "ou_groups_root": forms.TextInput(attrs={"size": 60}),
            "account_filter": forms.TextInput(attrs={"size": 60}),
            "group_filter": forms.TextInput(attrs={"size": 60}),
            "mailing_list_filter": forms.TextInput(attrs={"size": 60}),
        }
        labels = {
            "vcard_map": "vCard map",
            "allow_missing_change_stamp": "Entries without a change stamp are expected (no warning)",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, limit in TEXT_LIMITS.items():
            if name in self.fields:
                field = self.fields[name]
                field.max_length = limit  # type: ignore[attr-defined]
                field.validators.append(MaxLengthValidator(limit))
                field.widget.attrs["maxlength"] = str(limit)
        for name, (low, high) in NUMBER_LIMITS.items():
            if name in self.fields:
                self.fields[name].widget.attrs.update(min=str(low), max=str(high))
        if "removal_grace_days" in self.fields:
            # Empty means the default, as a page opened before the field existed posts it.
            self.fields["removal_grace_days"].required = False
        self.show_server_type_defaults(self.selected_server_type())

    def display_items(self) -> list[tuple[str, str]]:
        """The section read-only, as (label, text): Yes/No, choice labels, the default a blank field takes."""
        defaults = profile_for(str(self.instance.server_type)).defaults
        items = []
        for name, field in self.fields.items():
            if name in ("password", "clear_password"):
                continue
            text = setting_text(name, getattr(self.instance, name, ""))
            default = getattr(defaults, name, "")
            if text == EMPTY and isinstance(default, str) and default:
                text = f"{default} (default)"
            items.append((str(field.label), text))
        return items

    def selected_server_type(self) -> str:
        if self.is_bound and "server_type" in self.fields:
            return str(self.data.get(self.add_prefix("server_type"), self.instance.server_type))
        return str(self.instance.server_type)

    def show_server_type_defaults(self, server_type: str) -> None:
        """Blank fields take the server type's defaults; show them as placeholders."""
        defaults = profile_for(server_type).defaults
        for field, default in (
            ("account_filter", defaults.account_filter),
            ("group_filter", defaults.group_filter),
            ("guid_attribute", defaults.guid_attribute),
            ("change_stamp_attribute", defaults.change_stamp_attribute),
        ):
            if field in self.fields and default:
                self.fields[field].widget.attrs["placeholder"] = f"{default} (default)"
        if "vcard_map" in self.fields:
            self.fields["vcard_map"].widget.attrs.setdefault("placeholder", "Empty: the default map")

    # One clean_<field> per checked field; each returns the value as stored (what the administrator typed,
    # normalized), so a syncad.dat export gives back what was imported.
    def clean_host(self) -> str:
        return validation.validate_host(self.cleaned_data["host"])

    def clean_backup_host(self) -> str:
        return validation.validate_host(self.cleaned_data["backup_host"])

    def clean_bind_user(self) -> str:
        return validation.validate_bind_user(self.cleaned_data["bind_user"])

    def clean_base_dn(self) -> str:
        return validation.validate_base_dn(self.cleaned_data["base_dn"])

    def clean_ca_bundle(self) -> str:
        return validation.validate_ca_bundle(self.cleaned_data["ca_bundle"])

    def clean_timeout_seconds(self) -> int:
        return _in_range(
            self.cleaned_data["timeout_seconds"], *NUMBER_LIMITS["timeout_seconds"], "The timeout"
        )

    def clean_page_size(self) -> int:
        return _in_range(self.cleaned_data["page_size"], *NUMBER_LIMITS["page_size"], "The page size")

    def clean_removal_grace_days(self) -> int:
        value = self.cleaned_data["removal_grace_days"]
        return _in_range(
            DEFAULT_REMOVAL_GRACE_DAYS if value is None else value,
            *NUMBER_LIMITS["removal_grace_days"],
            "The days removed people are kept",
        )

    def clean_account_filter(self) -> str:
        return validation.validate_filter(self.cleaned_data["account_filter"])

    def clean_group_filter(self) -> str:
        return validation.validate_filter(self.cleaned_data["group_filter"])

    def clean_mailing_list_filter(self) -> str:
        return validation.validate_filter(self.cleaned_data["mailing_list_filter"])

    def clean_host_domain(self) -> str:
        return validation.validate_host_domain_list(self.cleaned_data["host_domain"])

    def clean_username_attribute(self) -> str:
        name = validation.validate_attribute_name(self.cleaned_data["username_attribute"])
        if is_secret_attribute(name):
            raise forms.ValidationError(
                f"“{name}” may hold a password or a key: a username is never taken from it."
            )
        return name

    def clean_guid_attribute(self) -> str:
        return validation.validate_attribute_name(self.cleaned_data["guid_attribute"])

    def clean_change_stamp_attribute(self) -> str:
        return validation.validate_attribute_name(self.cleaned_data["change_stamp_attribute"])

    def clean_vcard_map(self) -> str:
        return validation.validate_vcard_map(self.cleaned_data["vcard_map"])

    def clean_sso_service_name(self) -> str:
        return validation.validate_service_name(self.cleaned_data["sso_service_name"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        merged = {field: data.get(field, getattr(self.instance, field)) for field in ALL_FIELDS}
        if merged["active"] and not (merged["host"] and merged["base_dn"]):
            self.add_error(
                "active" if "active" in self.fields else None,
                "Synchronization needs a hostname and a DN: fill in the Server section first.",
            )
        if "host_domain" in self.fields and merged["host_domain_active"] and not merged["host_domain"]:
            self.add_error(
                "host_domain", "Give the directory's domain (and any mail domains), e.g. ADDomain;"
            )
        if (
            "ou_groups_root" in self.fields
            and merged["ou_groups_root"]
            and "ou_groups_root" not in self.errors
        ):
            try:
                data["ou_groups_root"] = validation.validate_ou_root(
                    merged["ou_groups_root"], merged["base_dn"]
                )
            except ValidationError as error:
                self.add_error("ou_groups_root", error)
        if "sso_service_name" in self.fields and merged["sso_active"] and not merged["sso_service_name"]:
            self.add_error(
                "sso_service_name",
                "Single sign-on needs a service name, e.g. HTTP/mail.example.com@EXAMPLE.COM.",
            )
        if "server_type" in self.fields and merged["server_type"] not in ServerType.values:
            self.add_error("server_type", "Choose Active Directory or Generic LDAP.")
        return data


def _in_range(value: int | None, low: int, high: int, label: str) -> int:
    if value is None or not low <= value <= high:
        raise ValidationError(f"{label} must be between {low} and {high}.")
    return value


def section_form(fields: list[str]) -> type[DirectorySettingsForm]:
    """A form of one section: the same checks, only its fields."""
    meta = type("Meta", (DirectorySettingsForm.Meta,), {"fields": fields})
    return type("SectionForm", (DirectorySettingsForm,), {"Meta": meta})


GeneralForm = section_form(GENERAL_FIELDS)
AdvancedForm = section_form(ADVANCED_FIELDS)
KerberosForm = section_form(KERBEROS_FIELDS)


class ServerForm(section_form(SERVER_FIELDS)):  # type: ignore[misc]
    # The seed's order: Hostname, Backup hostname, User, Password, DN.
    field_order = ["host", "backup_host", "bind_user", "password", "clear_password", "base_dn"]
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave empty to keep the stored password.",
    )
    clear_password = forms.BooleanField(label="Remove the stored password (bind anonymously)", required=False)


SECTION_TITLES: dict[str, str] = {
    "general": "General",
    "server": "Server",
    "advanced": "Advanced",
    "kerberos": "Kerberos / GSSAPI / SSO",
}

SECTIONS: dict[str, type[DirectorySettingsForm]] = {
    "general": GeneralForm,
    "server": ServerForm,
    "advanced": AdvancedForm,
    "kerberos": KerberosForm,
}


class KeytabUploadForm(forms.Form):
    file = forms.FileField(
        help_text="Named like the principal with / written #: HTTP#mail.example.com@EXAMPLE.COM"
    )
    file_name = forms.CharField(
        required=False,
        max_length=255,
        help_text="Optional: store it under this name instead of the upload's name.",
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        try:
            check_keytab_size(upload.size or 0)  # before anything reads it (FileField refused an empty one)
        except KeytabError as error:
            raise ValidationError(str(error), code="too_large") from None
        return upload
