"""Tests for the devservers harness: real slapd and redis-server on 127.0.0.1 (the tests use no Django)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devservers.ports import free_port, free_ports, wait_for_port
from devservers.redis import RedisInstance, start_redis
from devservers.slapd import SlapdInstance, make_ca, start_slapd

ROOT = Path(__file__).resolve().parents[1]


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


needs_slapd = pytest.mark.skipif(
    not all(_have(t) for t in ("slapd", "slapadd", "ldapsearch", "openssl")),
    reason="needs people_slapd, ldap-utils and openssl",
)
needs_redis = pytest.mark.skipif(not _have("redis-server"), reason="needs redis-server")

BASE = "dc=example,dc=com"
PEOPLE_LDIF = f"""dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,{BASE}
objectClass: inetOrgPerson
uid: alice
cn: Alice Anders
sn: Anders
mail: alice@example.com
userPassword: Al1cePassw0rd

dn: uid=bob,ou=people,{BASE}
objectClass: inetOrgPerson
uid: bob
cn: Bob Brown
sn: Brown
mail: bob@example.com

dn: uid=carol,ou=people,{BASE}
objectClass: inetOrgPerson
uid: carol
cn: Carol Clark
sn: Clark
mail: carol@example.com
"""
BULK = 600
BULK_LDIF = f"dn: ou=bulk,{BASE}\nobjectClass: organizationalUnit\nou: bulk\n\n" + "".join(
    f"dn: uid=b{n:04d},ou=bulk,{BASE}\nobjectClass: inetOrgPerson\nuid: b{n:04d}\ncn: Bulk {n}\nsn: Bulk\n\n"
    for n in range(BULK)
)


def ldap(
    tool: str,
    inst: SlapdInstance,
    *args: str,
    url: str | None = None,
    bind: str | None = "admin",
    cacert: Path | None = None,
    timeout: float = 10,
) -> subprocess.CompletedProcess[str]:
    """Run an ldap-utils tool against inst (bind as admin/reader/anonymous); never raises on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDAP")}
    env["LDAPTLS_CACERT"] = str(cacert or inst.ca_cert)
    env["LDAPTLS_REQCERT"] = "demand"
    cmd = [tool, "-x", "-H", url or inst.ldap_url]
    if bind == "admin":
        cmd += ["-D", inst.admin_dn, "-w", inst.admin_password]
    elif bind == "reader":
        cmd += ["-D", inst.reader_dn, "-w", inst.reader_password]
    if tool == "ldapsearch":
        cmd += ["-LLL", "-o", "ldif-wrap=no"]
    return subprocess.run(
        cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def dns_in(output: str) -> list[str]:
    return [line[4:] for line in output.splitlines() if line.startswith("dn: ")]


@pytest.fixture(scope="module")
def people_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    d = tmp_path_factory.mktemp("slapd")
    people = d.parent / "people.ldif"
    people.write_text(PEOPLE_LDIF)
    inst = start_slapd(d / "srv", ldifs=[people, BULK_LDIF])  # a Path item and a text item
    yield inst
    inst.stop()


# ----------------------------------------------------------------------------------------------- ports


def test_free_ports_are_distinct_loopback_ports() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(1024 <= p <= 65535 for p in ports)
    assert isinstance(free_port(), int)
    with pytest.raises(ValueError, match="non-loopback"):
        free_port("0.0.0.0")  # noqa: S104 - proves that it is refused


def test_wait_for_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        wait_for_port("127.0.0.1", s.getsockname()[1], timeout=2)
    closed = free_port()
    with pytest.raises(TimeoutError, match=str(closed)):
        wait_for_port("127.0.0.1", closed, timeout=0.2)


# ----------------------------------------------------------------------------------------------- slapd


@needs_slapd
def test_plain_ldap_search_has_operational_attributes(people_slapd: SlapdInstance) -> None:
    res = ldap("ldapsearch", people_slapd, "-b", f"ou=people,{BASE}", "(objectClass=inetOrgPerson)",
               "uid", "entryUUID", "modifyTimestamp", "entryCSN")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(dns_in(res.stdout)) == [f"uid={u},ou=people,{BASE}" for u in ("alice", "bob", "carol")]
    assert res.stdout.count("entryUUID: ") == 3
    assert res.stdout.count("modifyTimestamp: ") == 3
    assert res.stdout.count("entryCSN: ") == 3
    # only the suffix, the reader, ou=policies + default policy and what we loaded: no ou=groups etc.
    top = ldap("ldapsearch", people_slapd, "-b", BASE, "-s", "one", "(objectClass=*)", "1.1")
    assert sorted(dns_in(top.stdout)) == sorted(
        [f"ou=people,{BASE}", f"ou=bulk,{BASE}", f"ou=policies,{BASE}", f"cn=reader,{BASE}"]
    )
    assert people_slapd.ldap_url == f"ldap://127.0.0.1:{people_slapd.ldap_port}"
    assert people_slapd.ldaps_url == f"ldaps://127.0.0.1:{people_slapd.ldaps_port}"


@needs_slapd
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_starttls(people_slapd: SlapdInstance, host: str) -> None:
    # libldap checks "localhost" against the machine's hostname: the SAN carries both (and the IPs).
    res = ldap("ldapwhoami", people_slapd, "-ZZ", url=f"ldap://{host}:{people_slapd.ldap_port}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"dn:{people_slapd.admin_dn}"


@needs_slapd
def test_ldaps_and_wrong_ca(people_slapd: SlapdInstance, tmp_path: Path) -> None:
    res = ldap("ldapwhoami", people_slapd, url=people_slapd.ldaps_url)
    assert res.returncode == 0, res.stderr
    other_ca, other_key = make_ca(tmp_path / "other", common_name="Some Other CA")
    assert other_ca.read_bytes() != people_slapd.ca_cert.read_bytes()
    assert other_key.stat().st_mode & 0o777 == 0o600
    bad = ldap("ldapwhoami", people_slapd, url=people_slapd.ldaps_url, cacert=other_ca)
    assert bad.returncode != 0
    bad_tls = ldap("ldapwhoami", people_slapd, "-ZZ", cacert=other_ca)
    assert bad_tls.returncode != 0


@needs_slapd
def test_reader_binds_and_cannot_read_passwords(people_slapd: SlapdInstance) -> None:
    res = ldap("ldapwhoami", people_slapd, bind="reader")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"dn:{people_slapd.reader_dn}"
    res = ldap(
        "ldapsearch", people_slapd, "-b", f"uid=alice,ou=people,{BASE}", "-s", "base", "*", bind="reader"
    )
    assert res.returncode == 0, res.stderr
    assert "mail: alice@example.com" in res.stdout
    assert "userPassword" not in res.stdout
    user = ldap(
        "ldapwhoami", people_slapd, "-D", f"uid=alice,ou=people,{BASE}", "-w", "Al1cePassw0rd", bind=None
    )
    assert user.returncode == 0, user.stderr


@needs_slapd
def test_size_limit_applies_to_reader_but_paging_gets_everything(people_slapd: SlapdInstance) -> None:
    base = f"ou=bulk,{BASE}"
    plain = ldap("ldapsearch", people_slapd, "-b", base, "(uid=*)", "1.1", bind="reader")
    assert plain.returncode == 4, plain.stderr  # sizeLimitExceeded
    assert "Size limit exceeded" in plain.stderr
    assert len(dns_in(plain.stdout)) == 500
    paged = ldap(
        "ldapsearch", people_slapd, "-E", "pr=100/noprompt", "-b", base, "(uid=*)", "1.1", bind="reader"
    )
    assert paged.returncode == 0, paged.stderr
    assert len(dns_in(paged.stdout)) == BULK
    admin = ldap("ldapsearch", people_slapd, "-b", base, "(uid=*)", "1.1")  # rootDN: unlimited
    assert admin.returncode == 0, admin.stderr
    assert len(dns_in(admin.stdout)) == BULK


@needs_slapd
def test_online_add_modify_delete(people_slapd: SlapdInstance) -> None:
    dn = f"uid=dave,ou=people,{BASE}"
    people_slapd.ldapadd(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave\nsn: D\n")
    people_slapd.ldapmodify(f"dn: {dn}\nchangetype: modify\nreplace: mail\nmail: dave@example.com\n")
    res = ldap("ldapsearch", people_slapd, "-b", dn, "-s", "base", "mail", "entryUUID")
    assert "mail: dave@example.com" in res.stdout
    assert "entryUUID: " in res.stdout
    with pytest.raises(RuntimeError, match="Already exists") as err:
        people_slapd.ldapadd(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: dave\ncn: Dave\nsn: D\n")
    assert "ldapadd" in str(err.value)
    people_slapd.ldapdelete(dn)
    gone = ldap("ldapsearch", people_slapd, "-b", dn, "-s", "base", "1.1")
    assert gone.returncode == 32  # noSuchObject


@needs_slapd
def test_pause_and_resume(people_slapd: SlapdInstance) -> None:
    people_slapd.pause()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            ldap("ldapsearch", people_slapd, "-b", BASE, "-s", "base", "1.1", timeout=0.5)
    finally:
        people_slapd.resume()
    res = ldap("ldapsearch", people_slapd, "-b", BASE, "-s", "base", "1.1")
    assert res.returncode == 0, res.stderr


@needs_slapd
def test_kill_restart_keeps_data_and_ports(tmp_path: Path) -> None:
    inst = start_slapd(tmp_path / "srv", ldifs=[PEOPLE_LDIF])
    try:
        dn = f"uid=erin,ou=people,{BASE}"
        inst.ldapadd(f"dn: {dn}\nobjectClass: inetOrgPerson\nuid: erin\ncn: Erin\nsn: E\n")
        ports, old_pid = (inst.ldap_port, inst.ldaps_port), inst.pid
        inst.kill()
        assert not inst.running
        down = ldap("ldapsearch", inst, "-b", dn, "-s", "base", "1.1")
        assert down.returncode == 255  # can't contact LDAP server
        inst.restart()
        assert inst.running and inst.pid != old_pid
        assert (inst.ldap_port, inst.ldaps_port) == ports
        for url in (inst.ldap_url, inst.ldaps_url):
            res = ldap("ldapsearch", inst, "-b", dn, "-s", "base", "uid", url=url)
            assert res.returncode == 0, res.stderr
            assert "uid: erin" in res.stdout
        assert SlapdInstance.load(inst.directory) == inst
        inst.stop()
        inst.stop()  # idempotent
        assert not inst.running
        inst.restart()  # after a clean stop too
        assert ldap("ldapwhoami", inst).returncode == 0
    finally:
        inst.stop()
    assert not inst.ldapi_path.exists()


@needs_slapd
def test_custom_suffix_long_path_and_shared_cert_cache(tmp_path: Path, people_slapd: SlapdInstance) -> None:
    deep = tmp_path.joinpath(*(["a-rather-long-directory-name"] * 4))
    inst = start_slapd(deep, base_dn="DC=icewarp,DC=in", size_limit=0)
    try:
        assert len(os.fsencode(deep / "ldapi")) > 100
        assert str(inst.ldapi_path).startswith("/tmp/")  # sun_path is only 108 bytes
        assert inst.ldapi_path.is_socket()
        res = ldap("ldapsearch", inst, "-b", "dc=icewarp,dc=in", "-s", "base", "dc", "o", "objectClass")
        assert res.returncode == 0, res.stderr
        assert "dc: icewarp" in res.stdout and "o: icewarp" in res.stdout
        assert "objectClass: dcObject" in res.stdout
        assert ldap("ldapwhoami", inst, bind="reader").returncode == 0
        policy = ldap(
            "ldapsearch", inst, "-b", "cn=default,ou=policies,DC=icewarp,DC=in", "-s", "base", "1.1"
        )
        assert policy.returncode == 0, policy.stderr
        # every instance reuses the cached CA/server cert instead of generating RSA keys again
        assert inst.ca_cert.read_bytes() == people_slapd.ca_cert.read_bytes()
    finally:
        inst.stop()
    assert not inst.ldapi_path.exists()


@needs_slapd
def test_start_failure_is_reported_with_command_and_output(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"slapadd.*\n.*olcNoSuchAttribute"):
        start_slapd(tmp_path / "bad", extra_config_ldif="dn: cn=bogus,cn=config\nolcNoSuchAttribute: 1\n")


@needs_slapd
def test_cli_up_status_down(tmp_path: Path) -> None:
    d = tmp_path / "cli"
    ldif = tmp_path / "people.ldif"
    ldif.write_text(PEOPLE_LDIF)

    def cli(*args: str) -> dict[str, object]:
        res = subprocess.run([sys.executable, "-m", "devservers", *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
        assert res.returncode == 0, res.stderr
        data: dict[str, object] = json.loads(res.stdout)
        return data

    up = cli("slapd", "up", str(d), "--ldif", str(ldif))
    try:
        assert up["running"] is True
        inst = SlapdInstance.load(d)
        assert inst.pid == up["pid"] and inst.ldap_url == up["ldap_url"]
        res = ldap(
            "ldapsearch", inst, "-b", f"uid=bob,ou=people,{BASE}", "-s", "base", "1.1", url=inst.ldaps_url
        )
        assert res.returncode == 0, res.stderr
    finally:
        down = cli("slapd", "down", str(d))
    assert down["running"] is False
    assert not SlapdInstance.load(d).running


# ----------------------------------------------------------------------------------------------- redis


def _redis_cmd(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(1024)


@needs_redis
def test_redis_start_ping_stop(tmp_path: Path) -> None:
    r = start_redis(tmp_path / "redis")
    try:
        assert r.url == f"redis://127.0.0.1:{r.port}/0"
        assert _redis_cmd(r.port, b"PING\r\n") == b"+PONG\r\n"
        assert _redis_cmd(r.port, b"SET k v\r\nGET k\r\n").startswith(b"+OK\r\n")
        assert RedisInstance.load(r.directory) == r
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{r.port}"], capture_output=True, text=True,
                                   check=False).stdout  # fmt: skip
        if listening:  # ss may be missing; when present, check the bind address
            assert all("127.0.0.1:" in line for line in listening.splitlines())
    finally:
        r.stop()
    assert not r.running
    with pytest.raises(OSError):
        _redis_cmd(r.port, b"PING\r\n")
    r.stop()  # idempotent
