"""The conflict centre: one row per open conflict of a domain's sync (and the resolved ones, as history).

Administrators and helpdesk resolve conflicts; operators read them.
"""

import django.db.models.deletion
import django.utils.timezone
from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

GRANTS = {
    "Administrators": ("view_syncconflict", "resolve_syncconflict"),
    "Helpdesk": ("view_syncconflict", "resolve_syncconflict"),
    "Operators": ("view_syncconflict",),
}


def grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations (post_migrate); create them now to grant them.
    app_config = apps.get_app_config("directory_sync")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is not None:
            group.permissions.add(
                *permission_model.objects.filter(
                    content_type__app_label="directory_sync", codename__in=codenames
                )
            )


def revoke(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="directory_sync", codename__in=("view_syncconflict", "resolve_syncconflict")
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("directory_sync", "0010_alerts"),
        ("mailserver", "0002_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name='SyncConflict',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('object_type', models.CharField(choices=[('account', 'Account'), ('group', 'Group')], max_length=10)),
                ('kind', models.CharField(choices=[('address', 'Address held elsewhere'), ('username', 'Username clash'), ('other_domain', 'Entry synced by another domain'), ('moved_id', 'Directory id moved'), ('duplicate_id', 'Two entries with one id'), ('withheld', 'Waits for a withheld removal')], max_length=20)),
                ('directory_key', models.CharField(help_text="The entry's directory id (or mail:<address>).", max_length=64)),
                ('value', models.CharField(blank=True, help_text='What is contested: a local part, a username, a domain, an id.', max_length=320)),
                ('status', models.CharField(choices=[('open', 'Open'), ('resolved', 'Resolved')], default='open', max_length=10)),
                ('dn', models.TextField(blank=True)),
                ('label', models.CharField(max_length=320)),
                ('wanted_addresses', models.JSONField(blank=True, default=list)),
                ('wanted_username', models.CharField(blank=True, max_length=64)),
                ('holder', models.CharField(help_text='The holder in words, as the run found it.', max_length=500)),
                ('holder_linked', models.BooleanField(default=False, help_text='The holder is synced from the directory.')),
                ('holder_key', models.CharField(blank=True, max_length=64)),
                ('holder_source', models.CharField(blank=True, help_text='directory or manual: where the contested address came from.', max_length=10)),
                ('reason', models.TextField(blank=True)),
                ('first_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('last_seen_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('runs_seen', models.PositiveIntegerField(default=1)),
                ('recheck', models.BooleanField(default=False)),
                ('resolution', models.CharField(blank=True, choices=[('kept_local', 'Kept the local one'), ('given', "Given to the directory's entry"), ('adopted', 'Local account linked to the entry'), ('by_directory', 'Resolved by the directory')], max_length=20)),
                ('resolved_by', models.CharField(blank=True, max_length=150)),
                ('resolved_at', models.DateTimeField(blank=True, null=True)),
                ('resolution_note', models.TextField(blank=True, help_text='What the action did, in words.')),
                ('domain', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='sync_conflicts', to='mailserver.domain')),
                ('entry_account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='mailserver.account')),
                ('entry_group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='mailserver.group')),
                ('first_run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='directory_sync.syncrun')),
                ('holder_account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='mailserver.account')),
                ('holder_group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='mailserver.group')),
                ('last_run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='directory_sync.syncrun')),
                ('resolution_run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='directory_sync.syncrun')),
            ],
            options={
                'ordering': ['-last_seen_at', '-id'],
                'permissions': [('resolve_syncconflict', 'Resolve directory conflicts')],
                'indexes': [models.Index(fields=['status', '-last_seen_at'], name='conflict_status_seen'), models.Index(fields=['domain', 'status'], name='conflict_domain_status'), models.Index(fields=['domain', 'resolution'], name='conflict_domain_resolution'), models.Index(condition=models.Q(('recheck', True)), fields=['domain'], name='conflict_recheck')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'open')), fields=('domain', 'object_type', 'kind', 'directory_key', 'value'), name='one_open_conflict_per_claim')],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
