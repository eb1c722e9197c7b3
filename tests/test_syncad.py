"""IceWarp's syncad.dat: export, import, round trip, secrets, unknown keys, bad files."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from directory_sync.forms import ALL_FIELDS
from directory_sync.models import DirectorySettings, SettingsChange
from directory_sync.services.settings import save_directory_settings
from directory_sync.syncad import SyncadImportError, export_syncad, import_syncad
from icewarp_admin.mailserver.models import Domain

pytestmark = pytest.mark.django_db

ICEWARP_FILE = """<DOMAINS>
  <DOMAIN>
    <DOMAIN>example.com</DOMAIN>
    <ACTIVE>1</ACTIVE>
    <HOST>ldaps://dc1.example.com:636</HOST>
    <SECHOST>dc2.example.com</SECHOST>
    <USER>EXAMPLE\\sync</USER>
    <PASS>Pa55-from-IceWarp</PASS>
    <DN>dc=example,dc=com</DN>
    <LDAPSERVERTYPE>0</LDAPSERVERTYPE>
    <ACCOUNTFILTERS>(&amp;(objectClass=user)(mail=*))</ACCOUNTFILTERS>
    <GROUPFILTERS>Group</GROUPFILTERS>
    <HOSTDOMAINACTIVE>1</HOSTDOMAINACTIVE>
    <HOSTDOMAIN>ADDomain;*</HOSTDOMAIN>
    <USERNAME_PREFERE_SAMACCOUNTNAME>1</USERNAME_PREFERE_SAMACCOUNTNAME>
    <USERNAMEFROMCN>1</USERNAMEFROMCN>
    <ADUSERNAMETOALIAS>1</ADUSERNAMETOALIAS>
    <SSOACTIVE>1</SSOACTIVE>
    <SSOSERVICENAME>HTTP/mail.example.com@EXAMPLE.COM</SSOSERVICENAME>
    <SSOMATCHING>2</SSOMATCHING>
    <VCARDMAP>FN:${displayName}\r
TITLE:${!title}</VCARDMAP>
    <CREATEGROUPSFOROUS>1</CREATEGROUPSFOROUS>
    <GROUPSFOROUSROOT>OU=Devel,DC=example,DC=com</GROUPSFOROUSROOT>
    <GROUPSFOROUSROOTNAME>Units</GROUPSFOROUSROOTNAME>
    <EXTERNALSYNC>0</EXTERNALSYNC>
    <HOSTLOOKUPTYPE>2</HOSTLOOKUPTYPE>
    <SOMEFUTUREKEY>kept as is</SOMEFUTUREKEY>
  </DOMAIN>
  <DOMAIN>
    <DOMAIN>second.org</DOMAIN>
    <HOST>ldap.second.org</HOST>
    <DN>ou=people,dc=second,dc=org</DN>
    <LDAPSERVERTYPE>1</LDAPSERVERTYPE>
  </DOMAIN>
</DOMAINS>
"""


def snapshot(domain: Domain) -> dict[str, object]:
    settings = DirectorySettings.objects.get(domain=domain)
    values: dict[str, object] = {field: getattr(settings, field) for field in ALL_FIELDS}
    values["extra_keys"] = settings.extra_keys
    values["password"] = settings.get_bind_password()
    return values


def test_import_reads_every_key_and_creates_missing_domains(domain: Domain) -> None:
    results = import_syncad(ICEWARP_FILE, changed_by="test")
    assert [(result.name, result.created_domain) for result in results] == [
        ("example.com", False),
        ("second.org", True),
    ]
    settings = DirectorySettings.objects.get(domain=domain)
    assert settings.active and settings.host == "ldaps://dc1.example.com:636"
    assert settings.bind_user == "EXAMPLE\\sync" and settings.get_bind_password() == "Pa55-from-IceWarp"
    assert (settings.server_type, settings.login_source, settings.username_source) == (
        "ad",
        "samaccountname",
        "cn",
    )
    assert settings.account_filter == "(&(objectClass=user)(mail=*))" and settings.group_filter == "Group"
    assert (settings.host_domain_active, settings.host_domain) == (True, "ADDomain;*")
    assert (settings.sso_active, settings.sso_matching) == (True, 2)
    assert settings.vcard_map == "FN:${displayName}\nTITLE:${!title}"  # line ends normalized
    assert settings.extra_keys == {"EXTERNALSYNC": "0", "HOSTLOOKUPTYPE": "2", "SOMEFUTUREKEY": "kept as is"}
    second = DirectorySettings.objects.get(domain__name="second.org")
    assert (second.server_type, second.active, second.sync_accounts) == ("generic", False, True)
    assert SettingsChange.objects.filter(source="syncad import").count() == 2


def test_export_then_import_gives_the_same_settings_back(domain: Domain) -> None:
    import_syncad(ICEWARP_FILE)
    before = {name: snapshot(Domain.objects.get(name=name)) for name in ("example.com", "second.org")}
    exported = export_syncad(Domain.objects.order_by("name"), include_secrets=True)
    DirectorySettings.objects.all().delete()
    import_syncad(exported)
    after = {name: snapshot(Domain.objects.get(name=name)) for name in ("example.com", "second.org")}
    assert after == before
    assert export_syncad(Domain.objects.order_by("name"), include_secrets=True) == exported


def test_export_leaves_the_password_out_unless_asked(domain: Domain) -> None:
    save_directory_settings(domain=domain, values={"host": "dc1.example.com"}, new_password="Top-5ecret")
    without = export_syncad([domain])
    assert "Top-5ecret" not in without and "<PASS>" not in without
    assert "<PASS>Top-5ecret</PASS>" in export_syncad([domain], include_secrets=True)
    # importing a file without PASS keeps the stored password
    import_syncad(without)
    assert DirectorySettings.objects.get(domain=domain).get_bind_password() == "Top-5ecret"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not xml", "not a readable syncad.dat"),
        ("<ROOT/>", "starts with <DOMAINS>"),
        ("<DOMAINS><DOMAIN><HOST>x</HOST></DOMAIN></DOMAINS>", "needs exactly one <DOMAIN>name</DOMAIN>"),
        (
            "<DOMAINS><DOMAIN><DOMAIN>example.com</DOMAIN><HOST>ldap://x:99999</HOST></DOMAIN></DOMAINS>",
            "HOST:",
        ),
        (
            "<DOMAINS><DOMAIN><DOMAIN>example.com</DOMAIN><ACCOUNTFILTERS>(cn=a</ACCOUNTFILTERS></DOMAIN></DOMAINS>",
            "ACCOUNTFILTERS:",
        ),
        (
            "<DOMAINS><DOMAIN><DOMAIN>example.com</DOMAIN><LDAPSERVERTYPE>7</LDAPSERVERTYPE></DOMAIN></DOMAINS>",
            "LDAPSERVERTYPE:",
        ),
        (
            "<DOMAINS><DOMAIN><DOMAIN>example.com</DOMAIN></DOMAIN><DOMAIN><DOMAIN>EXAMPLE.com</DOMAIN></DOMAIN>"
            "</DOMAINS>",
            "more than once",
        ),
        ("<DOMAINS><DOMAIN><DOMAIN>not a domain</DOMAIN></DOMAIN></DOMAINS>", "not a domain name"),
        (
            '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><DOMAINS>&b;</DOMAINS>',
            "refused",
        ),
    ],
)
def test_a_bad_file_imports_nothing_and_says_why(domain: Domain, text: str, says: str) -> None:
    with pytest.raises(SyncadImportError) as error:
        import_syncad(text)
    assert says in str(error.value)
    assert not DirectorySettings.objects.exists()


def test_one_bad_domain_stops_the_whole_file(domain: Domain) -> None:
    text = (
        "<DOMAINS><DOMAIN><DOMAIN>other.org</DOMAIN><HOST>ldap.other.org</HOST></DOMAIN>"
        "<DOMAIN><DOMAIN>example.com</DOMAIN><DN>not a dn</DN></DOMAIN></DOMAINS>"
    )
    with pytest.raises(SyncadImportError, match=r"example\.com: DN:"):
        import_syncad(text)
    assert not DirectorySettings.objects.exists()
    assert not Domain.objects.filter(name="other.org").exists()


def test_command_line(domain: Domain, tmp_path: Path) -> None:
    path = tmp_path / "syncad.dat"
    path.write_text(ICEWARP_FILE)
    out = StringIO()
    call_command("syncad", "import", str(path), stdout=out)
    assert "example.com: " in out.getvalue() and "second.org (domain created)" in out.getvalue()
    exported = StringIO()
    call_command("syncad", "export", "--domain", "example.com", stdout=exported)
    assert "<HOST>ldaps://dc1.example.com:636</HOST>" in exported.getvalue()
    assert "Pa55-from-IceWarp" not in exported.getvalue()
    with pytest.raises(CommandError, match="There is no domain"):
        call_command("syncad", "export", "--domain", "nowhere.org", stdout=StringIO())
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("syncad", "import", str(tmp_path / "missing.dat"), stdout=StringIO())


def test_import_exit_code_is_non_zero_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_text("<DOMAINS><DOMAIN><DOMAIN>x.org</DOMAIN><DN>bad dn</DN></DOMAIN></DOMAINS>")
    env = {
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PATH": "/usr/bin:/bin",
    }
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, str(root / "manage.py"), "migrate", "-v0"], env=env, check=True, timeout=120
    )
    result = subprocess.run(
        [sys.executable, str(root / "manage.py"), "syncad", "import", str(bad)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DN:" in result.stderr and "Nothing was imported" in result.stderr
