"""The roles' share of the sign-in records: everyone reads them; administrators and helpdesk clear failures."""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

GRANTS = {
    "Administrators": ("view_signin", "clear_failures"),
    "Helpdesk": ("view_signin", "clear_failures"),
    "Operators": ("view_signin",),
}


def grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    app_config = apps.get_app_config("directory_sync")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group = group_model.objects.filter(name=name).first()
        if group is None:
            continue
        group.permissions.add(
            *permission_model.objects.filter(content_type__app_label="directory_sync", codename__in=codenames)
        )


def revoke(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    permission_model = apps.get_model("auth", "Permission")
    permission_model.objects.filter(
        content_type__app_label="directory_sync", codename__in=("view_signin", "clear_failures")
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0004_sign_ins"), ("mailserver", "0002_roles")]
    operations = [migrations.RunPython(grant, revoke)]
