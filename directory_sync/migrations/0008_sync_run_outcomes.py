from django.db import migrations, models

STATUS_CHOICES = [
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("partial", "Completed with errors"),
    ("failed", "Failed"),
    ("skipped", "Skipped"),
]


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0007_connection_check_unsaved_settings")]

    operations = [
        migrations.AlterField(
            model_name="connectioncheck",
            name="status",
            field=models.CharField(choices=STATUS_CHOICES, db_index=True, default="queued", max_length=10),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="status",
            field=models.CharField(choices=STATUS_CHOICES, db_index=True, default="queued", max_length=10),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="warning_objects",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='Warning number → the objects it names: {"summary": text, "objects": [DN or address, '
                '...], "total": n, "action": event action listing them}; the first 5,000 objects are kept.',
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="actions_planned",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Creations, updates, renames and removals the run means to apply (no skips).",
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="actions_applied",
            field=models.PositiveIntegerField(
                default=0, help_text="Creations, updates, renames and removals applied (none in a dry run)."
            ),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="errors",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Why it failed, or what it did not read (completed with errors).",
            ),
        ),
    ]
