"""Settings as people read them: the label a form uses, Yes/No, the choice's label, never a raw code."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.utils.text import capfirst

# Labels the forms give that differ from the model's verbose names, and fields that are not model fields.
_LABELS: dict[str, str] = {
    "vcard_map": "vCard map",
    "allow_missing_change_stamp": "Entries without a change stamp are expected (no warning)",
    "password": "Bind password",
    "bind_password": "Bind password",
    "bind_password_encrypted": "Bind password",
}
EMPTY = "—"


def setting_label(name: str) -> str:
    """The label of a Directory Service setting, as its form shows it."""
    from directory_sync.models import DirectorySettings

    if name in _LABELS:
        return _LABELS[name]
    try:
        field = DirectorySettings._meta.get_field(name)
    except FieldDoesNotExist:
        return name.replace("_", " ").capitalize()
    return str(capfirst(getattr(field, "verbose_name", name)))


def setting_text(name: str, value: Any) -> str:
    """A setting's value as text: Yes/No for switches, the label of a choice, a dash for nothing."""
    from directory_sync.models import DirectorySettings

    if value is None or value == "":
        return EMPTY
    try:
        field = DirectorySettings._meta.get_field(name)
    except FieldDoesNotExist:
        return str(value)
    if isinstance(value, bool) or field.get_internal_type() == "BooleanField":
        return "Yes" if value in (True, "True", "true", 1, "1") else "No"
    choices = dict(getattr(field, "flatchoices", None) or [])
    if choices:
        for key, label in choices.items():
            if str(key) == str(value):
                return str(label)
    return str(value)
