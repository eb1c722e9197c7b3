"""directory_sync.ldap against real slapd: binds, TLS, failover, paging, failures part-way, referrals.

The console's reader (ldap3) and the sync's bulk reader (python-ldap) answer the same behaviours the same way:
the tests taking `connect` run against both.
"""

from __future__ import annotations

import base64
import contextlib
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devservers.ports import free_port
from devservers.slapd import SlapdInstance, make_ca, start_slapd
from directory_sync.ldap import (
    BulkSession,
    DirectoryError,
    DirectorySession,
    Endpoint,
    Entry,
    SessionOptions,
    endpoint_from_host,
    open_bulk_session,
    open_endpoint,
    open_session,
    options_from_settings,
)
from directory_sync.models import DirectorySettings
from icewarp_admin.mailserver.models import Domain

BASE = "dc=example,dc=com"
PEOPLE = f"ou=people,{BASE}"
REFS = f"ou=refs,{BASE}"
BULK = 1200
INVALID_UTF8 = b"\xff\xfe\x00\x01binary"


def _people_ldif(count: int) -> str:
    entries = [f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"]
    entries += [
        f"dn: uid=p{i:04d},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: p{i:04d}\ncn: Person {i}\nsn: P\n"
        f"mail: p{i:04d}@example.com\n"
        for i in range(count)
    ]
    return "\n".join(entries)


BIG_LDIF = (
    _people_ldif(BULK)
    + f"""
dn: uid=binary,{BASE}
objectClass: inetOrgPerson
uid: binary
cn: Binary
sn: B
description: plain text
audio:: {base64.b64encode(INVALID_UTF8).decode()}

dn: uid=binary-utf8,{BASE}
objectClass: inetOrgPerson
uid: binary-utf8
cn: Binary UTF8
sn: B
audio: looks like text

dn: cn=limited,{BASE}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: limited
userPassword: limitedpw

dn: {REFS}
objectClass: organizationalUnit
ou: refs

dn: uid=local,{REFS}
objectClass: inetOrgPerson
uid: local
cn: Local
sn: L

dn: cn=elsewhere,{REFS}
objectClass: referral
objectClass: extensibleObject
cn: elsewhere
ref: ldap://127.0.0.1:1/dc=elsewhere
"""
)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """A private server with 1,200 people, binary values and a referral (kept out of the shared server)."""
    instance = start_slapd(tmp_path_factory.mktemp("ldap-big"), ldifs=[BIG_LDIF])
    # Like AD's MaxResultSetSize: even a paged search of cn=limited stops after 300 entries.
    instance.config_modify(
        "dn: olcDatabase={2}mdb,cn=config\nchangetype: modify\nadd: olcLimits\n"
        f'olcLimits: dn.exact="cn=limited,{BASE}" size.soft=300 size.hard=300 size.prtotal=300\n'
    )
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def wrong_ca_pem(tmp_path_factory: pytest.TempPathFactory) -> str:
    crt, _ = make_ca(tmp_path_factory.mktemp("wrong-ca"), common_name="Some other CA")
    return crt.read_text()


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[SlapdInstance]:
    """A small private server that a test may pause or kill."""
    instance = start_slapd(tmp_path / "victim", ldifs=[_people_ldif(250)])
    yield instance
    with contextlib.suppress(RuntimeError):  # it may have been killed
        instance.resume()
    instance.stop()


def options(
    *urls: str,
    user: str = "",
    password: str = "",
    ca: str = "",
    starttls: bool = False,
    verify: bool = True,
    timeout: float = 5,
    plain: bool = True,
) -> SessionOptions:
    return SessionOptions(
        endpoints=tuple(endpoint_from_host(url) for url in urls),
        bind_user=user,
        bind_password=password,
        use_starttls=starttls,
        verify_certificate=verify,
        ca_bundle_pem=ca,
        timeout_seconds=timeout,
        allow_plain_bind=plain,
    )


Session = DirectorySession | BulkSession
Connect = Callable[[SessionOptions], Session]


@pytest.fixture(params=["ldap3", "python-ldap"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Open a session with one reader or the other."""
    return open_session if request.param == "ldap3" else open_bulk_session


def reader(instance: SlapdInstance, *urls: str, starttls: bool = False, timeout: float = 5) -> SessionOptions:
    return options(
        *(urls or (instance.ldap_url,)),
        user=instance.reader_dn,
        password=instance.reader_password,
        ca=instance.ca_cert.read_text(),
        starttls=starttls,
        timeout=timeout,
    )


def test_bind_as_admin_and_as_reader_over_plain_ldap(slapd: SlapdInstance, connect: Connect) -> None:
    admin = options(slapd.ldap_url, user=slapd.admin_dn, password=slapd.admin_password)
    with connect(admin) as session:
        assert session.endpoint == Endpoint("127.0.0.1", slapd.ldap_port, False)
        assert session.who_am_i() == f"dn:{slapd.admin_dn}"
        assert session.tls_version is None
    assert session.closed
    with connect(reader(slapd)) as session:
        assert session.who_am_i() == f"dn:{slapd.reader_dn}"


def test_a_password_is_not_sent_in_clear_unless_allowed(slapd: SlapdInstance, connect: Connect) -> None:
    refused = options(slapd.ldap_url, user=slapd.admin_dn, password=slapd.admin_password, plain=False)
    with pytest.raises(DirectoryError) as caught:
        connect(refused)
    assert caught.value.kind == "config" and "ALLOWPLAINBIND" in caught.value.message
    assert slapd.admin_password not in str(caught.value)
    with connect(options(slapd.ldap_url, plain=False)) as session:  # anonymous: no password to protect
        assert not session.who_am_i()
    allowed = options(
        slapd.ldap_url, user=slapd.admin_dn, password=slapd.admin_password, plain=False, starttls=True,
        ca=slapd.ca_cert.read_text(),
    )  # fmt: skip
    with connect(allowed) as session:
        assert session.who_am_i() == f"dn:{slapd.admin_dn}"


def test_starttls_with_the_servers_ca(slapd: SlapdInstance, connect: Connect) -> None:
    with connect(reader(slapd, starttls=True)) as session:
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")
        if isinstance(session, DirectorySession):  # Test connection shows the certificate; the sync does not
            assert session.peer_certificate_der()
        assert session.who_am_i() == f"dn:{slapd.reader_dn}"


def test_ldaps_with_the_servers_ca(slapd: SlapdInstance, connect: Connect) -> None:
    with connect(reader(slapd, slapd.ldaps_url)) as session:
        assert session.endpoint.use_ssl
        assert session.endpoint.url == slapd.ldaps_url
        assert session.tls_version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_a_certificate_from_another_ca_is_refused(
    slapd: SlapdInstance, wrong_ca_pem: str, mode: str, connect: Connect
) -> None:
    url = slapd.ldaps_url if mode == "ldaps" else slapd.ldap_url
    opts = options(
        url, user=slapd.reader_dn, password="readerpw", ca=wrong_ca_pem, starttls=mode == "starttls"
    )
    with pytest.raises(DirectoryError) as caught:
        connect(opts)
    assert caught.value.kind == "certificate"
    assert caught.value.message.startswith("The server's certificate is not trusted: ")
    assert "Trusted CA certificates" in caught.value.message
    assert caught.value.host == url


def test_a_certificate_for_another_name_is_refused(slapd: SlapdInstance, connect: Connect) -> None:
    # 127.0.0.1 written as an IPv4-mapped IPv6 address: the same server, a name its certificate lacks.
    opts = reader(slapd, f"ldaps://[::ffff:127.0.0.1]:{slapd.ldaps_port}")
    try:
        session = connect(opts)
    except DirectoryError as exc:
        if exc.kind == "tcp":
            pytest.skip("no IPv4-mapped IPv6 on this machine")
        assert exc.kind == "certificate"
        assert "mismatch" in exc.message or "does not match" in exc.message
    else:
        session.close()
        pytest.fail("a certificate for other names was accepted")


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_verification_off_accepts_any_certificate(
    slapd: SlapdInstance, wrong_ca_pem: str, mode: str, connect: Connect
) -> None:
    url = slapd.ldaps_url if mode == "ldaps" else slapd.ldap_url
    opts = options(
        url,
        user=slapd.reader_dn,
        password="readerpw",
        ca=wrong_ca_pem,
        verify=False,
        starttls=mode == "starttls",
    )
    with connect(opts) as session:
        assert session.tls_version


def test_a_ca_field_that_is_not_pem_is_a_configuration_error(slapd: SlapdInstance, connect: Connect) -> None:
    with pytest.raises(DirectoryError) as caught:
        connect(options(slapd.ldaps_url, user=slapd.reader_dn, password="readerpw", ca="not a cert"))
    assert caught.value.kind == "config"


def test_a_wrong_password_is_a_bind_error_that_never_shows_the_password(
    slapd: SlapdInstance, connect: Connect
) -> None:
    password = "Wr0ng-Passw0rd-xyz"
    with pytest.raises(DirectoryError) as caught:
        connect(options(slapd.ldap_url, user=slapd.reader_dn, password=password))
    error = caught.value
    assert error.kind == "bind"
    assert error.message == "The server refused the bind user and password (invalidCredentials)"
    for text in (str(error), repr(error), error.message, error.detail, str(error.as_dict())):
        assert password not in text


def test_an_empty_password_is_a_configuration_error_and_no_user_binds_anonymously(
    slapd: SlapdInstance, connect: Connect
) -> None:
    with pytest.raises(DirectoryError) as caught:
        connect(options(slapd.ldap_url, user=slapd.reader_dn, password=""))
    assert caught.value.kind == "config"
    assert caught.value.message == "No bind password is set: enter the password of the bind user"
    with connect(options(slapd.ldap_url)) as session:
        assert session.who_am_i() is None
        assert session.root_dse().server_kind == "OpenLDAP"


def test_directory_errors_survive_pickling() -> None:
    error = DirectoryError("tcp", "Nothing listens", host="ldap://h:1", detail="refused")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.kind, copy.message, copy.host, copy.detail) == (
        "tcp",
        "Nothing listens",
        "ldap://h:1",
        "refused",
    )
    with pytest.raises(ValueError):
        DirectoryError("nonsense", "x")  # type: ignore[arg-type]


def test_options_never_show_the_password() -> None:
    opts = options("ldap://127.0.0.1:1", user="cn=x", password="Sup3rSecret!")
    assert "Sup3rSecret!" not in repr(opts)


def test_the_password_is_not_left_in_the_ldap3_objects(slapd: SlapdInstance) -> None:
    session = open_session(options(slapd.ldap_url, user=slapd.reader_dn, password=slapd.reader_password))
    with session:
        conn = session._conn
        assert conn.password is None
        assert slapd.reader_password not in repr(conn)
        assert slapd.reader_password not in repr(session)


def test_a_closed_port_fails_fast_as_tcp(connect: Connect) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(DirectoryError) as caught:
        connect(options(f"ldap://127.0.0.1:{port}", timeout=5))
    assert time.monotonic() - started < 1
    assert caught.value.kind == "tcp"
    assert caught.value.message == f"Nothing listens on 127.0.0.1:{port} (connection refused)"


def test_an_unknown_host_name_is_a_dns_error(connect: Connect) -> None:
    with pytest.raises(DirectoryError) as caught:
        connect(options("ldap://no-such-host.invalid"))
    assert caught.value.kind == "dns"
    assert caught.value.message == "Cannot resolve no-such-host.invalid: check the host name"


def test_ldaps_against_the_plain_port_is_a_tls_error(slapd: SlapdInstance, connect: Connect) -> None:
    with pytest.raises(DirectoryError) as caught:
        connect(reader(slapd, f"ldaps://127.0.0.1:{slapd.ldap_port}"))
    assert caught.value.kind == "tls"
    assert "LDAPS" in caught.value.message


def test_starttls_against_the_ldaps_port_is_a_tls_error(slapd: SlapdInstance, connect: Connect) -> None:
    with pytest.raises(DirectoryError) as caught:
        connect(reader(slapd, f"ldap://127.0.0.1:{slapd.ldaps_port}", starttls=True))
    assert caught.value.kind == "tls"
    assert caught.value.message.startswith(f"StartTLS with 127.0.0.1:{slapd.ldaps_port} failed")


def test_a_server_that_wants_encryption_for_binds_says_so(victim: SlapdInstance, connect: Connect) -> None:
    victim.config_modify("dn: cn=config\nchangetype: modify\nadd: olcSecurity\nolcSecurity: simple_bind=64\n")
    with pytest.raises(DirectoryError) as caught:
        connect(reader(victim))
    assert caught.value.kind == "bind"
    assert caught.value.message == (
        "The server requires an encrypted connection for this bind: use ldaps:// or StartTLS"
    )
    with connect(reader(victim, starttls=True)) as session:
        assert session.who_am_i() == f"dn:{victim.reader_dn}"


def test_a_paused_server_times_out_instead_of_hanging(slapd: SlapdInstance, connect: Connect) -> None:
    opts = reader(slapd, timeout=2)
    slapd.pause()
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryError) as caught:
            connect(opts)
        elapsed = time.monotonic() - started
    finally:
        slapd.resume()
    assert caught.value.kind == "timeout"
    assert caught.value.message.startswith(f"No answer from 127.0.0.1:{slapd.ldap_port} within 2 s")
    assert 1.5 < elapsed < 4


def test_a_dead_primary_falls_over_to_the_backup(slapd: SlapdInstance, connect: Connect) -> None:
    dead = f"ldap://127.0.0.1:{free_port()}"
    with connect(reader(slapd, dead, slapd.ldap_url)) as session:
        assert session.endpoint.port == slapd.ldap_port
        assert [e.kind for e in session.skipped] == ["tcp"]
        assert session.who_am_i() == f"dn:{slapd.reader_dn}"


def test_when_every_host_fails_the_primarys_error_names_the_backups(connect: Connect) -> None:
    primary, backup = free_port(), free_port()
    with pytest.raises(DirectoryError) as caught:
        connect(options(f"ldap://127.0.0.1:{primary}", f"ldap://127.0.0.1:{backup}"))
    assert caught.value.kind == "tcp"
    assert caught.value.message.startswith(f"Nothing listens on 127.0.0.1:{primary}")
    assert f"127.0.0.1:{backup}" in caught.value.message


def test_open_endpoint_reports_the_time_of_each_stage(slapd: SlapdInstance) -> None:
    timings: dict[str, float] = {}
    with open_endpoint(endpoint_from_host(slapd.ldap_url), reader(slapd, starttls=True), timings=timings):
        pass
    assert set(timings) == {"connect", "starttls", "bind"}
    assert all(value >= 0 for value in timings.values())


def test_the_reader_pages_past_the_servers_size_limit(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        entries = list(session.paged_search(PEOPLE, "(objectClass=inetOrgPerson)", ["uid"], page_size=100))
    assert len(entries) == BULK  # the frontend size limit is 500 for everyone but the admin
    assert len({e.dn for e in entries}) == BULK
    assert all(isinstance(e.first("uid"), str) for e in entries)


def test_a_server_side_size_limit_raises_after_the_entries_it_allowed(
    big: SlapdInstance, connect: Connect
) -> None:
    limited = options(big.ldap_url, user=f"cn=limited,{BASE}", password="limitedpw")
    with connect(limited) as session:
        found: list[Entry] = []
        with pytest.raises(DirectoryError) as caught:
            for entry in session.paged_search(PEOPLE, "(objectClass=inetOrgPerson)", ["uid"], page_size=100):
                found.append(entry)
        assert caught.value.kind == "size_limit"
        assert len(found) == 300
        assert "after 300 entries" in caught.value.message
        if isinstance(session, DirectorySession):
            assert session.count(PEOPLE, "(uid=*)", time_budget_s=5) == (300, False)


def test_a_size_limit_asked_for_by_the_caller_is_not_an_error(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        entries = list(session.paged_search(PEOPLE, "(uid=*)", ["uid"], page_size=100, size_limit=7))
        assert len(entries) == 7
        assert len(list(session.paged_search(PEOPLE, "(uid=*)", ["1.1"], page_size=500))) == BULK


def test_stopping_early_leaves_the_session_usable(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        for n, _ in enumerate(session.paged_search(PEOPLE, "(uid=*)", ["uid"], page_size=50)):
            if n == 60:
                break
        assert session.read_entry(f"uid=p0001,{PEOPLE}", ["uid"]) is not None


def _kill_or_pause_after_first_page(
    connect: Connect, victim: SlapdInstance, action: str, timeout: float
) -> tuple[list[Entry], DirectoryError]:
    seen: list[Entry] = []
    with connect(reader(victim, timeout=timeout)) as session:
        with pytest.raises(DirectoryError) as caught:
            for entry in session.paged_search(PEOPLE, "(objectClass=inetOrgPerson)", ["uid"], page_size=100):
                seen.append(entry)
                if len(seen) == 100:
                    getattr(victim, action)()
        with pytest.raises(DirectoryError) as again:
            session.read_entry(PEOPLE, ["ou"])
        assert again.value.kind == "connection_lost"
    return seen, caught.value


def test_a_server_that_dies_mid_search_raises_after_the_first_page(
    victim: SlapdInstance, connect: Connect
) -> None:
    seen, error = _kill_or_pause_after_first_page(connect, victim, "kill", timeout=5)
    assert len(seen) == 100
    assert error.kind == "connection_lost"
    assert "127.0.0.1" in error.message


def test_a_server_that_hangs_mid_search_times_out_after_the_first_page(
    victim: SlapdInstance, connect: Connect
) -> None:
    started = time.monotonic()
    seen, error = _kill_or_pause_after_first_page(connect, victim, "pause", timeout=2)
    assert len(seen) == 100
    assert error.kind == "timeout"
    assert time.monotonic() - started < 5


def test_binary_values_come_back_as_bytes(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        entry = session.read_entry(f"uid=binary,{BASE}", ["audio", "description"])
        text_like = session.read_entry(f"uid=binary-utf8,{BASE}", ["audio"])
        forced = session.read_entry(f"uid=binary,{BASE}", ["description"], binary_attributes=["description"])
    assert entry is not None and text_like is not None and forced is not None
    assert entry.get("AUDIO") == [INVALID_UTF8]
    assert entry.first("description") == "plain text"
    assert text_like.first("audio") == b"looks like text"  # binary by nature, even when it decodes
    assert forced.first("description") == b"plain text"


def test_operational_attributes_are_returned_only_when_named(big: SlapdInstance, connect: Connect) -> None:
    dn = f"uid=p0002,{PEOPLE}"
    with connect(reader(big)) as session:
        plain = session.read_entry(dn, ["*"])
        named = session.read_entry(dn, ["*", "entryUUID", "modifyTimestamp"])
        searched = next(
            iter(session.paged_search(dn, "(objectClass=*)", ["entryUUID"], page_size=10, scope="base"))
        )
    assert plain is not None and named is not None
    assert not plain.has("entryUUID") and not plain.has("modifyTimestamp")
    assert uuid.UUID(str(named.first("entryuuid")))
    assert str(named.first("modifyTimestamp")).endswith("Z")
    assert "entryUUID" in named.attributes  # the server's spelling is kept
    assert searched.first("entryUUID") == named.first("entryUUID")


def test_read_entry_of_a_missing_dn_is_none(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        assert session.read_entry(f"uid=nobody,{PEOPLE}", ["uid"]) is None


def test_a_missing_base_dn_is_a_search_error(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session, pytest.raises(DirectoryError) as caught:
        list(session.paged_search(f"ou=missing,{BASE}", "(objectClass=*)", ["cn"], page_size=10))
    assert caught.value.kind == "search"
    assert "does not exist" in caught.value.message


def test_a_continuation_reference_is_a_referral_error_after_the_entries(
    big: SlapdInstance, connect: Connect
) -> None:
    seen: list[str] = []
    with connect(reader(big)) as session:
        with pytest.raises(DirectoryError) as caught:
            for entry in session.paged_search(REFS, "(objectClass=*)", ["cn"], page_size=10):
                seen.append(entry.dn)
        assert caught.value.kind == "referral"
        assert "ldap://127.0.0.1:1/dc=elsewhere" in caught.value.message
        assert sorted(seen) == sorted([REFS, f"uid=local,{REFS}"])
        if isinstance(session, DirectorySession):
            with pytest.raises(DirectoryError) as counted:
                session.count(REFS, "(objectClass=*)", time_budget_s=5)
            assert counted.value.kind == "referral"


def test_searching_at_a_referral_is_a_referral_error(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        with pytest.raises(DirectoryError) as caught:
            list(session.paged_search(f"cn=elsewhere,{REFS}", "(objectClass=*)", ["cn"], page_size=10))
        assert caught.value.kind == "referral"
        with pytest.raises(DirectoryError) as read:
            session.read_entry(f"cn=x,cn=elsewhere,{REFS}", ["cn"])
        assert read.value.kind == "referral"


def test_the_root_dse(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session:
        root = session.root_dse()
        assert session.root_dse() is root
    assert root.server_kind == "OpenLDAP"
    assert BASE in root.naming_contexts
    assert root.paged_results and root.syncrepl
    assert not root.dirsync
    assert "3" in root.supported_ldap_versions
    assert "1.3.6.1.4.1.1466.20037" in root.supported_extensions
    assert root.highest_committed_usn is None
    assert root.as_dict()["server_kind"] == "OpenLDAP"


def test_count_stops_at_its_time_budget(big: SlapdInstance) -> None:
    with open_session(reader(big)) as session:
        assert session.count(PEOPLE, "(objectClass=*)", time_budget_s=10) == (BULK + 1, True)
        partial, complete = session.count(PEOPLE, "(objectClass=*)", time_budget_s=0, page_size=100)
    assert not complete
    assert partial == 100


def test_entry_lookup_is_case_insensitive_and_matches_options() -> None:
    entry = Entry(
        "cn=x", {"mail": ["a@x"], "userCertificate;binary": [b"\x30"], "member;range=0-1": ["a", "b"]}
    )
    assert entry.get("MAIL") == ["a@x"]
    assert entry.first("usercertificate") == b"\x30"
    assert entry.get("member") == ["a", "b"]
    assert entry.first("missing") is None


def test_an_invalid_filter_is_a_configuration_error(big: SlapdInstance, connect: Connect) -> None:
    with connect(reader(big)) as session, pytest.raises(DirectoryError) as caught:
        list(session.paged_search(PEOPLE, "(uid=*", ["uid"], page_size=10))
    assert caught.value.kind == "config"


def test_a_closed_session_refuses_work(slapd: SlapdInstance, connect: Connect) -> None:
    session = connect(reader(slapd))
    session.close()
    with pytest.raises(DirectoryError) as caught:
        session.read_entry(BASE, ["1.1"])
    assert caught.value.kind == "connection_lost"


@pytest.mark.django_db
def test_options_from_settings(domain: Domain) -> None:
    row = DirectorySettings.objects.create(
        domain=domain,
        host="ldaps://dc1.example.com",
        backup_host="dc2.example.com:3389",
        bind_user=" cn=sync,dc=example,dc=com ",
        base_dn=BASE,
        use_starttls=True,
        verify_certificate=False,
        ca_bundle="PEM",
        timeout_seconds=7,
    )
    row.set_bind_password("s3cret-value")
    row.save()
    opts = options_from_settings(row)
    assert opts.endpoints == (
        Endpoint("dc1.example.com", 636, True),
        Endpoint("dc2.example.com", 3389, False),
    )
    assert opts.endpoints[1].url == "ldap://dc2.example.com:3389"
    assert opts.bind_user == "cn=sync,dc=example,dc=com"
    assert opts.bind_password == "s3cret-value"
    assert (opts.use_starttls, opts.verify_certificate, opts.ca_bundle_pem, opts.timeout_seconds) == (
        True,
        False,
        "PEM",
        7.0,
    )
    assert "s3cret-value" not in repr(opts)
    assert Endpoint("::1", 389, False).url == "ldap://[::1]:389"

    row.host = ""
    with pytest.raises(DirectoryError) as caught:
        options_from_settings(row)
    assert caught.value.kind == "config"
    row.host = "ftp://x"
    with pytest.raises(DirectoryError) as caught:
        options_from_settings(row)
    assert caught.value.kind == "config"
