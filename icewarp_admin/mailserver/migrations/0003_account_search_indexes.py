"""Substring search over 100,000 accounts without scanning them: trigram indexes on both databases.

PostgreSQL: pg_trgm GIN indexes serve LIKE '%term%' directly. SQLite: FTS5 tables with the trigram tokenizer,
kept current by triggers, so no application code (the bulk sync included) has to maintain them.
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from icewarp_admin.mailserver.migrations import _search_triggers as search_triggers

POSTGRES_INDEXES = [
    "CREATE INDEX IF NOT EXISTS account_username_trgm ON mailserver_account USING gin (username gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS account_full_name_trgm ON mailserver_account "
    "USING gin (upper(full_name::text) gin_trgm_ops)",
    "CREATE INDEX IF NOT EXISTS address_local_part_trgm ON mailserver_address USING gin (local_part gin_trgm_ops)",
]
POSTGRES_DROP = [
    "DROP INDEX IF EXISTS account_username_trgm",
    "DROP INDEX IF EXISTS account_full_name_trgm",
    "DROP INDEX IF EXISTS address_local_part_trgm",
]

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE mailserver_account_fts USING fts5("
    "username, full_name, content='mailserver_account', content_rowid='id', tokenize='trigram')",
    "CREATE VIRTUAL TABLE mailserver_address_fts USING fts5("
    "local_part, content='mailserver_address', content_rowid='id', tokenize='trigram')",
    *search_triggers.SQLITE_TRIGGERS,
    *search_triggers.SQLITE_REBUILD,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS mailserver_account_fts_insert",
    "DROP TRIGGER IF EXISTS mailserver_account_fts_delete",
    "DROP TRIGGER IF EXISTS mailserver_account_fts_update",
    "DROP TRIGGER IF EXISTS mailserver_address_fts_insert",
    "DROP TRIGGER IF EXISTS mailserver_address_fts_delete",
    "DROP TRIGGER IF EXISTS mailserver_address_fts_update",
    "DROP TABLE IF EXISTS mailserver_account_fts",
    "DROP TABLE IF EXISTS mailserver_address_fts",
]


def create(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
            if cursor.fetchone() is None:
                return  # without contrib, search still works; it scans instead
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            for statement in POSTGRES_INDEXES:
                cursor.execute(statement)
        elif vendor == "sqlite":
            for statement in SQLITE_CREATE:
                cursor.execute(statement)


def drop(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    statements = {"postgresql": POSTGRES_DROP, "sqlite": SQLITE_DROP}.get(schema_editor.connection.vendor, [])
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("mailserver", "0002_roles")]
    operations = [migrations.RunPython(create, drop)]
