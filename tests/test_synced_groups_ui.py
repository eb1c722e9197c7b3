"""The console's pages on synced groups and accounts, against real synced data: what the directory owns is
locked (and a forged POST refused), OU groups and directory groups are told apart."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from django.urls import reverse

from devservers.slapd import SlapdInstance
from directory_sync.models import DirectorySettings
from icewarp_admin.mailserver.models import Account, Address, Domain, Group, GroupMember, Provenance
from icewarp_admin.mailserver.services.accounts import create_account
from icewarp_admin.mailserver.services.addresses import add_account_address
from icewarp_admin.mailserver.services.groups import add_member, create_group, update_group
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

GROUP_FILTER = "(objectClass=groupOfNames)"
LOCKED = "From the directory: change it there."


@pytest.fixture
def directory(slapd: SlapdInstance) -> Iterator[Directory]:
    yield new_directory(slapd)


@pytest.fixture
def synced(domain: Domain, directory: Directory) -> Domain:
    """Ann in the unit Support, a directory group also called Support, and the groups of the units."""
    support = directory.add_ou("Support")
    ann = directory.add_person("ann", parent=support, mail=["ann@example.com", "ann.smith@example.com"])
    directory.slapd.ldapadd(
        f"dn: cn=Support,{directory.base_dn}\nobjectClass: groupOfNames\ncn: Support\nmember: {ann}\n"
    )
    configure(
        domain, directory, group_filter=GROUP_FILTER, create_ou_groups=True, ou_groups_root=directory.base_dn
    )
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    return domain


@pytest.fixture
def admin_client(client_for: Callable[[str | None], Client]) -> Client:
    return client_for("administrator")


def page(response: object) -> str:
    return html.unescape(response.content.decode())  # type: ignore[attr-defined]


def group_url(group: Group) -> str:
    return reverse("mailserver:group_detail", args=[group.domain.name, group.alias])


def directory_group() -> Group:
    return Group.objects.get(address__local_part="support")


def ou_group() -> Group:
    return Group.objects.get(name="Support", directory_guid__startswith="ou:")


def disabled(text: str, tag: str, name: str) -> bool:
    match = re.search(rf"<{tag}[^>]*\bname=\"{name}\"[^>]*>", text)
    assert match, f"no {tag} {name}"
    return " disabled" in match.group(0)


def remove_member_offered(text: str, membership: GroupMember) -> bool:
    return (
        '<input type="hidden" name="action" value="remove_member">'
        f'<input type="hidden" name="member_id" value="{membership.pk}">'
    ) in text


def remove_alias_offered(text: str, address: Address) -> bool:
    return (
        '<input type="hidden" name="action" value="remove_alias">'
        f'<input type="hidden" name="address_id" value="{address.pk}">'
    ) in text


def row_of(text: str, needle: str) -> str:
    """The table row that contains the text."""
    rows = [row.split("</tr>", 1)[0] for row in text.split("<tr")[1:]]
    found = [row for row in rows if needle in row and "<td" in row]
    assert found, f"no row contains {needle}"
    return found[0]


def test_synced_group_page_locks_what_the_directory_owns(synced: Domain, admin_client: Client) -> None:
    group = directory_group()
    manual = add_member(group=group, remote_address="friend@partner.org")
    from_directory = GroupMember.objects.get(group=group, source=Provenance.DIRECTORY)
    text = page(admin_client.get(group_url(group)))
    assert disabled(text, "input", "name") and disabled(text, "select", "kind")
    assert not disabled(text, "input", "description")
    assert text.count(LOCKED) >= 3  # name, kind and the directory's member
    assert not remove_member_offered(text, from_directory)
    assert remove_member_offered(text, manual)
    assert reverse("mailserver:group_delete", args=[synced.name, group.alias]) not in text
    assert "comes from the directory, which is synchronized: remove it there" in text

    manual_group = create_group(domain=synced, alias="local", name="Local")
    add_member(group=manual_group, account=Account.objects.get(username="ann"))
    text = page(admin_client.get(group_url(manual_group)))
    assert not disabled(text, "input", "name") and not disabled(text, "select", "kind")
    assert remove_member_offered(text, GroupMember.objects.get(group=manual_group))
    assert reverse("mailserver:group_delete", args=[synced.name, "local"]) in text


def test_forged_posts_on_a_synced_group_are_refused_and_the_next_run_undoes_nothing(
    synced: Domain, admin_client: Client
) -> None:
    group = directory_group()
    stamp = group.directory_change_stamp
    manual = add_member(group=group, remote_address="friend@partner.org")
    from_directory = GroupMember.objects.get(group=group, source=Provenance.DIRECTORY)
    url = group_url(group)

    forged = {"action": "update", "name": "Renamed", "kind": "mailing_list", "description": "Helpdesk"}
    response = admin_client.post(url, forged)
    assert response.status_code == 200
    text = page(response)
    assert "The name comes from the directory: change it there. Nothing was changed." in text
    assert "The kind comes from the directory: change it there. Nothing was changed." in text
    assert "Group saved." not in text
    unchanged = directory_group()
    assert (unchanged.name, unchanged.kind, unchanged.description) == ("Support", Group.Kind.GROUP, "")

    # What a browser posts: the disabled fields are not sent; the description is the administrator's.
    response = admin_client.post(url, {"action": "update", "description": "Helpdesk"}, follow=True)
    assert "Group saved." in page(response)
    saved = directory_group()
    assert (saved.name, saved.kind, saved.description) == ("Support", Group.Kind.GROUP, "Helpdesk")
    assert saved.directory_change_stamp == stamp

    response = admin_client.post(url, {"action": "remove_member", "member_id": str(from_directory.pk)})
    assert response.status_code == 200
    assert "ann@example.com is a member in the directory: take it out of the group there" in page(response)
    assert GroupMember.objects.filter(pk=from_directory.pk).exists()

    response = admin_client.post(url, {"action": "remove_member", "member_id": str(manual.pk)}, follow=True)
    assert "Member removed." in page(response)
    assert not GroupMember.objects.filter(pk=manual.pk).exists()

    delete_url = reverse("mailserver:group_delete", args=[synced.name, group.alias])
    response = admin_client.post(delete_url, follow=True)
    assert response.redirect_chain[-1][0] == url
    assert "comes from the directory, which is synchronized" in page(response)
    assert "Nothing was changed." in page(response)
    assert Group.objects.filter(pk=group.pk).exists()

    run = sync(synced)
    assert run.status == "succeeded", run.errors
    assert not run.events.exists()  # nothing to put back
    after = directory_group()
    assert (after.name, after.description) == ("Support", "Helpdesk")
    assert list(after.memberships.values_list("account__username", flat=True)) == ["ann"]


def test_the_lock_is_what_the_sync_puts_back(synced: Domain) -> None:
    """Name and kind changed here come back at the next run; the description is left alone."""
    group = directory_group()
    update_group(group=group, name="Renamed", description="Kept", kind=Group.Kind.MAILING_LIST)
    run = sync(synced)
    assert run.events.get(object_type="group").reason == "changed here: put back"
    after = directory_group()
    assert (after.name, after.kind, after.description) == ("Support", Group.Kind.GROUP, "Kept")


def test_a_synced_group_may_be_deleted_once_its_domain_no_longer_syncs(
    synced: Domain, admin_client: Client
) -> None:
    DirectorySettings.objects.filter(domain=synced).update(active=False)
    group = directory_group()
    text = page(admin_client.get(group_url(group)))
    delete_url = reverse("mailserver:group_delete", args=[synced.name, group.alias])
    assert delete_url in text
    assert disabled(text, "input", "name")  # still linked: the fields stay the directory's
    response = admin_client.post(delete_url, follow=True)
    assert "Group support@example.com deleted." in page(response)
    assert not Group.objects.filter(pk=group.pk).exists()


def test_ou_groups_and_directory_groups_of_the_same_name_are_told_apart(
    synced: Domain, admin_client: Client
) -> None:
    create_group(domain=synced, alias="helpdesk", name="Helpdesk")
    text = page(admin_client.get(reverse("mailserver:group_list", args=[synced.name])))
    unit = ou_group()
    assert "OU group" in row_of(text, f"{unit.alias}@example.com")
    assert "directory group" in row_of(text, "support@example.com")
    assert "manual" in row_of(text, "helpdesk@example.com")
    assert "OU group" not in row_of(text, "support@example.com")

    text = page(admin_client.get(group_url(unit)))
    assert 'title="An address-book group made for an organizational unit">OU group</span>' in text
    assert 'made by "Create groups for organizational units"' in text
    assert "was made for an organizational unit of the directory" in text  # instead of a delete button
    assert reverse("mailserver:group_delete", args=[synced.name, unit.alias]) not in text
    assert disabled(text, "input", "name")

    # The unit's group sits in the root unit's group: marked there too.
    root = Group.objects.get(memberships__member_group=unit)
    text = page(admin_client.get(group_url(root)))
    assert "OU group" in row_of(text, f"{unit.alias}@example.com")

    text = page(admin_client.get(group_url(directory_group())))
    assert ">directory group</span>" in text and ">OU group</span>" not in text


def test_synced_account_offers_no_removal_the_server_refuses(synced: Domain, admin_client: Client) -> None:
    ann = Account.objects.get(username="ann")
    stamp = ann.directory_change_stamp
    manual = add_account_address(account=ann, local_part="annie")
    primary, second = (Address.objects.get(local_part=local) for local in ("ann", "ann.smith"))
    url = reverse("mailserver:account_detail", args=[synced.name, "ann"])
    text = page(admin_client.get(url))
    assert not remove_alias_offered(text, primary) and not remove_alias_offered(text, second)
    assert remove_alias_offered(text, manual)
    assert text.count(LOCKED) >= 2
    delete_url = reverse("mailserver:account_delete", args=[synced.name, "ann"])
    assert delete_url not in text
    assert "ann@example.com comes from the directory, which is synchronized: remove it there" in text

    response = admin_client.post(url, {"action": "remove_alias", "address_id": str(second.pk)})
    assert response.status_code == 200
    assert "ann.smith@example.com comes from the directory: remove it there" in page(response)
    assert Address.objects.filter(pk=second.pk).exists()
    assert Account.objects.get(pk=ann.pk).directory_change_stamp == stamp

    response = admin_client.post(
        url, {"action": "remove_alias", "address_id": str(second.pk)}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and 'id="account-aliases"' in page(response)
    assert "comes from the directory: remove it there" in page(response)

    response = admin_client.post(url, {"action": "remove_alias", "address_id": str(manual.pk)}, follow=True)
    assert "Aliases saved." in page(response)
    assert not Address.objects.filter(pk=manual.pk).exists()

    response = admin_client.post(delete_url, follow=True)
    assert "remove it there (or from the user filter)" in page(response)
    assert Account.objects.filter(pk=ann.pk).exists()

    DirectorySettings.objects.filter(domain=synced).update(active=False)
    text = page(admin_client.get(url))
    assert delete_url in text  # the server would remove it now
    assert not remove_alias_offered(text, second)  # still the directory's, put back when it syncs again


def test_manual_account_keeps_its_remove_buttons(domain: Domain, admin_client: Client) -> None:
    bea = create_account(domain=domain, username="bea", aliases=["bea", "b"])
    url = reverse("mailserver:account_detail", args=[domain.name, "bea"])
    text = page(admin_client.get(url))
    for address in bea.aliases.all():
        assert remove_alias_offered(text, address)
    assert LOCKED not in text
    assert reverse("mailserver:account_delete", args=[domain.name, "bea"]) in text


def test_a_synced_accounts_primary_address_is_the_directorys(
    domain: Domain, slapd: SlapdInstance, client_for: Callable[[str | None], Client]
) -> None:
    directory = new_directory(slapd)
    directory.add_person("pia", mail=["pia@example.com", "pia.p@example.com"])
    configure(domain, directory)
    sync(domain)
    admin = client_for("administrator")
    url = "/domains/example.com/accounts/pia/"
    page = admin.get(url).content.decode()
    assert "Make primary" not in page and "Make it the primary address" not in page
    second = Address.objects.get(local_part="pia.p")
    response = admin.post(url, {"action": "primary_alias", "address_id": second.pk}, follow=True)
    assert "comes from the directory: change it there. Nothing was changed." in response.content.decode()
    assert Account.objects.get(username="pia").email == "pia@example.com"
    admin.post(url, {"action": "add_alias", "alias": "extra", "primary": "on"})
    assert Account.objects.get(username="pia").email == "pia@example.com"
    assert Address.objects.filter(local_part="extra").exists()
