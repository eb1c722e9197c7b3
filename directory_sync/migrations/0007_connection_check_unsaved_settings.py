from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("directory_sync", "0006_sign_in_kerberos")]

    operations = [
        migrations.AddField(
            model_name="connectioncheck",
            name="unsaved_settings",
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
    ]
