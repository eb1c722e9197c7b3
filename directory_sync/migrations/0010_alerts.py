"""Alerts (System → Alerts): server-wide and per-domain configuration, per-domain states, alerts and their
deliveries. Only administrators see and change them."""

import django.db.models.deletion
import django.utils.timezone
from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CODENAMES = ("view_alertsettings", "change_alertsettings", "send_test_alert")


def grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations (post_migrate); create them now to grant them.
    app_config = apps.get_app_config("directory_sync")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    administrators = apps.get_model("auth", "Group").objects.filter(name="Administrators").first()
    if administrators is None:
        return
    permission_model = apps.get_model("auth", "Permission")
    administrators.permissions.add(
        *permission_model.objects.filter(content_type__app_label="directory_sync", codename__in=CODENAMES)
    )


class Migration(migrations.Migration):

    dependencies = [
        ('directory_sync', '0009_directorysettings_allow_plain_bind'),
        ('mailserver', '0002_roles'),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('recipients', models.TextField(blank=True, help_text='Comma-separated addresses; empty: no e-mail.', verbose_name='E-mail recipients')),
                ('webhook_url', models.URLField(blank=True, help_text='Each alert is POSTed there as JSON.', max_length=2000, verbose_name='Webhook URL')),
                ('webhook_secret_encrypted', models.TextField(blank=True, editable=False)),
                ('on_run_failed', models.BooleanField(default=True, verbose_name='A run fails or completes with errors')),
                ('on_removals_withheld', models.BooleanField(default=True, verbose_name='Removals are withheld')),
                ('on_not_synchronized', models.BooleanField(default=True, verbose_name='A domain is not synchronized for N intervals')),
                ('on_conflict_open', models.BooleanField(default=True, verbose_name='A conflict stays open for N runs')),
                ('not_synchronized_intervals', models.PositiveSmallIntegerField(default=3, verbose_name='Not synchronized after (intervals)')),
                ('conflict_open_runs', models.PositiveSmallIntegerField(default=3, verbose_name='Conflict open after (runs)')),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'alert settings',
                'permissions': [('send_test_alert', 'Send a test alert')],
            },
        ),
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('run_failed', 'A run fails or completes with errors'), ('removals_withheld', 'Removals are withheld'), ('not_synchronized', 'A domain is not synchronized for N intervals'), ('conflict_open', 'A conflict stays open for N runs'), ('test', 'Test alert')], max_length=20)),
                ('event', models.CharField(choices=[('raised', 'Raised'), ('recovered', 'Recovered'), ('test', 'Test')], max_length=10)),
                ('subject', models.CharField(max_length=300)),
                ('message', models.TextField()),
                ('payload', models.JSONField(help_text="The webhook's JSON body.")),
                ('requested_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('domain', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='mailserver.domain')),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='alerts', to='directory_sync.syncrun')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='AlertDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('channel', models.CharField(choices=[('email', 'E-mail'), ('webhook', 'Webhook')], max_length=10)),
                ('source', models.CharField(choices=[('server', 'Server-wide'), ('domain', 'Domain')], max_length=10)),
                ('target', models.TextField(help_text='The recipients (comma-separated) or the webhook URL.')),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('delivered', 'Delivered'), ('failed', 'Failed')], db_index=True, default='pending', max_length=10)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('error', models.TextField(blank=True)),
                ('last_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('alert', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='directory_sync.alert')),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='DomainAlertSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('enabled', models.BooleanField(default=True, verbose_name='Send alerts for this domain')),
                ('extra_recipients', models.TextField(blank=True, help_text="Comma-separated; they get this domain's alerts too.", verbose_name='Extra e-mail recipients')),
                ('webhook_url', models.URLField(blank=True, help_text="This domain's alerts are POSTed there too.", max_length=2000, verbose_name='Extra webhook URL')),
                ('webhook_secret_encrypted', models.TextField(blank=True, editable=False)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('domain', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='alert_settings', to='mailserver.domain')),
            ],
        ),
        migrations.CreateModel(
            name='AlertState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('run_failed', 'A run fails or completes with errors'), ('removals_withheld', 'Removals are withheld'), ('not_synchronized', 'A domain is not synchronized for N intervals'), ('conflict_open', 'A conflict stays open for N runs'), ('test', 'Test alert')], max_length=20)),
                ('alerting', models.BooleanField(default=False)),
                ('since', models.DateTimeField(default=django.utils.timezone.now, help_text='When it entered this state.')),
                ('details', models.JSONField(blank=True, default=dict, help_text='What the evaluation carries from run to run (open conflicts).')),
                ('domain', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alert_states', to='mailserver.domain')),
            ],
            options={
                'ordering': ['domain', 'kind'],
                'constraints': [models.UniqueConstraint(fields=('domain', 'kind'), name='one_alert_state_per_kind')],
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
