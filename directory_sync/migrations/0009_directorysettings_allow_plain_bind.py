"""ALLOWPLAINBIND: a simple bind with a password over plain ldap:// (no StartTLS) needs an explicit opt-in.

Domains that already bind this way keep working after the upgrade: the switch is turned on for them (Test
connection keeps warning and says how to stop), and it is off for every domain configured from now on.
"""

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def _plain(host: str) -> bool:
    value = host.strip().lower()
    return bool(value) and not value.startswith("ldaps://")


def keep_existing_plain_binds(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    settings_model = apps.get_model("directory_sync", "DirectorySettings")
    binding = settings_model.objects.exclude(bind_password_encrypted="").filter(use_starttls=False)
    plain = [
        row.pk
        for row in binding.only("pk", "host", "backup_host")
        if _plain(row.host) or _plain(row.backup_host)
    ]
    settings_model.objects.filter(pk__in=plain).update(allow_plain_bind=True)


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0008_sync_run_outcomes")]

    operations = [
        migrations.AddField(
            model_name="directorysettings",
            name="allow_plain_bind",
            field=models.BooleanField(default=False, verbose_name="Allow unencrypted bind"),
        ),
        migrations.RunPython(keep_existing_plain_binds, migrations.RunPython.noop),
    ]
