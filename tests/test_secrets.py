"""The bind password at rest: encrypted, rotatable, never shown."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from directory_sync.models import DirectorySettings
from directory_sync.secrets import SecretUnreadable, decrypt_secret
from directory_sync.services.settings import save_directory_settings
from icewarp_admin.mailserver.models import Domain

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_under_the_new_key(domain: Domain, settings: object) -> None:
    old_key = Fernet.generate_key().decode()
    new_key = Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [old_key]  # type: ignore[attr-defined]
    save_directory_settings(domain=domain, values={"host": "dc1"}, new_password="pw-1")
    before = DirectorySettings.objects.get().bind_password_encrypted

    settings.SECRETS_ENCRYPTION_KEYS = [new_key, old_key]  # type: ignore[attr-defined]
    out = StringIO()
    call_command("rotate_secrets", stdout=out)
    assert "Re-encrypted 1 secret(s)" in out.getvalue()
    after = DirectorySettings.objects.get().bind_password_encrypted
    assert after != before

    settings.SECRETS_ENCRYPTION_KEYS = [new_key]  # type: ignore[attr-defined]
    assert DirectorySettings.objects.get().get_bind_password() == "pw-1"


def test_a_secret_under_an_unknown_key_is_reported_not_leaked(domain: Domain, settings: object) -> None:
    save_directory_settings(domain=domain, values={"host": "dc1"}, new_password="pw-2")
    token = DirectorySettings.objects.get().bind_password_encrypted
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # type: ignore[attr-defined]
    with pytest.raises(SecretUnreadable) as error:
        decrypt_secret(token)
    assert token not in str(error.value)
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_secrets", stdout=StringIO())


def test_repr_never_shows_the_token(domain: Domain) -> None:
    settings, _ = save_directory_settings(domain=domain, values={"host": "dc1"}, new_password="pw-3")
    assert settings.bind_password_encrypted not in repr(settings)
