"""Account search through the trigram indexes (pg_trgm on PostgreSQL, FTS5 kept by triggers on SQLite)."""

import pytest

from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.selectors import account_list
from icewarp_admin.mailserver.services.accounts import (
    AccountSettings,
    create_account,
    delete_account,
    update_account,
)
from icewarp_admin.mailserver.services.addresses import add_account_address, remove_account_address
from icewarp_admin.mailserver.services.domains import create_domain

pytestmark = pytest.mark.django_db


def found(domain: Domain, term: str) -> list[str]:
    return [account.username for account in account_list(domain=domain, search=term)]


def test_search_follows_every_change(domain: Domain) -> None:
    other = create_domain(name="other.org")
    alice = create_account(domain=domain, username="alice", full_name="Alice Anders")
    create_account(domain=domain, username="bob", full_name="Bob O'Brien")
    create_account(domain=other, username="alice", full_name="Alice Elsewhere")
    assert found(domain, "ALICE") == ["alice"]
    assert found(domain, "anders") == ["alice"]
    assert found(domain, "o'bri") == ["bob"]
    assert found(domain, "al") == ["alice"]  # two letters: the start of usernames and addresses
    assert found(domain, "li") == []

    settings = AccountSettings(
        full_name="Alicia Zander",
        auth_mode="standard",
        auth_value="",
        enabled=True,
        quota_mb=0,
        max_message_kb=0,
        services=[],
    )
    update_account(account=alice, changes=settings)
    assert found(domain, "anders") == []
    assert found(domain, "zander") == ["alice"]

    alias = add_account_address(account=alice, local_part="the.boss")
    assert found(domain, "the.boss@example.com") == ["alice"]
    remove_account_address(address=alias)
    assert found(domain, "the.boss") == []

    delete_account(account=Account.objects.get(domain=domain, username="alice"))
    assert found(domain, "alic") == []
    assert found(other, "alic") == ["alice"]


@pytest.mark.parametrize("term", ['"', 'a"b OR c', "NEAR(x y)", "*", "%_", "\\", "a AND b"])
def test_search_syntax_is_taken_literally(domain: Domain, term: str) -> None:
    create_account(domain=domain, username="plain", full_name="Plain Person")
    assert found(domain, term) == []
