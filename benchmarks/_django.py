"""Set Django up against a benchmark's own database, never the console's."""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from pathlib import Path


def setup_benchmark_database(name: str) -> str:
    """Point Django at a fresh database of its own (PostgreSQL when DATABASE_URL says so) and migrate it."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urllib.parse.urlsplit(url)
        database = f"bench_{name}"
        with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}"')
            connection.execute(f'CREATE DATABASE "{database}"')
        os.environ["DATABASE_URL"] = parts._replace(path=f"/{database}").geturl()
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        os.environ["DATABASE_URL"] = f"sqlite:///{folder / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "icewarp_admin.settings")
    os.environ.setdefault("MAIL_ROOT", tempfile.mkdtemp(prefix="bench-mail-"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"].split("://", 1)[0]
