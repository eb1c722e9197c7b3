"""Real servers for the suite: a private slapd, Redis, a Celery worker; started once, on loopback only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devservers.slapd import SlapdInstance, start_slapd


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """An empty OpenLDAP server (dc=example,dc=com) for the whole run; tests add their own OUs."""
    instance = start_slapd(Path(tmp_path_factory.mktemp("slapd")))
    yield instance
    instance.stop()
