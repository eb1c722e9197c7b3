"""Runs of one object ("Synchronize this one now", `directory_sync --only`): a trigger of their own."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0012_removal_grace")]

    operations = [
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
                    ("sync_one", "Sync one object"),
                ],
                max_length=10,
            ),
        ),
    ]
