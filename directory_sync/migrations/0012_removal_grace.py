"""Soft removal: the per-domain grace period (REMOVALGRACEDAYS, 7 days), the events of a disabled-pending
removal and of a restore, and the undo of a run's removals as a run of its own."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0011_conflicts")]

    operations = [
        migrations.AddField(
            model_name="directorysettings",
            name="removal_grace_days",
            field=models.PositiveSmallIntegerField(default=7, verbose_name="Keep removed people for (days)"),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="undoes",
            field=models.ForeignKey(
                blank=True,
                help_text="The run whose removals this one undid.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="undos",
                to="directory_sync.syncrun",
            ),
        ),
        migrations.AlterField(
            model_name="syncevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("create", "Created"),
                    ("update", "Updated"),
                    ("rename", "Renamed"),
                    ("remove", "Removed"),
                    ("skip", "Skipped"),
                    ("conflict", "Conflict"),
                    ("withheld", "Removal withheld"),
                    ("disable", "Disabled, pending removal"),
                    ("restore", "Restored"),
                ],
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("schedule", "Schedule"),
                    ("manual", "Synchronize Now"),
                    ("command", "Command line"),
                    ("approval", "Approved removals"),
                    ("undo", "Undo of removals"),
                ],
                max_length=10,
            ),
        ),
    ]
