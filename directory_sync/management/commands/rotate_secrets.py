"""Re-encrypt every stored secret under the first key of SECRETS_ENCRYPTION_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from directory_sync.models import DirectorySettings
from directory_sync.secrets import SecretUnreadable, reencrypt_secret


class Command(BaseCommand):
    help = (
        "Re-encrypt stored secrets under the current key. Rotation: put the new key first in "
        "SECRETS_ENCRYPTION_KEYS (keep the old one after it), run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for settings in DirectorySettings.objects.select_for_update().exclude(bind_password_encrypted=""):
                try:
                    settings.bind_password_encrypted = reencrypt_secret(settings.bind_password_encrypted)
                except SecretUnreadable as error:
                    raise CommandError(f"{settings.domain.name}: {error} Nothing was changed.") from None
                settings.save(update_fields=["bind_password_encrypted"])
                count += 1
        self.stdout.write(f"Re-encrypted {count} secret(s) under the current key.")
