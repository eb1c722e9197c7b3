"""Forms of the Domains & Accounts pages; each cleans input into what a service takes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from icewarp_admin.mailserver.models import Account, Domain, Group, Service, UserTemplate
from icewarp_admin.mailserver.personal_data import VCARD_ITEMS
from icewarp_admin.mailserver.system_variables import VariableSpec
from icewarp_admin.mailserver.validators import (
    normalize_domain_name,
    normalize_local_part,
    normalize_username,
    split_address,
)


class DomainCreateForm(forms.Form):
    name = forms.CharField(
        max_length=253, help_text="For example example.com; international names are accepted."
    )
    description = forms.CharField(max_length=255, required=False)
    default_template = forms.ModelChoiceField(UserTemplate.objects.all(), required=False)

    def clean_name(self) -> str:
        name = normalize_domain_name(self.cleaned_data["name"])
        if Domain.objects.filter(name=name).exists():
            raise ValidationError(f"The domain {name} already exists.")
        return name


class DomainForm(forms.Form):
    description = forms.CharField(max_length=255, required=False)
    default_template = forms.ModelChoiceField(
        UserTemplate.objects.all(),
        required=False,
        help_text="Applied once, to each account created from now on.",
    )


class AccountCreateForm(forms.Form):
    username = forms.CharField(max_length=64)
    full_name = forms.CharField(max_length=255, required=False)
    password = forms.CharField(widget=forms.PasswordInput, required=False, strip=False)
    template = forms.ModelChoiceField(
        UserTemplate.objects.all(), required=False, help_text="Empty: the domain's default template."
    )

    def __init__(self, *args: Any, domain: Domain, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.domain = domain

    def clean_username(self) -> str:
        username = normalize_username(self.cleaned_data["username"])
        if Account.objects.filter(domain=self.domain, username=username).exists():
            raise ValidationError(f"{self.domain.name} already has an account named {username}.")
        return username


class AccountSettingsForm(forms.Form):
    full_name = forms.CharField(max_length=255, required=False)
    auth_mode = forms.ChoiceField(choices=Account.AuthMode.choices)
    auth_value = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"size": 60}),
        help_text="For directory authentication: host;login (the login as the directory knows it).",
    )
    enabled = forms.BooleanField(required=False)
    quota_mb = forms.IntegerField(min_value=0, label="Mailbox quota (MB, 0 = unlimited)")
    max_message_kb = forms.IntegerField(min_value=0, label="Largest outgoing message (kB, 0 = server limit)")
    services = forms.MultipleChoiceField(
        choices=Service.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args: Any, directory_owned: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in directory_owned:
            # Disabled fields keep their initial value whatever is posted: the directory owns them.
            self.fields[name].disabled = True
            self.fields[name].help_text = "From the directory: change it there."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("auth_mode") == Account.AuthMode.DIRECTORY and not (data.get("auth_value") or "").strip():
            self.add_error("auth_value", "Directory authentication needs an auth value: host;login.")
        return data


class PasswordForm(forms.Form):
    password1 = forms.CharField(label="New password", widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label="Repeat it", widget=forms.PasswordInput, strip=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class AliasForm(forms.Form):
    alias = forms.CharField(
        max_length=320, help_text="The part before the @, or the whole address in this domain."
    )
    primary = forms.BooleanField(required=False, label="Make it the primary address")

    def __init__(self, *args: Any, domain: Domain, primary_allowed: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.domain = domain
        if not primary_allowed:
            # The directory orders a synced account's addresses: an added alias comes after them.
            del self.fields["primary"]

    def clean_alias(self) -> str:
        value = self.cleaned_data["alias"]
        if "@" not in value:
            return normalize_local_part(value)
        local, domain_name = split_address(value)
        if domain_name != self.domain.name:
            raise ValidationError(
                f"An alias of this account must be in {self.domain.name}, not {domain_name}."
            )
        return local


class PersonalDataForm(forms.Form):
    """One text field per vCard item; field names are item indexes so items with ; and = stay intact."""

    def __init__(self, *args: Any, current: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        items = list(VCARD_ITEMS) + [
            (item, item) for item in sorted(current) if item not in dict(VCARD_ITEMS)
        ]
        self.items = [item for item, _ in items]
        for index, (item, label) in enumerate(items):
            self.fields[f"item_{index}"] = forms.CharField(
                label=label, required=False, initial=current.get(item, ""), max_length=2000
            )

    def vcard(self) -> dict[str, str]:
        return {item: self.cleaned_data[f"item_{index}"] for index, item in enumerate(self.items)}


class GroupCreateForm(forms.Form):
    alias = forms.CharField(max_length=64, help_text="The part before the @: the group's address.")
    name = forms.CharField(max_length=255)
    kind = forms.ChoiceField(choices=Group.Kind.choices)
    description = forms.CharField(max_length=255, required=False)

    def clean_alias(self) -> str:
        return normalize_local_part(self.cleaned_data["alias"])


class GroupForm(forms.Form):
    name = forms.CharField(max_length=255)
    kind = forms.ChoiceField(choices=Group.Kind.choices)
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args: Any, directory_owned: frozenset[str] = frozenset(), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.directory_owned = directory_owned
        for name in directory_owned:
            # Disabled fields keep their initial value whatever is posted: the directory owns them.
            self.fields[name].disabled = True
            self.fields[name].help_text = "From the directory: change it there."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in sorted(self.directory_owned):
            # A browser does not post a disabled field; a different value is a change the next sync would
            # undo, so it is refused instead of silently dropped.
            posted = self.data.get(name)
            if posted is not None and str(posted).strip() != str(self.initial.get(name, "")).strip():
                self.add_error(
                    name,
                    f"The {self.fields[name].label or name} comes from the directory: change it there. "
                    "Nothing was changed.",
                )
        return data


class MemberForm(forms.Form):
    address = forms.CharField(
        max_length=320, help_text="An account's or group's address in this server, or any remote address."
    )

    def clean_address(self) -> str:
        value = self.cleaned_data["address"].strip().lower()
        validate_email(value)
        return value


class UserTemplateForm(forms.ModelForm):
    services = forms.MultipleChoiceField(
        choices=Service.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = UserTemplate
        fields = ["name", "description", "quota_mb", "max_message_kb", "services", "account_state"]


class SystemSettingsForm(forms.Form):
    """One field per global variable, typed by its spec."""

    def __init__(self, *args: Any, variables: list[tuple[VariableSpec, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs = [spec for spec, _ in variables]
        for spec, value in variables:
            field: forms.Field
            if spec.kind == "bool":
                field = forms.BooleanField(required=False, initial=bool(value))
            elif spec.kind == "choice":
                field = forms.TypedChoiceField(choices=spec.choices, coerce=int, initial=value)
            else:
                # IntegerField would take "٣", "+7" or "1_000": the spec's rule decides, as in `tool set`.
                field = forms.CharField(
                    initial=value,
                    validators=[spec.validate],
                    widget=forms.NumberInput(attrs={"min": spec.minimum, "max": spec.maximum, "step": 1}),
                )
            field.label = spec.label
            field.help_text = f"{spec.help} ({spec.name}, default {spec.default})"
            self.fields[spec.name] = field

    def values(self) -> dict[str, int]:
        return {spec.name: int(self.cleaned_data[spec.name]) for spec in self.specs}
