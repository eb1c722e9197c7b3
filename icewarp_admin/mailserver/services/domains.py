"""Creating and changing domains."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from icewarp_admin.mailserver.models import Domain, UserTemplate
from icewarp_admin.mailserver.validators import normalize_domain_name


def create_domain(
    *, name: str, description: str = "", default_template: UserTemplate | None = None
) -> Domain:
    """Create a domain; the name is normalized to lower-case ASCII and must be new."""
    normalized = normalize_domain_name(name)
    with transaction.atomic():
        if Domain.objects.filter(name=normalized).exists():
            raise ValidationError(f"The domain {normalized} already exists.", code="duplicate")
        return Domain.objects.create(
            name=normalized, description=description, default_template=default_template
        )


def update_domain(*, domain: Domain, description: str, default_template: UserTemplate | None) -> Domain:
    """Change a domain's description and default user template (its name is its identity and stays)."""
    domain.description = description
    domain.default_template = default_template
    domain.save(update_fields=["description", "default_template", "updated_at"])
    return domain


def delete_domain(*, domain: Domain) -> None:
    """Delete an empty domain; one with accounts or groups is refused, so no mailbox is lost."""
    accounts, groups = domain.accounts.count(), domain.groups.count()
    if accounts or groups:
        raise ValidationError(
            f"{domain.name} still has {accounts} account(s) and {groups} group(s); remove them first."
        )
    with transaction.atomic():
        domain.addresses.all().delete()
        domain.delete()
