"""The alert configuration forms: server-wide (System → Alerts) and a domain's additions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from directory_sync.models import AlertSettings, DomainAlertSettings
from directory_sync.selectors_alerts import split_addresses

MAX_RECIPIENTS = 50
SIGNING_HELP = (
    "Optional. Each POST then carries X-Console-Signature-256: sha256=<HMAC-SHA256 of the body under this "
    "secret>. Stored encrypted, never shown; leave empty to keep the stored one."
)


def clean_recipients(text: str) -> str:
    """Comma-separated addresses, each checked; stored one ", " apart."""
    addresses = split_addresses(text)
    bad = []
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            bad.append(address)
    if bad:
        raise ValidationError(
            "Not an e-mail address: %(bad)s. Write addresses like ops@example.com, separated by commas.",
            params={"bad": ", ".join(bad)},
            code="invalid",
        )
    if len(addresses) > MAX_RECIPIENTS:
        raise ValidationError(f"At most {MAX_RECIPIENTS} recipients; use a mailing list for more.")
    return ", ".join(addresses)


def clean_webhook_url(url: str) -> str:
    url = url.strip()
    if url and urlsplit(url).scheme.lower() not in {"http", "https"}:
        raise ValidationError(
            "A webhook URL starts with http:// or https://, e.g. https://hooks.example.com/alerts."
        )
    return url


class WebhookSecretForm(forms.ModelForm):
    """The webhook secret fields shared by both forms: write-only, kept when left empty."""

    webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        max_length=500,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=SIGNING_HELP,
    )
    clear_webhook_secret = forms.BooleanField(label="Remove the stored webhook secret", required=False)
    webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        help_text="Each alert is POSTed there as JSON (http:// or https://).",
    )

    def clean_webhook_url(self) -> str:
        return clean_webhook_url(self.cleaned_data.get("webhook_url") or "")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("webhook_secret") and cleaned.get("clear_webhook_secret"):
            self.add_error("clear_webhook_secret", "Type a new secret or remove the stored one, not both.")
        return cleaned

    def model_values(self) -> dict[str, Any]:
        """The model's fields as cleaned (the secret goes its own way)."""
        return {name: self.cleaned_data[name] for name in self._meta.fields or ()}


class AlertSettingsForm(WebhookSecretForm):
    not_synchronized_intervals = forms.IntegerField(
        label="Not synchronized after (intervals)",
        min_value=1,
        max_value=1000,
        help_text="N: an alert when a domain has had no successful run for N times the sync interval "
        "(C_Accounts_Global_ActiveDirectorySyncInterval). 1–1000.",
    )
    conflict_open_runs = forms.IntegerField(
        label="Conflict open after (runs)",
        min_value=1,
        max_value=1000,
        help_text="N: an alert when a conflict is still open after N runs. 1–1000.",
    )

    class Meta:
        model = AlertSettings
        fields = [
            "recipients",
            "webhook_url",
            "on_run_failed",
            "on_removals_withheld",
            "on_not_synchronized",
            "not_synchronized_intervals",
            "on_conflict_open",
            "conflict_open_runs",
        ]
        widgets = {
            "recipients": forms.TextInput(attrs={"placeholder": "ops@example.com, oncall@example.com"})
        }

    field_order = [*Meta.fields[:2], "webhook_secret", "clear_webhook_secret", *Meta.fields[2:]]

    def clean_recipients(self) -> str:
        return clean_recipients(self.cleaned_data.get("recipients") or "")


class DomainAlertSettingsForm(WebhookSecretForm):
    class Meta:
        model = DomainAlertSettings
        fields = ["enabled", "extra_recipients", "webhook_url"]
        widgets = {"extra_recipients": forms.TextInput(attrs={"placeholder": "it@example.com"})}

    field_order = [*Meta.fields, "webhook_secret", "clear_webhook_secret"]

    def clean_extra_recipients(self) -> str:
        return clean_recipients(self.cleaned_data.get("extra_recipients") or "")
