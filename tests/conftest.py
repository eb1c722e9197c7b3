"""Fixtures shared by the whole suite. Real servers are started by the fixtures in tests/servers.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group as Role
from django.test import Client

from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.roles import ADMINISTRATORS, HELPDESK, OPERATORS
from icewarp_admin.mailserver.services.domains import create_domain

pytest_plugins = ["tests.servers", "tests.samba_fixtures"]

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def mail_root(settings: object, tmp_path: Path) -> Path:
    """Every test gets its own mail root and config folder."""
    root = tmp_path / "mail"
    settings.MAIL_ROOT = root  # type: ignore[attr-defined]
    settings.CONFIG_DIR = tmp_path / "config"  # type: ignore[attr-defined]
    return root


@pytest.fixture
def make_user(db: None, django_user_model: Any) -> Callable[..., object]:
    """Create a console user in one role (or none)."""

    def make(username: str, role: str | None = None) -> object:
        user = django_user_model.objects.create_user(username=username, password=PASSWORD)
        if role:
            user.groups.add(Role.objects.get(name=role))
        return user

    return make


@pytest.fixture
def client_for(make_user: Callable[..., object]) -> Callable[[str | None], Client]:
    """A signed-in test client for a role: "administrator", "helpdesk", "operator", or None (no role)."""
    roles = {"administrator": ADMINISTRATORS, "helpdesk": HELPDESK, "operator": OPERATORS, None: None}

    def make(role: str | None) -> Client:
        user = make_user(f"user-{role or 'none'}", roles[role])
        client = Client()
        client.force_login(user)  # type: ignore[arg-type]
        return client

    return make


@pytest.fixture
def admin(client_for: Callable[[str | None], Client]) -> Client:
    return client_for("administrator")


@pytest.fixture
def domain(db: None) -> Domain:
    return create_domain(name="example.com", description="Example")
