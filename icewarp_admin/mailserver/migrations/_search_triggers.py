"""SQLite's search index (FTS5) is kept current by these triggers (migration 0003); a migration that rebuilds
the table loses them and runs them again."""

from django.apps.registry import Apps
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS mailserver_account_fts_insert AFTER INSERT ON mailserver_account BEGIN
        INSERT INTO mailserver_account_fts(rowid, username, full_name) VALUES (new.id, new.username, new.full_name);
    END""",
    """CREATE TRIGGER IF NOT EXISTS mailserver_account_fts_delete AFTER DELETE ON mailserver_account BEGIN
        INSERT INTO mailserver_account_fts(mailserver_account_fts, rowid, username, full_name)
        VALUES ('delete', old.id, old.username, old.full_name);
    END""",
    """CREATE TRIGGER IF NOT EXISTS mailserver_account_fts_update AFTER UPDATE OF username, full_name ON mailserver_account BEGIN
        INSERT INTO mailserver_account_fts(mailserver_account_fts, rowid, username, full_name)
        VALUES ('delete', old.id, old.username, old.full_name);
        INSERT INTO mailserver_account_fts(rowid, username, full_name) VALUES (new.id, new.username, new.full_name);
    END""",
    """CREATE TRIGGER IF NOT EXISTS mailserver_address_fts_insert AFTER INSERT ON mailserver_address BEGIN
        INSERT INTO mailserver_address_fts(rowid, local_part) VALUES (new.id, new.local_part);
    END""",
    """CREATE TRIGGER IF NOT EXISTS mailserver_address_fts_delete AFTER DELETE ON mailserver_address BEGIN
        INSERT INTO mailserver_address_fts(mailserver_address_fts, rowid, local_part)
        VALUES ('delete', old.id, old.local_part);
    END""",
    """CREATE TRIGGER IF NOT EXISTS mailserver_address_fts_update AFTER UPDATE OF local_part ON mailserver_address BEGIN
        INSERT INTO mailserver_address_fts(mailserver_address_fts, rowid, local_part)
        VALUES ('delete', old.id, old.local_part);
        INSERT INTO mailserver_address_fts(rowid, local_part) VALUES (new.id, new.local_part);
    END""",
]
SQLITE_REBUILD = [
    "INSERT INTO mailserver_account_fts(mailserver_account_fts) VALUES ('rebuild')",
    "INSERT INTO mailserver_address_fts(mailserver_address_fts) VALUES ('rebuild')",
]


def restore_search_triggers(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """SQLite rebuilds a table to add a NOT NULL column (or one with a database default), and its triggers go
    with it: the search index's triggers are made again, and the index rebuilt from the table."""
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            for statement in SQLITE_TRIGGERS + SQLITE_REBUILD:
                cursor.execute(statement)
