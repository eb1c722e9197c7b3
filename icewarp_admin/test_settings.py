"""Settings for the test suite: the real ones, with a fast password hasher and a test database that a
Celery worker in another process can open too (SQLite's default test database lives in memory)."""

import os
import tempfile
from pathlib import Path

from icewarp_admin.settings import *  # noqa: F403
from icewarp_admin.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"icewarp-console-test-{os.getpid()}.sqlite3")
    }
else:
    # One test database per test process: two suites on one server must not drop each other's database.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
