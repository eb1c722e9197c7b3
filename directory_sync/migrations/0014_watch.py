"""Near-real-time sync: the push watcher of each domain (its lease and how it goes), the watcher processes
that share the domains out, and the trigger of the runs it starts ("push")."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("directory_sync", "0013_explain_trigger"),
        ("mailserver", "0002_roles"),
    ]

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
                    ("push", "Directory change (push)"),
                ],
                max_length=10,
            ),
        ),
        migrations.CreateModel(
            name="WatcherProcess",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner", models.CharField(max_length=200, unique=True)),
                ("host", models.CharField(max_length=255)),
                ("pid", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("seen_at", models.DateTimeField()),
            ],
        ),
        migrations.CreateModel(
            name="DirectoryWatch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "owner",
                    models.CharField(
                        blank=True, help_text="host:pid:token of the watcher process.", max_length=200
                    ),
                ),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("connecting", "Connecting"),
                            ("watching", "Watching"),
                            ("reconnecting", "Reconnecting"),
                            ("unsupported", "Not supported by the directory"),
                            ("stopped", "Stopped"),
                        ],
                        default="stopped",
                        max_length=20,
                    ),
                ),
                (
                    "method",
                    models.CharField(
                        blank=True, help_text="How the directory pushes its changes.", max_length=60
                    ),
                ),
                ("server", models.CharField(blank=True, max_length=300)),
                (
                    "detail",
                    models.TextField(
                        blank=True, help_text="The last error, or why the directory cannot push."
                    ),
                ),
                ("watching_since", models.DateTimeField(blank=True, null=True)),
                (
                    "last_change_at",
                    models.DateTimeField(blank=True, help_text="When the last change arrived.", null=True),
                ),
                (
                    "pending_since",
                    models.DateTimeField(
                        blank=True, help_text="When the oldest change not applied yet arrived.", null=True
                    ),
                ),
                ("last_applied_at", models.DateTimeField(blank=True, null=True)),
                (
                    "last_lag_seconds",
                    models.FloatField(
                        blank=True,
                        help_text="From the first change of the last batch arriving to its run's end.",
                        null=True,
                    ),
                ),
                ("changes_received", models.PositiveBigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "domain",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="directory_watch",
                        to="mailserver.domain",
                    ),
                ),
                (
                    "last_run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="directory_sync.syncrun",
                    ),
                ),
            ],
        ),
    ]
