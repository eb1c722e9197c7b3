import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from icewarp_admin.mailserver.models import Domain
from icewarp_admin.mailserver.selectors import system_variable_value
from icewarp_admin.mailserver.services.accounts import create_account, update_personal_data
from icewarp_admin.mailserver.services.addresses import add_account_address
from icewarp_admin.mailserver.services.groups import add_member, create_group

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_tool_create_domain_and_system_variables() -> None:
    assert (
        run("tool", "create", "domain", "Bücher.DE", "d_description", "Books")
        == "Domain xn--bcher-kva.de created.\n"
    )
    assert Domain.objects.get().description == "Books"
    assert run("tool", "get", "system", "c_system_adsynclogtype") == "C_System_ADSyncLogType: 2\n"
    assert run("tool", "set", "system", "C_System_ADSyncMaxDeleteThreshold", "40") == (
        "C_System_ADSyncMaxDeleteThreshold: 40\n"
    )
    assert system_variable_value(name="C_System_ADSyncMaxDeleteThreshold") == 40
    assert "C_Accounts_Global_ActiveDirectorySyncInterval: 5" in run("tool", "get", "system", "all")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("tool", "create", "domain"), "Name the domain"),
        (("tool", "create", "domain", "no_dots"), "not a valid|single label"),
        (("tool", "get", "system", "C_Nope"), "Unknown system variable"),
        (("tool", "set", "system", "C_System_ADSyncLogType"), "in pairs"),
        (("tool", "set", "system", "C_System_ADSyncLogType", "9"), "must be one of"),
        (("tool", "create", "domain", "x.org", "d_colour", "red"), "Unknown property"),
        (("tool", "get", "domain", "x.org"), "not supported"),
        (("tool", "create", "account", "bob@nowhere.org"), "no domain nowhere.org"),
        (("domain_export", "nowhere.org"), "no domain nowhere.org"),
    ],
)
def test_bad_command_lines_fail_with_a_clear_message_and_change_nothing(
    args: tuple[str, ...], says: str
) -> None:
    with pytest.raises(CommandError, match=says):
        run(*args)
    assert not Domain.objects.exists()
    assert system_variable_value(name="C_System_ADSyncLogType") == 2


@pytest.mark.django_db
def test_set_system_is_all_or_nothing() -> None:
    with pytest.raises(CommandError):
        run("tool", "set", "system", "C_System_ADSyncMaxDeleteThreshold", "10", "C_System_ADSyncLogType", "x")
    assert system_variable_value(name="C_System_ADSyncMaxDeleteThreshold") == 0


@pytest.mark.django_db
def test_domain_export_contract(domain: Domain) -> None:
    bob = create_account(domain=domain, username="bob", full_name="Bob B")
    alice = create_account(
        domain=domain, username="alice", full_name="Alice A", aliases=["alice", "a.anders"]
    )
    add_account_address(account=bob, local_part="robert", primary=True)
    update_personal_data(account=alice, vcard={"FN": "Alice A", "TITLE": "CTO"})
    sales = create_group(domain=domain, alias="sales", name="Sales")
    everyone = create_group(domain=domain, alias="all", name="Everyone")
    add_member(group=sales, account=alice)
    add_member(group=sales, account=bob)
    add_member(group=sales, remote_address="partner@elsewhere.org")
    add_member(group=everyone, member_group=sales)

    exported = json.loads(run("domain_export", "EXAMPLE.com"))
    assert exported == {
        "domain": "example.com",
        "accounts": [
            {
                "username": "alice",
                "email": "alice@example.com",
                "aliases": ["alice@example.com", "a.anders@example.com"],
                "full_name": "Alice A",
                "auth_mode": "standard",
                "auth_value": "",
                "directory_id": None,
                "enabled": True,
                "vcard": {"FN": "Alice A", "TITLE": "CTO"},
                "groups": ["sales"],
            },
            {
                "username": "bob",
                "email": "robert@example.com",
                "aliases": ["robert@example.com", "bob@example.com"],
                "full_name": "Bob B",
                "auth_mode": "standard",
                "auth_value": "",
                "directory_id": None,
                "enabled": True,
                "vcard": {},
                "groups": ["sales"],
            },
        ],
        "groups": [
            {
                "alias": "all",
                "name": "Everyone",
                "kind": "group",
                "members": [],
                "member_groups": ["sales"],
                "directory_id": None,
            },
            {
                "alias": "sales",
                "name": "Sales",
                "kind": "group",
                "members": ["alice@example.com", "partner@elsewhere.org", "robert@example.com"],
                "member_groups": [],
                "directory_id": None,
            },
        ],
    }


def test_exit_codes_from_a_real_command_line(tmp_path: Path) -> None:
    """The contract automation relies on: exit 0 on success, non-zero with the reason on stderr."""
    env = {**os.environ, "VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert manage("migrate", "-v0").returncode == 0
    created = manage("tool", "create", "domain", "example.org")
    assert (created.returncode, created.stdout) == (0, "Domain example.org created.\n")
    duplicate = manage("tool", "create", "domain", "EXAMPLE.org")
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr
    bad = manage("tool", "set", "system", "C_Accounts_Global_ActiveDirectorySyncInterval", "0")
    assert bad.returncode != 0
    assert "between 1 and 1440" in bad.stderr
    got = manage("tool", "get", "system", "C_Accounts_Global_ActiveDirectorySyncInterval")
    assert got.stdout == "C_Accounts_Global_ActiveDirectorySyncInterval: 5\n"
