"""The personal-data (vCard) items as people read them: the labels the account page and the history use."""

from __future__ import annotations

# The personal-data items the account page offers; items a directory map fills beyond these are shown too.
VCARD_ITEMS: tuple[tuple[str, str], ...] = (
    ("FN", "Display name"),
    ("N", "Name (family;given)"),
    ("TITLE", "Job title"),
    ("ORG", "Organization (company;department)"),
    ("TEL;TYPE=PREF,WORK,VOICE", "Work phone"),
    ("TEL;TYPE=CELL", "Mobile"),
    ("EMAIL;TYPE=INTERNET", "E-mail"),
    ("ADR;TYPE=WORK", "Work address"),
    ("URL", "Web page"),
    ("NOTE", "Note"),
)


def personal_data_items(vcard: dict[str, str]) -> list[tuple[str, str]]:
    """The personal data as the read-only page lists it: each item by its label, in the form's order."""
    labels = dict(VCARD_ITEMS)
    ordered = [item for item, _ in VCARD_ITEMS if item in vcard]
    ordered += sorted(item for item in vcard if item not in labels)
    return [(labels.get(item, item), vcard[item]) for item in ordered]
