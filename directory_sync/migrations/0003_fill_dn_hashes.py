"""Objects synced before DN hashes existed get theirs, so that incremental runs can resolve group members."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from directory_sync.ldap.search import dn_hash


def fill(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    for name in ("Account", "Group"):
        model = apps.get_model("mailserver", name)
        rows = model.objects.filter(directory_guid__isnull=False, directory_dn_hash="").exclude(directory_dn="")
        batch = []
        for pk, dn in rows.values_list("pk", "directory_dn").iterator(chunk_size=2000):
            batch.append(model(pk=pk, directory_dn_hash=dn_hash(dn)))
            if len(batch) == 2000:
                model.objects.bulk_update(batch, ["directory_dn_hash"])
                batch = []
        model.objects.bulk_update(batch, ["directory_dn_hash"])


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0002_directory_links"), ("mailserver", "0004_directory_links")]
    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
