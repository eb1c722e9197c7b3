"""Administrators see console sign-in lockouts and lift them (django-axes' AccessAttempt records)."""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

CODENAMES = ("view_accessattempt", "delete_accessattempt")


def grant(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations (post_migrate); create axes' now to grant them.
    app_config = apps.get_app_config("axes")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    administrators = apps.get_model("auth", "Group").objects.filter(name="Administrators").first()
    if administrators is None:
        return
    permission_model = apps.get_model("auth", "Permission")
    administrators.permissions.add(
        *permission_model.objects.filter(content_type__app_label="axes", codename__in=CODENAMES)
    )


def revoke(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    administrators = apps.get_model("auth", "Group").objects.filter(name="Administrators").first()
    if administrators is None:
        return
    permission_model = apps.get_model("auth", "Permission")
    administrators.permissions.remove(
        *permission_model.objects.filter(content_type__app_label="axes", codename__in=CODENAMES)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("axes", "0010_accessattemptexpiration"),
        ("mailserver", "0004_directory_links"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
