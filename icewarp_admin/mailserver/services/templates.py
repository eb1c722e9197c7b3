"""User templates: the defaults a new account starts with."""

from __future__ import annotations

from django.db import transaction

from icewarp_admin.mailserver.models import Domain, UserTemplate


def save_template(*, template: UserTemplate) -> UserTemplate:
    """Validate and save a new or changed template."""
    template.full_clean()
    template.save()
    return template


def delete_template(*, template: UserTemplate) -> None:
    """Delete a template; domains that used it as their default fall back to none."""
    with transaction.atomic():
        Domain.objects.filter(default_template=template).update(default_template=None)
        template.delete()
