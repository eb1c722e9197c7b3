"""Kerberos single sign-on on /me/: real SPNEGO exchanges with tickets from the Samba DC (our KDC), the keytab
it exported for HTTP/localhost, and every refusal the Kerberos section promises."""

from __future__ import annotations

import base64
import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gssapi
import gssapi.raw
import pytest
from django.conf import settings as django_settings
from django.test import Client

from devservers.samba import SambaInstance
from directory_sync.auth.kerberos import TicketRefused, accept, check_service
from directory_sync.keytabs import parse_keytab
from directory_sync.models import SignIn
from directory_sync.services.connection_check import check_to_text, run_connection_check
from directory_sync.services.keytabs import keytab_folder
from icewarp_admin.mailserver.models import Account, Domain
from icewarp_admin.mailserver.services.domains import create_domain
from tests.directory_helpers import sync
from tests.kerberos_tools import make_keytab
from tests.samba_fixtures import ALICE, CAROL, STAFF, configure_ad
from tests.servers import ROOT, manage_py_env

pytestmark = pytest.mark.django_db

SERVICE = "HTTP/localhost@EXAMPLE.TEST"
KEYTAB_NAME = "HTTP#localhost@EXAMPLE.TEST"
SPNEGO = gssapi.Mechanism.from_sasl_name("SPNEGO")


@pytest.fixture
def kerberos(samba: SambaInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SambaInstance:
    """This process speaks Kerberos to the Samba DC; its keytab for HTTP/localhost is in the keytab folder."""
    monkeypatch.setenv("KRB5_CONFIG", str(samba.krb5_conf))
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'ccache'}")
    folder = keytab_folder()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(samba.directory / "http.keytab", folder / KEYTAB_NAME)
    return samba


@pytest.fixture
def example_test(db: None) -> Domain:
    return create_domain(name="example.test")


def single_sign_on(domain: Domain, samba: SambaInstance, **values: Any) -> None:
    configure_ad(
        domain, samba, base_dn=STAFF, sso_active=True, sso_service_name=SERVICE, **values
    )  # fmt: skip
    assert sync(domain).status == "succeeded"


def ticket_context(user: str, password: str, target: str = "HTTP@localhost") -> gssapi.SecurityContext:
    """The initiating side, as a browser on the person's computer: credentials from the KDC, SPNEGO."""
    acquired = gssapi.raw.acquire_cred_with_password(
        gssapi.Name(user, gssapi.NameType.kerberos_principal),
        password.encode(),
        usage="initiate",
        mechs=[SPNEGO],
    )
    return gssapi.SecurityContext(
        name=gssapi.Name(target, gssapi.NameType.hostbased_service),
        creds=gssapi.Credentials(acquired.creds),
        usage="initiate",
        mech=SPNEGO,
        flags=gssapi.RequirementFlag.mutual_authentication,
    )


def negotiate(client: Client, token: bytes) -> Any:
    return client.get("/me/", HTTP_AUTHORIZATION=f"Negotiate {base64.b64encode(token).decode()}")


def test_without_a_ticket_the_page_challenges_and_shows_the_password_form(
    kerberos: SambaInstance, example_test: Domain
) -> None:
    response = Client().get("/me/")
    assert response.status_code == 200 and "WWW-Authenticate" not in response  # no domain with SSO yet
    single_sign_on(example_test, kerberos)
    response = Client().get("/me/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Negotiate"
    page = response.content.decode()
    assert 'name="password"' in page and "your browser signs you in by itself" in page
    assert Client().get("/me/?signed_out=1").status_code == 200


@pytest.mark.parametrize(
    ("matching", "login_source"), [(0, "upn"), (1, "upn"), (2, "upn"), (2, "samaccountname")]
)
def test_a_ticket_signs_in_by_each_matching_rule_with_mutual_authentication(
    kerberos: SambaInstance, example_test: Domain, matching: int, login_source: str
) -> None:
    single_sign_on(example_test, kerberos, sso_matching=matching, login_source=login_source)
    context = ticket_context("alice@EXAMPLE.TEST", ALICE.password)
    client = Client(REMOTE_ADDR="192.0.2.60")
    response = negotiate(client, context.step())
    assert response.status_code == 302 and response["Location"] == "/me/account/", response.content.decode()
    scheme, _, answer = response["WWW-Authenticate"].partition(" ")
    assert scheme == "Negotiate"
    context.step(base64.b64decode(answer))  # the browser's check that this server accepted its ticket
    assert context.complete
    assert "alice@example.test" in client.get("/me/account/").content.decode()
    record = SignIn.objects.get()
    assert (record.reason, record.method, record.address, record.client) == (
        "ok", "kerberos", "alice@EXAMPLE.TEST", "192.0.2.60",
    )  # fmt: skip
    assert record.account == Account.objects.get(username="alice")


def test_no_matching_account_and_a_disabled_one_are_refused_with_the_password_form(
    kerberos: SambaInstance, example_test: Domain
) -> None:
    single_sign_on(example_test, kerberos, sso_matching=1)  # by alias: carol's aliases are carol@ only
    Account.objects.filter(username="carol").update(username="carol2")
    Account.objects.filter(username="alice").update(enabled=False)
    response = negotiate(
        Client(), ticket_context("Administrator@EXAMPLE.TEST", kerberos.admin_password).step()
    )
    page = response.content.decode()
    assert response.status_code == 403 and "WWW-Authenticate" not in response
    assert "No account matches Administrator@EXAMPLE.TEST (example.test by alias)" in page
    assert 'name="password"' in page
    response = negotiate(Client(), ticket_context("alice@EXAMPLE.TEST", ALICE.password).step())
    assert response.status_code == 403
    assert "matches alice@example.test, which is disabled" in response.content.decode()
    assert negotiate(Client(), ticket_context("carol@EXAMPLE.TEST", CAROL.password).step()).status_code == 302
    assert list(SignIn.objects.order_by("id").values_list("reason", flat=True)) == [
        "unknown",
        "disabled",
        "ok",
    ]


def test_a_missing_keytab_a_wrong_key_version_and_a_wrong_encryption_type_are_named(
    kerberos: SambaInstance, example_test: Domain, tmp_path: Path
) -> None:
    single_sign_on(example_test, kerberos)
    keytab = keytab_folder() / KEYTAB_NAME
    real_kvno = parse_keytab(keytab.read_bytes())[0].kvno

    def refusal() -> str:
        response = negotiate(Client(), ticket_context("alice@EXAMPLE.TEST", ALICE.password).step())
        assert response.status_code == 403
        return SignIn.objects.latest("id").detail

    keytab.unlink()
    assert refusal().startswith(
        f"There is no keytab for {SERVICE}: upload it on the Directory Service tab or place"
    )
    keytab.write_bytes(make_keytab(tmp_path / "kvno.keytab", SERVICE, kvno=real_kvno + 5))
    assert (
        f"key version {real_kvno} of {SERVICE}, which the keytab lacks (it holds version {real_kvno + 5})"
        in (refusal())
    )
    keytab.unlink()
    keytab.write_bytes(
        make_keytab(
            tmp_path / "enctype.keytab", SERVICE, kvno=real_kvno, enctypes=("aes128-cts-hmac-sha1-96",)
        )
    )
    assert "encrypted with aes256-cts-hmac-sha1-96, for which the keytab" in refusal()
    keytab.unlink()
    keytab.write_bytes(
        make_keytab(tmp_path / "key.keytab", SERVICE, kvno=real_kvno)
    )  # right version, wrong key
    assert "holds other keys than the domain controller used" in refusal()


def test_a_ticket_for_another_service_is_refused(kerberos: SambaInstance, example_test: Domain) -> None:
    single_sign_on(example_test, kerberos)
    with contextlib.suppress(RuntimeError):  # left by an interrupted run of a kept DC (SAMBA_TEST_DIR)
        kerberos.samba_tool("spn", "delete", "HTTP/otherhost", "websvc")
    kerberos.samba_tool("spn", "add", "HTTP/otherhost", "websvc")
    try:
        token = ticket_context("alice@EXAMPLE.TEST", ALICE.password, target="HTTP@otherhost").step()
    finally:
        kerberos.samba_tool("spn", "delete", "HTTP/otherhost", "websvc")
    response = negotiate(Client(), token)
    assert response.status_code == 403
    assert "The ticket is for HTTP/otherhost@EXAMPLE.TEST, but no domain signs in with that service name" in (
        response.content.decode()
    )
    # The acceptor itself, asked for our service, says the same in its words.
    with pytest.raises(TicketRefused, match=r"The ticket is for HTTP/otherhost@EXAMPLE\.TEST, not for"):
        accept(token, service=SERVICE)


def test_garbage_and_ntlm_are_refused_in_plain_words(kerberos: SambaInstance, example_test: Domain) -> None:
    single_sign_on(example_test, kerberos)
    response = Client().get("/me/", HTTP_AUTHORIZATION="Negotiate not-base64!")
    assert response.status_code == 403
    ntlm = base64.b64encode(b"NTLMSSP\x00\x01\x00\x00\x00" + b"\x00" * 24).decode()
    response = Client().get("/me/", HTTP_AUTHORIZATION=f"Negotiate {ntlm}")
    assert "the browser sent NTLM, not Kerberos" in response.content.decode()


ACCEPT_UNDER_FAKETIME = """
import base64, sys
import django
django.setup()
from directory_sync.auth.kerberos import TicketRefused, accept
try:
    accept(base64.b64decode(sys.argv[1]), service=sys.argv[2])
    print("accepted")
except TicketRefused as exc:
    print(exc.code, exc.message)
"""


@pytest.mark.skipif(not shutil.which("faketime"), reason="needs faketime")
def test_clock_skew_is_named(kerberos: SambaInstance, example_test: Domain) -> None:
    """The acceptor on a server whose clock is 20 minutes ahead (libfaketime), with a fresh ticket."""
    token = ticket_context("alice@EXAMPLE.TEST", ALICE.password).step()
    env = manage_py_env(KRB5_CONFIG=str(kerberos.krb5_conf))
    done = subprocess.run(
        ["faketime", "-f", "+20m", sys.executable, "-c", ACCEPT_UNDER_FAKETIME, base64.b64encode(token),
         SERVICE],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.startswith("clock_skew The clocks of this server"), done.stdout + done.stderr


def test_test_connection_checks_the_keytab_and_the_kdc(kerberos: SambaInstance, example_test: Domain) -> None:
    single_sign_on(example_test, kerberos)
    settings = example_test.directory_settings
    result = run_connection_check(settings)
    kerberos_step = result["kerberos"]
    assert kerberos_step["ok"], kerberos_step
    assert {key["enctype"] for key in kerberos_step["keys"]} == {
        "aes256-cts-hmac-sha1-96",
        "aes128-cts-hmac-sha1-96",
    }
    assert kerberos_step["kdc"].startswith(
        "The KDC of EXAMPLE.TEST answers; a ticket it issued to Administrator"
    )
    assert "Single sign-on HTTP/localhost@EXAMPLE.TEST: ok" in check_to_text(result)
    (keytab_folder() / KEYTAB_NAME).unlink()
    result = run_connection_check(settings)
    assert not result["ok"]
    assert any(error.startswith("Single sign-on: There is no keytab for") for error in result["errors"])
    check = check_service(SERVICE)
    assert not check["ok"] and check["keys"] == []


# --------------------------------------------------------------------------- a realm that is not the domain's


def k5_realm(name: str) -> Any:
    import k5test  # type: ignore[import-untyped]

    ports = {
        "kdc_ports": "127.0.0.1:$port0", "kdc_tcp_ports": "127.0.0.1:$port0",
        "kadmind_port": "127.0.0.1:$port1", "kpasswd_port": "127.0.0.1:$port2",
    }  # fmt: skip
    return k5test.K5Realm(
        realm=name,
        portbase=random.randrange(20000, 60000, 10),  # noqa: S311 - a port, not a secret
        krb5_conf={"libdefaults": {"dns_canonicalize_hostname": "false", "rdns": "false"}},
        kdc_conf={"realms": {"$realm": ports}},
        create_user=False, create_host=False, get_creds=False,
    )  # fmt: skip


@pytest.fixture
def trusting_realms(tmp_path: Path) -> Iterator[tuple[Any, Any, Path]]:
    """Two MIT realms, HOME.TEST (the domain's) trusting VISITOR.TEST, and a krb5.conf knowing both."""
    if not shutil.which("krb5kdc") and not Path("/usr/sbin/krb5kdc").exists():
        pytest.skip("needs krb5-kdc")
    home, visitor = k5_realm("HOME.TEST"), k5_realm("VISITOR.TEST")
    try:
        for realm in (home, visitor):
            realm.run_kadminl("addprinc -pw Cross-Trust-1 krbtgt/HOME.TEST@VISITOR.TEST")
        home.addprinc("HTTP/localhost@HOME.TEST")
        visitor.addprinc("bob@VISITOR.TEST", "Bob-Passw0rd-1")
        home.addprinc("bob@HOME.TEST", "Bob-Passw0rd-1")
        config = tmp_path / "krb5.conf"
        config.write_text(
            "[libdefaults]\n default_realm = HOME.TEST\n dns_lookup_kdc = false\n"
            " dns_canonicalize_hostname = false\n rdns = false\n[realms]\n"
            f" HOME.TEST = {{\n  kdc = 127.0.0.1:{home.portbase}\n }}\n"
            f" VISITOR.TEST = {{\n  kdc = 127.0.0.1:{visitor.portbase}\n }}\n"
            "[domain_realm]\n localhost = HOME.TEST\n"
        )
        yield home, visitor, config
    finally:
        home.stop()
        visitor.stop()


def test_a_principal_of_another_realm_is_refused(
    trusting_realms: tuple[Any, Any, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, domain: Domain
) -> None:
    home, _, config = trusting_realms
    monkeypatch.setenv("KRB5_CONFIG", str(config))
    folder = keytab_folder()
    folder.mkdir(parents=True, exist_ok=True)
    home.extract_keytab("HTTP/localhost@HOME.TEST", str(folder / "HTTP#localhost@HOME.TEST"))
    from directory_sync.services.settings import save_directory_settings

    save_directory_settings(
        domain=domain,
        values={"sso_active": True, "sso_service_name": "HTTP/localhost@HOME.TEST", "sso_matching": 0},
    )
    from icewarp_admin.mailserver.services.accounts import create_account

    create_account(domain=domain, username="bob")
    visitor_token = ticket_context("bob@VISITOR.TEST", "Bob-Passw0rd-1").step()
    response = negotiate(Client(), visitor_token)
    assert response.status_code == 403
    assert (
        "bob@VISITOR.TEST is from the realm VISITOR.TEST, not from HOME.TEST, the realm of example.com"
        in (response.content.decode())
    )
    # The same name from the domain's own realm signs in.
    home_token = ticket_context("bob@HOME.TEST", "Bob-Passw0rd-1").step()
    assert negotiate(Client(), home_token)["Location"] == "/me/account/"
    assert os.environ["KRB5_CONFIG"] == str(config)
    assert django_settings.CONFIG_DIR


# --------------------------------------------------------------------------- real clients: curl and Chromium


@pytest.fixture
def alice_ticket(kerberos: SambaInstance, tmp_path: Path) -> dict[str, str]:
    """A credentials cache holding alice's ticket-granting ticket, as on her computer; the client's env."""
    env = {
        **os.environ,
        "KRB5_CONFIG": str(kerberos.krb5_conf),
        "KRB5CCNAME": f"FILE:{tmp_path / 'alice.ccache'}",
    }
    subprocess.run(
        ["kinit", "alice@EXAMPLE.TEST"], input=ALICE.password + "\n", env=env, check=True,
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return env


LIVE = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@LIVE
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_curl_negotiates_with_a_ticket(
    kerberos: SambaInstance, example_test: Domain, alice_ticket: dict[str, str], live_server: Any
) -> None:
    single_sign_on(example_test, kerberos)
    done = subprocess.run(
        ["curl", "--silent", "--negotiate", "--user", ":", "--dump-header", "-", "--output", "/dev/null",
         f"{live_server.url}/me/"],
        env=alice_ticket, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    headers = done.stdout
    assert "HTTP/1.1 302" in headers and "Location: /me/account/" in headers, headers + done.stderr
    assert "WWW-Authenticate: Negotiate " in headers  # the answer token of mutual authentication
    assert SignIn.objects.get(reason="ok").method == "kerberos"


CHROMIUM = "/usr/bin/chromium"


@LIVE
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs chromium")
def test_chromium_signs_in_with_a_ticket(
    kerberos: SambaInstance, example_test: Domain, alice_ticket: dict[str, str], live_server: Any
) -> None:
    from playwright.sync_api import sync_playwright

    single_sign_on(example_test, kerberos)
    arguments = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync", "--auth-server-allowlist=localhost",
        "--disable-auth-negotiate-cname-lookup",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        env: dict[str, str | float | bool] = dict(alice_ticket)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=arguments, env=env)
        try:
            page = browser.new_page()
            # Chromium loads its GSSAPI library lazily: the first Negotiate challenge after start fails.
            page.goto(f"{live_server.url}/me/?signed_out=1")
            page.goto(f"{live_server.url}/me/")
            if not page.url.endswith("/me/account/"):
                page.goto(f"{live_server.url}/me/")
            assert page.url == f"{live_server.url}/me/account/", page.content()
            assert "alice@example.test" in page.content()
        finally:
            browser.close()
