"""The self-service pages at /me/: sign in, account, personal data, password, sign out; their own session."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client

from devservers.slapd import SlapdInstance
from directory_sync.models import SignIn
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.accounts import create_account, set_account_password
from icewarp_admin.mailserver.services.groups import add_member, create_group
from tests.directory_helpers import configure, new_directory, sync

pytestmark = pytest.mark.django_db

PASSWORD = "Self-Passw0rd-1"
COOKIE = "mailuser_session"


@pytest.fixture
def synced(slapd: SlapdInstance, domain: Domain) -> Account:
    directory = new_directory(slapd)
    directory.add_person(
        "una", mail=["una@example.com", "una.u@example.com"], cn="Una Umber", userPassword=PASSWORD,
        title="Engineer",
    )  # fmt: skip
    configure(domain, directory)
    sync(domain)
    return Account.objects.get(username="una")


def signed_in(address: str, password: str) -> Client:
    client = Client()
    response = client.post("/me/", {"address": address, "password": password})
    assert response.status_code == 302 and response["Location"] == "/me/account/", response.content.decode()
    return client


def test_sign_in_shows_the_account_with_addresses_and_groups(synced: Account) -> None:
    group = create_group(domain=synced.domain, alias="team", name="The Team")
    add_member(group=group, account=synced)
    client = signed_in("UNA@example.com", PASSWORD)
    cookie = client.cookies[COOKIE]
    assert cookie["path"] == "/me/" and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert "sessionid" not in client.cookies  # the console's session is not touched
    page = client.get("/me/account/").content.decode()
    for text in ("Una Umber", "una@example.com", "una.u@example.com", "The Team", "directory password"):
        assert text in page


def test_a_wrong_password_re_renders_the_form_with_one_message_for_all_failures(synced: Account) -> None:
    client = Client()
    for address, password in (("una@example.com", "Wrong-Passw0rd-1"), ("nobody@example.com", PASSWORD)):
        response = client.post("/me/", {"address": address, "password": password})
        assert response.status_code == 200
        assert "Wrong address or password." in response.content.decode()
    assert COOKIE not in client.cookies
    assert list(SignIn.objects.values_list("reason", "channel")) == [
        ("unknown", "web"),
        ("bad_password", "web"),
    ]


def test_editing_personal_data_stops_the_directory_overwriting_it(
    synced: Account, slapd: SlapdInstance
) -> None:
    client = signed_in("una@example.com", PASSWORD)
    page = client.get("/me/account/").content.decode()
    assert "Engineer" in page
    form = {f"item_{index}": "" for index in range(40)}
    labels = client.get("/me/account/").context["form"]
    for name, field in labels.fields.items():
        form[name] = field.initial or ""
        if labels.items[int(name.split("_")[1])] == "TITLE":
            form[name] = "Chief Engineer"
    response = client.post("/me/account/", form)
    assert response.status_code == 302
    synced.refresh_from_db()
    assert synced.vcard_edited_locally and synced.vcard["TITLE"] == "Chief Engineer"
    sync(synced.domain)
    synced.refresh_from_db()
    assert synced.vcard["TITLE"] == "Chief Engineer"
    assert "no longer overwrites" in client.get("/me/account/").content.decode()


def test_a_directory_password_changed_on_the_pages_signs_in_and_keeps_the_session(synced: Account) -> None:
    client = signed_in("una@example.com", PASSWORD)
    page = client.get("/me/password/").content.decode()
    assert 'value="una@example.com"' in page and "disabled" in page
    response = client.post(
        "/me/password/",
        {"address": "someone-else@example.com", "current_password": PASSWORD, "new_password": "tiny",
         "new_password_again": "tiny"},
    )  # fmt: skip
    assert response.status_code == 200 and "too short" in response.content.decode()
    response = client.post(
        "/me/password/",
        {
            "current_password": PASSWORD,
            "new_password": "Self-Passw0rd-2",
            "new_password_again": "Self-Passw0rd-3",
        },
    )
    assert "The two new passwords differ" in response.content.decode()
    response = client.post(
        "/me/password/",
        {
            "current_password": PASSWORD,
            "new_password": "Self-Passw0rd-2",
            "new_password_again": "Self-Passw0rd-2",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/me/account/"
    assert "Your password has been changed." in client.get("/me/account/").content.decode()
    signed_in("una@example.com", "Self-Passw0rd-2")
    assert Account.objects.get(pk=synced.pk).password == ""


def test_an_expired_password_leads_to_the_change_form(synced: Account, slapd: SlapdInstance) -> None:
    policy = "cn=must-change-web,dc=example,dc=com"
    slapd.ldapadd(
        f"dn: {policy}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: must-change-web\n"
        "pwdAttribute: userPassword\npwdMustChange: TRUE\n"
    )
    slapd.ldapmodify(
        f"dn: {synced.directory_dn}\nchangetype: modify\nreplace: pwdPolicySubentry\n"
        f"pwdPolicySubentry: {policy}\n-\nreplace: userPassword\nuserPassword: Reset-Passw0rd-9\n-\n"
        "replace: pwdReset\npwdReset: TRUE\n-\n"
    )
    response = Client().post("/me/", {"address": "una@example.com", "password": "Reset-Passw0rd-9"})
    page = response.content.decode()
    assert response.status_code == 200 and "Your password was reset" in page
    assert "/me/password/?address=una%40example.com" in page
    response = Client().post(
        "/me/password/",
        {"address": "una@example.com", "current_password": "Reset-Passw0rd-9",
         "new_password": "Mine-Passw0rd-4", "new_password_again": "Mine-Passw0rd-4"},
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"] == "/me/?changed=1"
    signed_in("una@example.com", "Mine-Passw0rd-4")


def test_sign_out_ends_the_session(synced: Account) -> None:
    client = signed_in("una@example.com", PASSWORD)
    assert client.get("/me/sign-out/").status_code == 405
    response = client.post("/me/sign-out/")
    assert response.status_code == 302 and response["Location"] == "/me/?signed_out=1"
    assert client.get("/me/account/")["Location"] == "/me/"


def test_a_local_password_change_elsewhere_signs_out_other_sessions(domain: Domain) -> None:
    account = create_account(domain=domain, username="lou", password="Local-Passw0rd-1")
    client = signed_in("lou@example.com", "Local-Passw0rd-1")
    assert client.get("/me/account/").status_code == 200
    set_account_password(account=account, raw_password="Other-Passw0rd-2")
    assert client.get("/me/account/")["Location"] == "/me/"


def test_a_disabled_account_is_signed_out(synced: Account) -> None:
    client = signed_in("una@example.com", PASSWORD)
    Account.objects.filter(pk=synced.pk).update(enabled=False)
    assert client.get("/me/account/")["Location"] == "/me/"


def test_mail_users_and_console_staff_stay_apart(synced: Account, admin: Client) -> None:
    mail_user = signed_in("una@example.com", PASSWORD)
    for page in ("/domains/", "/domains/example.com/accounts/", "/sync/"):
        response = mail_user.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), page
    # A console administrator is nobody on the self-service pages.
    assert admin.get("/me/account/")["Location"] == "/me/"
    assert admin.get("/me/").status_code == 200
    # A mail-user cookie presented as the console's session opens nothing either.
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = mail_user.cookies[COOKIE].value
    assert stolen.get("/domains/")["Location"].startswith("/login/")


def test_the_console_account_page_lists_last_sign_ins_and_clears_failures(
    synced: Account, client_for: Callable[[str | None], Client]
) -> None:
    Client(REMOTE_ADDR="192.0.2.8").post("/me/", {"address": "una@example.com", "password": "Bad-Passw0rd-1"})
    signed_in("una@example.com", PASSWORD)
    url = "/domains/example.com/accounts/una/"
    operator = client_for("operator")
    page = operator.get(url).content.decode()
    assert "Last sign-ins" in page and "bad_password" in page and "192.0.2.8" in page
    assert "Clear sign-in failures" not in page
    forbidden = operator.post(url, {"action": "clear_sign_in_failures"})
    assert forbidden.status_code == 403
    helpdesk = client_for("helpdesk")
    response = helpdesk.post(url, {"action": "clear_sign_in_failures"})
    assert response.status_code == 302
    assert SignIn.objects.filter(reason="cleared", detail="Failures cleared by user-helpdesk").exists()
    page = client_for("administrator").get(url).content.decode()
    assert "This account signs in with its directory password" in page and "Set password" not in page
