"""Soft removal of synced accounts: pending until a date (disabled meanwhile), the state a return or an undo
restores, and the protection an undo gives."""

from django.db import migrations, models

from icewarp_admin.mailserver.migrations._search_triggers import restore_search_triggers


class Migration(migrations.Migration):
    dependencies = [("mailserver", "0005_axes_lockout_permissions")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="removal_due_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="pending removal until"),
        ),
        migrations.AddField(
            model_name="account",
            name="enabled_before_removal",
            field=models.BooleanField(db_default=True, default=True),
        ),
        migrations.AddField(
            model_name="account",
            name="removal_kept_until",
            field=models.DateTimeField(blank=True, null=True, verbose_name="kept by an undo until"),
        ),
        migrations.AddIndex(
            model_name="account",
            index=models.Index(
                condition=models.Q(("removal_due_at__isnull", False)),
                fields=["domain", "removal_due_at"],
                name="account_pending_removal",
            ),
        ),
        # SQLite rebuilt the table for the column with a database default: the search triggers went with it.
        migrations.RunPython(restore_search_triggers, migrations.RunPython.noop),
    ]
