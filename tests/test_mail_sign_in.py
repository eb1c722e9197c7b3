"""Mail users sign in with their directory password and change it there (rules §9), against the real slapd
with its ppolicy overlay (minimum length 8, history 3, lockout after 5 failures)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import ldap
import pytest
from django.contrib.auth.hashers import make_password

from devservers.ports import free_port
from devservers.slapd import SlapdInstance, start_slapd
from directory_sync.auth import authenticate, change_password, clear_failures
from directory_sync.auth import passwords as auth_passwords
from directory_sync.ldap.binds import BindVerdict, _Link, _password_modify
from directory_sync.ldap.connection import Endpoint, SessionOptions
from directory_sync.models import DirectorySettings, SignIn
from icewarp_admin.mailserver.models import Account, Domain, SystemVariable
from icewarp_admin.mailserver.services.accounts import AccountSettings, create_account, update_account
from tests.directory_helpers import Directory, configure, new_directory, sync

pytestmark = pytest.mark.django_db

WEB = SignIn.Channel.WEB
PASSWORD = "Ann-Passw0rd-1"


def bind_ok(slapd: SlapdInstance, dn: str, password: str) -> bool:
    """A bind straight to the directory (not through us): does the directory itself accept the password?"""
    conn = ldap.initialize(slapd.ldap_url)
    try:
        conn.simple_bind_s(dn, password)
        return True
    except ldap.LDAPError:
        return False
    finally:
        conn.unbind_s()


@pytest.fixture
def directory(slapd: SlapdInstance) -> Directory:
    return new_directory(slapd)


@pytest.fixture
def ann(directory: Directory, domain: Domain) -> str:
    """Ann, synced from the directory, with two addresses and a directory password."""
    dn = directory.add_person(
        "ann", mail=["ann@example.com", "ann.smith@example.com"], cn="Ann Smith", userPassword=PASSWORD
    )
    configure(domain, directory)
    run = sync(domain)
    assert run.status == "succeeded", run.errors
    return dn


def sign_in(address: str, password: str, **kwargs: Any) -> auth_passwords.AuthResult:
    return authenticate(address=address, password=password, channel=WEB, **kwargs)


def test_a_synced_person_signs_in_with_any_address_and_the_directory_password(ann: str) -> None:
    account = Account.objects.get(username="ann")
    assert account.auth_mode == "directory" and account.password == ""
    for address in ("ann@example.com", "Ann.Smith@EXAMPLE.com", " ann@example.com "):
        result = sign_in(address, PASSWORD, client="192.0.2.1")
        assert result.ok, result
        assert result.account == account
    record = SignIn.objects.filter(account=account).first()
    assert record is not None
    assert (record.reason, record.method, record.channel, record.client) == (
        "ok",
        "directory",
        "web",
        "192.0.2.1",
    )
    assert record.host.startswith("ldap://127.0.0.1:")


def test_a_wrong_password_is_refused_and_recorded_without_the_password(
    ann: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="directory_sync")
    result = sign_in("ann@example.com", "Wrong-Passw0rd-9", client="192.0.2.7")
    assert (result.ok, result.reason) == (False, "bad_password")
    assert result.message == "Wrong address or password."
    record = SignIn.objects.get(reason="bad_password")
    assert record.account is not None and record.address == "ann@example.com"
    assert "Wrong-Passw0rd-9" not in caplog.text
    assert "ann@example.com" in caplog.text and "bad_password" in caplog.text
    stored = " ".join(str(value) for value in SignIn.objects.values_list().get(pk=record.pk))
    assert "Wrong-Passw0rd-9" not in stored


@pytest.mark.parametrize(
    "typed",
    [
        "nobody@example.com",
        "*@example.com",
        "ann*@example.com",
        "*)(uid=*))(|(uid=*@example.com",
        "ann@example.com)(mail=*",
        "ann",
        "",
        "@example.com",
        "ann@",
    ],
)
def test_unknown_addresses_and_injections_reach_nobody(ann: str, typed: str) -> None:
    result = sign_in(typed, PASSWORD)
    assert (result.ok, result.reason, result.account) == (False, "unknown", None)
    assert result.message == "Wrong address or password."  # the same words as a wrong password


def test_an_empty_password_never_becomes_an_anonymous_bind(ann: str) -> None:
    # A DN with an empty password is an "unauthenticated" bind, which many servers take as anonymous: it is
    # refused here before any directory is asked.
    result = sign_in("ann@example.com", "")
    assert (result.ok, result.reason) == (False, "bad_password")
    assert SignIn.objects.get().host == ""


def test_a_password_is_not_sent_in_clear_unless_the_domain_allows_it(ann: str) -> None:
    DirectorySettings.objects.filter(domain__name="example.com").update(allow_plain_bind=False)
    result = sign_in("ann@example.com", PASSWORD)
    assert (result.ok, result.reason) == (False, "directory_down")
    record = SignIn.objects.get()
    assert "ALLOWPLAINBIND" in record.detail and PASSWORD not in record.detail


def test_a_group_address_is_not_an_account(directory: Directory, domain: Domain) -> None:
    member = directory.add_person("gm", userPassword=PASSWORD)
    directory.slapd.ldapadd(
        f"dn: cn=team,{directory.base_dn}\nobjectClass: groupOfNames\nobjectClass: extensibleObject\n"
        f"cn: team\nmail: team@example.com\nmember: {member}\n"
    )
    configure(domain, directory)
    sync(domain)
    assert sign_in("team@example.com", PASSWORD).reason == "unknown"
    assert sign_in("gm@example.com", PASSWORD).ok


def test_disabled_here_or_sign_in_switched_off_refuses_without_asking_the_directory(ann: str) -> None:
    account = Account.objects.get(username="ann")
    Account.objects.filter(pk=account.pk).update(enabled=False)
    result = sign_in("ann@example.com", PASSWORD)
    assert (result.reason, result.detail) == ("disabled", "The account is disabled here")
    Account.objects.filter(pk=account.pk).update(enabled=True)
    DirectorySettings.objects.filter(domain=account.domain).update(directory_sign_in=False)
    result = sign_in("ann@example.com", PASSWORD)
    assert result.reason == "disabled"
    assert "switched off" in result.message
    assert SignIn.objects.filter(reason="disabled", host="").count() == 2  # no directory was asked


def test_our_throttle_trips_before_the_directory_locks_the_person_out(
    ann: str, slapd: SlapdInstance, settings: Any
) -> None:
    # ppolicy locks the entry after 5 failures (pwdMaxFailure); we refuse after 3.
    assert settings.SIGN_IN_FAILURES_PER_ACCOUNT == 3
    reasons = [sign_in("ann@example.com", f"Guess-{n}-Passw0rd").reason for n in range(8)]
    assert reasons == ["bad_password"] * 3 + ["throttled"] * 5
    # Throttled: refused even with the right password, and the directory was not asked (no host recorded).
    assert sign_in("ann@example.com", PASSWORD).reason == "throttled"
    assert not SignIn.objects.filter(reason="throttled").exclude(host="").exists()
    # The directory saw 3 failures, below its 5: the person is not locked out there.
    assert bind_ok(slapd, ann, PASSWORD)
    clear_failures(account=Account.objects.get(username="ann"), by="helpdesk")
    assert sign_in("ann@example.com", PASSWORD).ok


def test_failures_age_out_of_the_window(ann: str, settings: Any) -> None:
    settings.SIGN_IN_FAILURE_WINDOW_SECONDS = 60
    for n in range(3):
        sign_in("ann@example.com", f"Guess-{n}-Passw0rd")
    assert sign_in("ann@example.com", PASSWORD).reason == "throttled"
    for record in SignIn.objects.all():
        SignIn.objects.filter(pk=record.pk).update(at=record.at - timedelta(minutes=5))
    assert sign_in("ann@example.com", PASSWORD).ok


def test_without_our_throttle_the_directory_locks_the_entry(
    directory: Directory, domain: Domain, settings: Any
) -> None:
    directory.add_person("lee", userPassword=PASSWORD)
    configure(domain, directory)
    sync(domain)
    settings.SIGN_IN_FAILURES_PER_ACCOUNT = 100
    for n in range(5):
        assert sign_in("lee@example.com", f"Guess-{n}-Passw0rd").reason == "bad_password"
    result = sign_in("lee@example.com", PASSWORD)
    assert result.reason == "locked"
    assert "locked" in result.message


def test_a_client_guessing_many_addresses_is_throttled(ann: str, settings: Any) -> None:
    settings.SIGN_IN_FAILURES_PER_CLIENT = 4
    for n in range(4):
        assert sign_in(f"user{n}@example.com", "x", client="198.51.100.9").reason == "unknown"
    assert sign_in("ann@example.com", PASSWORD, client="198.51.100.9").reason == "throttled"
    assert sign_in("ann@example.com", PASSWORD, client="198.51.100.10").ok


def test_the_backup_host_answers_when_the_primary_does_not(ann: str, slapd: SlapdInstance) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    DirectorySettings.objects.filter(domain__name="example.com").update(host=dead, backup_host=slapd.ldap_url)
    result = sign_in("ann@example.com", PASSWORD)
    assert result.ok, result
    assert SignIn.objects.get(reason="ok").host == slapd.ldap_url
    DirectorySettings.objects.filter(domain__name="example.com").update(backup_host="")
    result = sign_in("ann@example.com", PASSWORD)
    assert result.reason == "directory_down"
    assert "try again later" in result.message
    assert "connection refused" in result.detail.lower()


def test_a_login_with_filter_and_dn_specials_signs_in_and_changes_its_password(
    directory: Directory, domain: Domain
) -> None:
    # The login (the DN) carries what a filter or a DN would misread: * ( ) \\ and an escaped +.
    dn = f"uid=o*neil(x)\\5cy\\+z,{directory.base_dn}"
    directory.slapd.ldapadd(
        f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: o*neil(x)\\y+z\ncn: O Neil\nsn: Neil\n"
        f"mail: oneil@example.com\nuserPassword: {PASSWORD}\n"
    )
    configure(domain, directory)
    sync(domain)
    account = Account.objects.get(username="oneil")
    assert "o*neil(x)" in account.auth_value
    assert sign_in("oneil@example.com", PASSWORD).ok
    assert sign_in("oneil@example.com", "Wrong-Passw0rd-1").reason == "bad_password"
    changed = change_password(
        address="oneil@example.com", old_password=PASSWORD, new_password="Ne0-Passw0rd-2", channel=WEB
    )
    assert changed.ok, changed
    assert sign_in("oneil@example.com", "Ne0-Passw0rd-2").ok


def test_a_directory_password_change_goes_through_the_directory_policy(
    ann: str, slapd: SlapdInstance
) -> None:
    def change(old: str, new: str) -> auth_passwords.AuthResult:
        return change_password(address="ann@example.com", old_password=old, new_password=new, channel=WEB)

    result = change("Not-Her-Passw0rd", "Whatever-Passw0rd-7")
    assert result.reason == "bad_password"
    result = change(PASSWORD, "short")
    assert (result.reason, result.ok) == ("policy", False)
    assert "too short" in result.message
    result = change(PASSWORD, PASSWORD)
    assert result.reason == "policy" and "same as the current" in result.message
    assert change(PASSWORD, "Second-Passw0rd-2").ok
    result = change("Second-Passw0rd-2", PASSWORD)  # pwdInHistory 3
    assert result.reason == "policy"
    assert "used before" in result.message
    # The new password signs in (here and at the directory); the old one does not; nothing was stored here.
    assert sign_in("ann@example.com", "Second-Passw0rd-2").ok
    assert sign_in("ann@example.com", PASSWORD).reason == "bad_password"
    assert bind_ok(slapd, ann, "Second-Passw0rd-2") and not bind_ok(slapd, ann, PASSWORD)
    assert Account.objects.get(username="ann").password == ""


def test_the_kill_switch_refuses_directory_password_changes(ann: str, slapd: SlapdInstance) -> None:
    SystemVariable.objects.create(name="C_Accounts_Global_LDAP_PassChangeDisable", value="1")
    result = change_password(
        address="ann@example.com", old_password=PASSWORD, new_password="Second-Passw0rd-2", channel=WEB
    )
    assert result.reason == "not_permitted"
    assert "switched off" in result.message
    assert bind_ok(slapd, ann, PASSWORD)


def test_a_password_reset_by_the_administrator_must_be_changed(ann: str, directory: Directory) -> None:
    policy = f"cn=must-change,{directory.base_dn}"
    directory.slapd.ldapadd(
        f"dn: {policy}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: must-change\n"
        "pwdAttribute: userPassword\npwdMustChange: TRUE\n"
    )
    directory.modify(ann, pwdPolicySubentry=policy)
    directory.modify(ann, userPassword="Reset-Passw0rd-1", pwdReset="TRUE")
    result = sign_in("ann@example.com", "Reset-Passw0rd-1")
    assert result.reason == "expired"
    assert "change it" in result.message
    changed = change_password(
        address="ann@example.com", old_password="Reset-Passw0rd-1", new_password="Own-Passw0rd-3", channel=WEB
    )
    assert changed.ok, changed
    assert sign_in("ann@example.com", "Own-Passw0rd-3").ok


def test_standard_accounts_use_the_local_hash_and_its_policy(domain: Domain) -> None:
    create_account(domain=domain, username="sam", password="Local-Passw0rd-1")
    assert sign_in("sam@example.com", "Local-Passw0rd-1").ok
    assert sign_in("sam@example.com", "Local-Passw0rd-2").reason == "bad_password"
    result = change_password(
        address="sam@example.com", old_password="Local-Passw0rd-1", new_password="qwerty", channel=WEB
    )
    assert result.reason == "policy"
    assert "too common" in result.message and "too short" in result.message
    assert change_password(
        address="sam@example.com", old_password="Local-Passw0rd-1", new_password="Quite-Long-Secret-42",
        channel=WEB,
    ).ok  # fmt: skip
    assert sign_in("sam@example.com", "Quite-Long-Secret-42").ok


def test_an_outdated_local_hash_is_upgraded_on_sign_in(domain: Domain, settings: Any) -> None:
    settings.PASSWORD_HASHERS = [
        *settings.PASSWORD_HASHERS,
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    account = create_account(domain=domain, username="old")
    Account.objects.filter(pk=account.pk).update(
        password=make_password("Local-Passw0rd-1", hasher="pbkdf2_sha256")
    )
    assert sign_in("old@example.com", "Local-Passw0rd-1").ok
    assert Account.objects.get(pk=account.pk).password.startswith("md5$")


def test_an_account_turned_directory_keeps_no_local_hash(domain: Domain) -> None:
    account = create_account(domain=domain, username="mix", password="Local-Passw0rd-1")
    changes = AccountSettings(
        full_name="", auth_mode="directory", auth_value="ldap.example.com;uid=mix,dc=example,dc=com",
        enabled=True, quota_mb=0, max_message_kb=0, services=[],
    )  # fmt: skip
    update_account(account=account, changes=changes)
    assert Account.objects.get(pk=account.pk).password == ""


# A server of our own whose ACL does not let people write their own password: only cn=writer may.
@pytest.fixture
def strict_slapd(tmp_path: Path) -> Iterator[SlapdInstance]:
    instance = start_slapd(tmp_path / "strict")
    instance.config_modify(
        "dn: olcDatabase={2}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n"
        f'olcAccess: {{0}}to attrs=userPassword by dn.exact="cn=writer,{instance.base_dn}" write '
        "by anonymous auth by * none\n"
        "olcAccess: {1}to * by * read\n"
    )
    instance.ldapadd(
        f"dn: cn=writer,{instance.base_dn}\nobjectClass: simpleSecurityObject\n"
        "objectClass: organizationalRole\ncn: writer\nuserPassword: Writer-Passw0rd-1\n"
    )
    yield instance
    instance.stop()


def test_a_bind_user_without_write_rights_is_named_and_one_with_them_changes_it(
    strict_slapd: SlapdInstance, domain: Domain
) -> None:
    directory = new_directory(strict_slapd)
    directory.add_person("rita", userPassword=PASSWORD)
    configure(domain, directory)
    sync(domain)
    DirectorySettings.objects.filter(domain=domain).update(bind_user=strict_slapd.reader_dn)
    settings = DirectorySettings.objects.get(domain=domain)
    settings.set_bind_password("readerpw")
    settings.save()
    result = change_password(
        address="rita@example.com", old_password=PASSWORD, new_password="Rita-Passw0rd-2", channel=WEB
    )
    assert result.reason == "not_permitted"
    assert strict_slapd.reader_dn in result.message and "write access to userPassword" in result.message
    settings.bind_user = f"cn=writer,{strict_slapd.base_dn}"
    settings.set_bind_password("Writer-Passw0rd-1")
    settings.save()
    result = change_password(
        address="rita@example.com", old_password=PASSWORD, new_password="Rita-Passw0rd-2", channel=WEB
    )
    assert result.ok, result
    assert sign_in("rita@example.com", "Rita-Passw0rd-2").ok


class _RefusingExop:
    """A connection whose server does not implement RFC 3062 (a supplement to the real-server tests: slapd
    always implements it, so the fallback to replacing userPassword is driven here)."""

    def __init__(self) -> None:
        self.modified: list[tuple[str, list[Any]]] = []

    def passwd(self, *args: Any, **kwargs: Any) -> int:
        raise ldap.PROTOCOL_ERROR({"info": "Extended Operation(1.3.6.1.4.1.4203.1.11.3) not supported"})

    def modify_ext_s(self, dn: str, changes: list[Any], **kwargs: Any) -> None:
        self.modified.append((dn, changes))


def test_a_server_without_password_modify_gets_userpassword_replaced() -> None:
    conn = _RefusingExop()
    endpoint = Endpoint("127.0.0.1", 389, False)
    link = _Link(conn, None, endpoint, SessionOptions(endpoints=(endpoint,), bind_user="", bind_password=""))
    outcome = _password_modify(link, identity=None, user_dn="uid=x,dc=y", old="a", new="Bb-1", secrets=())
    assert outcome is not None and outcome.ok
    assert conn.modified == [("uid=x,dc=y", [(ldap.MOD_REPLACE, "userPassword", [b"Bb-1"])])]
    assert BindVerdict("ok", "Signed in", bound=True).ok


def test_a_primary_whose_tls_fails_hands_over_to_the_backup(ann: str, slapd: SlapdInstance) -> None:
    # ldaps:// on the plain LDAP port: the TCP connect works, the handshake does not.
    DirectorySettings.objects.filter(domain__name="example.com").update(
        host=f"ldaps://127.0.0.1:{slapd.ldap_port}", backup_host=slapd.ldap_url
    )
    result = sign_in("ann@example.com", PASSWORD)
    assert result.ok, result
    assert SignIn.objects.get(reason="ok").host == slapd.ldap_url
