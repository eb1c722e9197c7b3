"""The three roles of the console and what each may do."""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

APPS = ("mailserver", "directory_sync")
HELPDESK_EXTRA = (
    "mailserver.return_vcard_to_directory",
    "directory_sync.run_sync",
    "directory_sync.test_connection",
)
OPERATOR_PERMISSIONS = (
    "mailserver.view_domain",
    "mailserver.view_account",
    "mailserver.view_address",
    "mailserver.view_group",
    "mailserver.view_groupmember",
    "directory_sync.view_settingschange",
    "directory_sync.view_syncrun",
    "directory_sync.view_syncevent",
)


def create_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations (post_migrate); create them now so roles can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    ours = permission_model.objects.filter(content_type__app_label__in=APPS)

    def by_names(names: tuple[str, ...]) -> list[object]:
        found = []
        for name in names:
            app_label, codename = name.split(".")
            found.append(ours.get(content_type__app_label=app_label, codename=codename))
        return found

    administrators, _ = group_model.objects.get_or_create(name="Administrators")
    administrators.permissions.set(ours)
    helpdesk, _ = group_model.objects.get_or_create(name="Helpdesk")
    helpdesk.permissions.set([*ours.filter(codename__startswith="view_"), *by_names(HELPDESK_EXTRA)])
    operators, _ = group_model.objects.get_or_create(name="Operators")
    operators.permissions.set(by_names(OPERATOR_PERMISSIONS))


def remove_roles(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Administrators", "Helpdesk", "Operators"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("mailserver", "0001_initial"),
        ("directory_sync", "0001_initial"),
    ]
    operations = [migrations.RunPython(create_roles, remove_roles)]
