from pathlib import Path

import pytest
from django.contrib.auth.hashers import check_password
from django.core.exceptions import ValidationError

from icewarp_admin.mailserver.models import (
    Account,
    AccountState,
    Address,
    Domain,
    Group,
    GroupMember,
    UserTemplate,
)
from icewarp_admin.mailserver.services.accounts import (
    AccountSettings,
    create_account,
    delete_account,
    return_personal_data_to_directory,
    update_account,
    update_personal_data,
)
from icewarp_admin.mailserver.services.addresses import (
    add_account_address,
    make_primary_address,
    remove_account_address,
)
from icewarp_admin.mailserver.services.domains import create_domain, delete_domain
from icewarp_admin.mailserver.services.groups import add_member, create_group, delete_group
from icewarp_admin.mailserver.services.templates import delete_template, save_template

pytestmark = pytest.mark.django_db


def maildir(root: Path, relative: str) -> Path:
    return root / relative


def test_account_gets_a_mailbox_folder_and_its_username_as_primary_address(
    domain: Domain, mail_root: Path
) -> None:
    account = create_account(domain=domain, username="Alice", full_name=" Alice Anders ", password="s3cret!")
    assert account.username == "alice"
    assert account.full_name == "Alice Anders"
    assert check_password("s3cret!", account.password)
    assert [a.address for a in account.aliases.all()] == ["alice@example.com"]
    folder = maildir(mail_root, account.mailbox_path)
    assert folder == mail_root / "example.com" / "alice"
    assert folder.is_dir() and not any(folder.iterdir())  # the mail server makes cur, new, tmp on first use


def test_template_applies_once_at_creation(domain: Domain) -> None:
    template = save_template(
        template=UserTemplate(
            name="Staff", quota_mb=500, services=["imap", "smtp"], account_state=AccountState.DISABLED
        )
    )
    domain.default_template = template
    domain.save()
    account = create_account(domain=domain, username="bob")
    assert (account.quota_mb, account.services, account.enabled) == (500, ["imap", "smtp"], False)
    template.quota_mb = 9
    save_template(template=template)
    account.refresh_from_db()
    assert account.quota_mb == 500


def test_template_with_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValidationError, match="Unknown services: telnet"):
        save_template(template=UserTemplate(name="Bad", services=["imap", "telnet"]))
    assert not UserTemplate.objects.exists()


def test_addresses_are_unique_on_the_whole_server(domain: Domain, mail_root: Path) -> None:
    alice = create_account(domain=domain, username="alice", aliases=["alice", "sales-team"])
    create_group(domain=domain, alias="sales", name="Sales")
    with pytest.raises(ValidationError, match=r"already used by account alice@example\.com"):
        create_account(domain=domain, username="eve", aliases=["eve", "sales-team"])
    with pytest.raises(ValidationError, match=r"already used by group sales@example\.com"):
        add_account_address(account=alice, local_part="sales")
    with pytest.raises(ValidationError, match="already used by account"):
        create_group(domain=domain, alias="alice", name="Clash")
    # a refused account leaves nothing behind: no row, no folder
    assert not Account.objects.filter(username="eve").exists()
    assert not (mail_root / "example.com" / "eve").exists()


def test_alias_order_primary_and_removal(domain: Domain) -> None:
    account = create_account(domain=domain, username="carol")
    extra = add_account_address(account=account, local_part="c.smith")
    first = add_account_address(account=account, local_part="boss", primary=True)
    assert [a.local_part for a in account.aliases.all()] == ["boss", "carol", "c.smith"]
    make_primary_address(address=extra)
    assert [a.local_part for a in account.aliases.all()] == ["c.smith", "boss", "carol"]
    remove_account_address(address=first)
    remove_account_address(address=Address.objects.get(local_part="carol"))
    only = Address.objects.get(local_part="c.smith")
    with pytest.raises(ValidationError, match="only address"):
        remove_account_address(address=only)
    assert account.aliases.count() == 1


def test_removing_an_account_keeps_its_mailbox_unless_asked(domain: Domain, mail_root: Path) -> None:
    kept = create_account(domain=domain, username="dave")
    (mail_root / kept.mailbox_path / "new").mkdir()  # the mail server's first delivery
    (mail_root / kept.mailbox_path / "new" / "1.eml").write_text("Subject: hi\n\nhello")
    delete_account(account=kept)
    assert (mail_root / "example.com" / "dave" / "new" / "1.eml").exists()
    assert not Address.objects.filter(local_part="dave").exists()

    # A new account of the same name never inherits the old person's mail.
    again = create_account(domain=domain, username="dave")
    assert again.mailbox_path == "example.com/dave.1"
    assert list((mail_root / again.mailbox_path).iterdir()) == []

    delete_account(account=again, delete_mailbox_folder=True)
    assert not (mail_root / "example.com" / "dave.1").exists()
    assert (mail_root / "example.com" / "dave").exists()


def test_directory_auth_needs_an_auth_value(domain: Domain) -> None:
    account = create_account(domain=domain, username="erin")
    changes = AccountSettings(
        full_name="Erin",
        auth_mode="directory",
        auth_value=" ",
        enabled=True,
        quota_mb=0,
        max_message_kb=0,
        services=[],
    )
    with pytest.raises(ValidationError, match="host;login"):
        update_account(account=account, changes=changes)
    long_value = "dc1.example.com;CN=" + "x" * 300 + ",OU=People,DC=example,DC=com"
    update_account(account=account, changes=AccountSettings(**{**changes.__dict__, "auth_value": long_value}))
    account.refresh_from_db()
    assert account.auth_value == long_value  # no 116-character limit here


def test_personal_data_edit_sets_the_flag_and_handing_back_clears_it(domain: Domain) -> None:
    account = create_account(domain=domain, username="fred")
    update_personal_data(account=account, vcard={"tel;type=cell": " +420 123 ", "TITLE": "", "FN": "Fred"})
    account.refresh_from_db()
    assert account.vcard == {"TEL;TYPE=CELL": "+420 123", "FN": "Fred"}
    assert account.vcard_edited_locally
    return_personal_data_to_directory(account=account)
    account.refresh_from_db()
    assert not account.vcard_edited_locally


def test_groups_nest_without_loops_and_hold_remote_members(domain: Domain) -> None:
    alice = create_account(domain=domain, username="alice")
    top = create_group(domain=domain, alias="all", name="Everyone")
    middle = create_group(domain=domain, alias="eng", name="Engineering")
    bottom = create_group(domain=domain, alias="ops", name="Operations")
    add_member(group=top, member_group=middle)
    add_member(group=middle, member_group=bottom)
    add_member(group=bottom, account=alice)
    add_member(group=top, remote_address="Partner@Elsewhere.org")
    with pytest.raises(ValidationError, match="loop"):
        add_member(group=bottom, member_group=top)
    with pytest.raises(ValidationError, match="loop"):
        add_member(group=top, member_group=top)
    with pytest.raises(ValidationError, match="already a member"):
        add_member(group=bottom, account=alice)
    with pytest.raises(ValidationError):
        add_member(group=top, remote_address="not an address")
    assert GroupMember.objects.filter(group=top, remote_address="partner@elsewhere.org").exists()
    delete_group(group=middle)
    assert not Address.objects.filter(local_part="eng").exists()
    assert Group.objects.count() == 2


def test_only_an_empty_domain_can_be_deleted(domain: Domain) -> None:
    create_account(domain=domain, username="alice")
    with pytest.raises(ValidationError, match="still has 1 account"):
        delete_domain(domain=domain)
    empty = create_domain(name="empty.org")
    delete_domain(domain=empty)
    assert list(Domain.objects.values_list("name", flat=True)) == ["example.com"]


def test_duplicate_domain_is_refused(domain: Domain) -> None:
    with pytest.raises(ValidationError, match="already exists"):
        create_domain(name="EXAMPLE.com")


def test_deleting_a_template_unsets_it_as_default(domain: Domain) -> None:
    template = save_template(template=UserTemplate(name="T"))
    domain.default_template = template
    domain.save()
    delete_template(template=template)
    domain.refresh_from_db()
    assert domain.default_template is None
