"""Private OpenLDAP slapd instances (mdb, syncprov/accesslog/ppolicy/memberof/refint, LDAPS) on loopback."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _proc
from .ldif import ldif_line
from .ports import free_ports
from .tls import cached_server_bundle, make_ca

__all__ = ["SlapdInstance", "make_ca", "start_slapd"]

ADMIN_PASSWORD = "secret"
READER_PASSWORD = "readerpw"
CONFIG_ADMIN_DN = "cn=admin,cn=config"
START_TIMEOUT = 15.0
TOOL_TIMEOUT = 600.0
_PROC_NAME = "slapd"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes including the NUL; keep a margin
_BIND_FAILURE = re.compile(r"bind\(\d+\) failed|address already in use", re.IGNORECASE)
# Files and directories start_slapd owns inside the instance directory (removed before a fresh build).
_OWNED = (
    "slapd.d", "data", "accesslog", "tls", "config.ldif", "base.ldif", "instance.json",
    "slapd.pid", "slapd.args", "slapd.out", "ldapi",
)  # fmt: skip


def _ssha(password: str) -> str:
    """Hash a password as {SSHA} (what slappasswd produces by default)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt, usedforsecurity=False).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _first_rdn(dn: str) -> tuple[str, str]:
    """Split the first RDN of a DN into (attribute type lowercased, unescaped value)."""
    i, escaped = 0, False
    for i, ch in enumerate(dn):  # noqa: B007 - i is used after the loop
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",+":
            break
    else:
        i = len(dn)
    rdn = dn[:i]
    if "=" not in rdn:
        raise ValueError(f"not a DN: {dn!r}")
    attr, value = rdn.split("=", 1)
    value = re.sub(r"\\([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value.strip())
    value = re.sub(r"\\(.)", r"\1", value)
    return attr.strip().lower(), value


def _base_entry_ldif(base_dn: str) -> str:
    """LDIF for the suffix entry, derived from the first RDN (dc -> dcObject+organization, o, ou)."""
    attr, value = _first_rdn(base_dn)
    lines = [ldif_line("dn", base_dn), "objectClass: top"]
    if attr == "dc":
        lines += ["objectClass: dcObject", "objectClass: organization", ldif_line("dc", value)]
        lines.append(ldif_line("o", value))
    elif attr == "o":
        lines += ["objectClass: organization", ldif_line("o", value)]
    elif attr == "ou":
        lines += ["objectClass: organizationalUnit", ldif_line("ou", value)]
    else:
        raise ValueError(f"unsupported suffix {base_dn!r}: first RDN must be dc=, o= or ou=")
    return "\n".join(lines) + "\n"


def _data_ldif(base_dn: str) -> str:
    """Suffix entry, read-only reader account, ou=policies and the default ppolicy."""
    return f"""{_base_entry_ldif(base_dn)}
dn: cn=reader,{base_dn}
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: reader
description: read-only bind account for tests
userPassword: {_ssha(READER_PASSWORD)}

dn: ou=policies,{base_dn}
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,{base_dn}
objectClass: top
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMinLength: 8
pwdMaxFailure: 5
pwdLockout: TRUE
pwdInHistory: 3
pwdCheckQuality: 1
"""


def _without_syncprov(config: str) -> str:
    """The config with no syncprov module nor overlay (a server without RFC 4533, like many non-OpenLDAP
    ones): the other overlays of each database are numbered again from {0}."""
    blocks = config.split("\n\n")
    kept = [block for block in blocks if "olcOverlay: {0}syncprov" not in block]
    text = "\n\n".join(kept).replace("olcModuleLoad: syncprov\n", "")
    for old in range(1, 5):
        text = text.replace(f"olcOverlay={{{old}}}", f"olcOverlay={{{old - 1}}}")
        text = text.replace(f"olcOverlay: {{{old}}}", f"olcOverlay: {{{old - 1}}}")
    return text


def _config_ldif(d: Path, base_dn: str, size_limit: int, extra: str) -> str:
    """The cn=config LDIF of the recipe (loaded with slapadd -n0)."""
    admin_dn = f"cn=admin,{base_dn}"
    pw = _ssha(ADMIN_PASSWORD)
    if size_limit > 0:
        # prtotal=unlimited: a plain search stops at size_limit, a paged one may return everything (like AD).
        limit = f"size.soft={size_limit} size.hard={size_limit} size.prtotal=unlimited"
    else:
        limit = "unlimited"
    text = f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid
olcArgsFile: {d}/slapd.args
olcTLSCACertificateFile: {d}/tls/ca.crt
olcTLSCertificateFile: {d}/tls/server.crt
olcTLSCertificateKeyFile: {d}/tls/server.key
olcLogLevel: none

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: syncprov
olcModuleLoad: accesslog
olcModuleLoad: ppolicy
olcModuleLoad: memberof
olcModuleLoad: refint

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {limit}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: {CONFIG_ADMIN_DN}
olcRootPW: {pw}
olcAccess: {{0}}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: cn=accesslog
olcDbDirectory: {d}/accesslog
olcRootDN: {admin_dn}
olcDbIndex: default eq
olcDbIndex: entryCSN,objectClass,reqEnd,reqResult,reqStart,reqDN
olcDbMaxSize: 2147483648
olcDbNoSync: TRUE
olcAccess: {{0}}to * by dn.exact="{admin_dn}" read by * none

dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
olcSpNoPresent: TRUE
olcSpReloadHint: TRUE

dn: olcDatabase={{2}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{2}}mdb
olcSuffix: {base_dn}
olcDbDirectory: {d}/data
olcRootDN: {admin_dn}
olcRootPW: {pw}
olcDbIndex: objectClass eq
olcDbIndex: entryUUID,entryCSN eq
olcDbIndex: uid,cn,mail,member,memberUid,uniqueMember eq
olcDbIndex: modifyTimestamp eq
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcLimits: {{0}}dn.exact="{admin_dn}" size=unlimited time=unlimited
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by * read

dn: olcOverlay={{0}}syncprov,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
olcSpCheckpoint: 100 10
olcSpSessionLog: 10000

dn: olcOverlay={{1}}accesslog,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: {{1}}accesslog
olcAccessLogDB: cn=accesslog
olcAccessLogOps: writes
olcAccessLogSuccess: TRUE
olcAccessLogPurge: 07+00:00 01+00:00

dn: olcOverlay={{2}}ppolicy,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{2}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{base_dn}
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: TRUE

dn: olcOverlay={{3}}memberof,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{3}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={{4}}refint,olcDatabase={{2}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{4}}refint
olcRefintAttribute: member
"""
    if extra.strip():
        text += "\n" + extra.strip() + "\n"
    return text


def _socket_path(directory: Path) -> Path:
    """Where the ldapi socket lives: in the directory, or under /tmp when that path would be too long."""
    candidate = directory / "ldapi"
    if len(os.fsencode(candidate)) <= _MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha256(os.fsencode(directory)).hexdigest()[:16]
    return Path("/tmp") / f"devservers-ldapi-{digest}.sock"


@dataclass
class SlapdInstance(_proc.SavedInstance):
    """A running (or stopped) private slapd; see start_slapd."""

    directory: Path
    base_dn: str
    ldap_port: int
    ldaps_port: int
    admin_dn: str
    admin_password: str
    ca_cert: Path
    pid: int
    reader_dn: str
    reader_password: str = READER_PASSWORD
    ldapi_path: Path = field(default=Path())
    config_admin_dn: str = CONFIG_ADMIN_DN
    config_admin_password: str = ADMIN_PASSWORD

    def __post_init__(self) -> None:
        """Normalise paths and default the ldapi socket location."""
        self.directory = Path(self.directory)
        self.ca_cert = Path(self.ca_cert)
        self.ldapi_path = (
            Path(self.ldapi_path) if str(self.ldapi_path) not in ("", ".") else _socket_path(self.directory)
        )

    # ----- URLs -----
    @property
    def ldap_url(self) -> str:
        """Plain LDAP (StartTLS capable) URL."""
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        """LDAP over TLS URL."""
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ldapi_url(self) -> str:
        """Unix-socket URL (root there is cn=config manager via SASL EXTERNAL)."""
        return "ldapi://" + urllib.parse.quote(str(self.ldapi_path), safe="")

    @property
    def running(self) -> bool:
        """True if the slapd process is alive (it may be paused)."""
        return _proc.pid_alive(self.pid, _PROC_NAME)

    # ----- persistence -----
    def urls(self) -> dict[str, Any]:
        return {"ldap_url": self.ldap_url, "ldaps_url": self.ldaps_url, "ldapi_url": self.ldapi_url}

    # ----- process control -----
    def stop(self) -> None:
        """SIGTERM slapd and wait for it to exit; idempotent, safe from atexit and if it is already gone."""
        _proc.terminate(self.pid, _PROC_NAME)
        self._cleanup_runtime_files()

    def kill(self) -> None:
        """SIGKILL slapd (simulates a directory server dying mid-run) and wait until it is gone."""
        _proc.kill(self.pid, _PROC_NAME)

    def pause(self) -> None:
        """SIGSTOP slapd: connections are accepted by the kernel but never answered (a hung server)."""
        if not _proc.send_signal(self.pid, _PROC_NAME, signal.SIGSTOP):
            raise RuntimeError(f"slapd pid {self.pid} is not running")
        _proc.poll(lambda: _proc.stopped(self.pid), 5)

    def resume(self) -> None:
        """SIGCONT a paused slapd."""
        if not _proc.send_signal(self.pid, _PROC_NAME, signal.SIGCONT):
            raise RuntimeError(f"slapd pid {self.pid} is not running")

    def restart(self) -> None:
        """Start slapd again on the same ports and data (after stop() or kill()); stops it first if needed."""
        if self.running:
            self.stop()
        self._cleanup_runtime_files()
        self.pid = _launch(self)
        self.save()

    def _cleanup_runtime_files(self) -> None:
        """Remove the pid file and ldapi socket a killed slapd leaves behind."""
        if self.running:
            return
        for p in (self.directory / "slapd.pid", self.ldapi_path):
            p.unlink(missing_ok=True)

    # ----- online changes (as the rootDN over ldapi) -----
    def _admin_tool(self, tool: str, args: Sequence[str], ldif: str | None = None) -> str:
        """Run an ldap-utils tool bound as admin over ldapi; raise RuntimeError with its stderr on failure."""
        cmd = [
            _proc.find_tool(tool),
            "-x",
            "-H",
            self.ldapi_url,
            "-D",
            self.admin_dn,
            "-w",
            self.admin_password,
        ]
        return _proc.run([*cmd, *args], input=ldif, timeout=TOOL_TIMEOUT, env=_ldap_env(self)).stdout

    def ldapadd(self, ldif: str) -> None:
        """Add the entries of an LDIF text online (overlays run: memberOf, accesslog, ppolicy hashing)."""
        self._admin_tool("ldapadd", [], ldif)

    def ldapmodify(self, ldif: str) -> None:
        """Apply an LDIF change text (changetype: modify/add/delete/modrdn) online."""
        self._admin_tool("ldapmodify", [], ldif)

    def ldapdelete(self, *dns: str) -> None:
        """Delete the given entries online."""
        if dns:
            self._admin_tool("ldapdelete", list(dns))

    def config_modify(self, ldif: str) -> None:
        """Apply an LDIF change to cn=config online (as root via ldapi SASL EXTERNAL)."""
        cmd = [_proc.find_tool("ldapmodify"), "-Q", "-Y", "EXTERNAL", "-H", self.ldapi_url]
        _proc.run(cmd, input=ldif, timeout=TOOL_TIMEOUT, env=_ldap_env(self))


def _ldap_env(inst: SlapdInstance) -> dict[str, str]:
    """Environment for ldap-utils: our CA, no stray LDAP* defaults from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDAP")}
    env["LDAPTLS_CACERT"] = str(inst.ca_cert)
    return env


def _answers(inst: SlapdInstance, url: str) -> bool:
    """True if slapd answers an anonymous base search of the root DSE at url."""
    cmd = [
        _proc.find_tool("ldapsearch"), "-x", "-LLL", "-o", "nettimeout=2", "-H", url,
        "-s", "base", "-b", "", "namingContexts",
    ]  # fmt: skip
    try:
        res = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=5, check=False, env=_ldap_env(inst)
        )
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0


def _tcp_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _is_up(inst: SlapdInstance) -> bool:
    """Our slapd serves: its unique ldapi socket answers (so all listeners were bound) and TCP is open.

    A root DSE search on the TCP port alone could be answered by another server that holds the port. (The
    ldaps port is not probed: a bare TCP connect there makes slapd log a TLS accept error.)
    """
    return _answers(inst, inst.ldapi_url) and _tcp_open(inst.ldap_port)


class _BindError(RuntimeError):
    """slapd could not bind one of its listeners (port taken)."""


def _launch(inst: SlapdInstance) -> int:
    """Start slapd for inst in its own session and wait until it answers; return its pid.

    slapd runs with ``-d none`` (no detach, only must-log messages) so that startup and runtime errors land in
    directory/slapd.out; it is our child so that we can reap it (see _proc.spawn_detached).
    """
    d = inst.directory
    out = d / "slapd.out"
    urls = f"ldap://127.0.0.1:{inst.ldap_port}/ ldaps://127.0.0.1:{inst.ldaps_port}/ {inst.ldapi_url}"
    cmd = [_proc.find_tool("slapd"), "-d", "none", "-F", str(d / "slapd.d"), "-h", urls]
    if inst.ldapi_path.exists() and not inst.running:
        inst.ldapi_path.unlink()
    offset = out.stat().st_size if out.exists() else 0
    proc = _proc.spawn_detached(cmd, out)

    def failure(reason: str) -> RuntimeError:
        log = _proc.tail(out, offset=offset)
        text = f"{reason}\ncommand: {_proc.format_cmd(cmd)}\nslapd output ({out}):\n{log}"
        return _BindError(text) if _BIND_FAILURE.search(log) else RuntimeError(text)

    def ready() -> bool:
        rc = proc.poll()
        if rc is not None:
            _proc.reap(proc.pid)
            raise failure(f"slapd exited with status {rc} while starting")
        return _is_up(inst)

    if not _proc.poll(ready, START_TIMEOUT):
        _proc.kill(proc.pid, _PROC_NAME)
        raise failure(
            f"slapd did not answer a root DSE search on {inst.ldapi_url} within {START_TIMEOUT:.0f} s"
        )
    return proc.pid


def _prepare_directory(directory: Path) -> None:
    """Create directory; refuse if it hosts a running instance; remove leftovers of a previous one."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "instance.json").exists():
        try:
            old = SlapdInstance.load(directory)
        except (ValueError, TypeError, KeyError, OSError):
            old = None
        if old is not None and old.running:
            raise RuntimeError(f"a slapd (pid {old.pid}) is already running in {directory}; stop it first")
        if old is not None:
            old._cleanup_runtime_files()
    for name in _OWNED:
        p = directory / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def start_slapd(
    directory: Path,
    *,
    base_dn: str = "dc=example,dc=com",
    ldifs: Sequence[Path | str] = (),
    extra_config_ldif: str = "",
    size_limit: int = 500,
    stop_at_exit: bool = True,
    syncrepl: bool = True,
) -> SlapdInstance:
    """Build a private slapd in directory, slapadd the base entries and ldifs offline, start it, wait.

    ldifs: Path items are LDIF files, str items are LDIF text. extra_config_ldif: additional cn=config entries
    (add form) appended to the generated config before it is loaded. size_limit: frontend size limit for
    everyone but the admin (paged searches may still return everything); <= 0 means unlimited.
    stop_at_exit: stop the server when this Python process exits (the CLI turns this off). syncrepl: False
    makes a server without the syncprov overlay (no RFC 4533 change tracking).
    """
    if isinstance(ldifs, (str, os.PathLike)):
        ldifs = [ldifs]
    d = Path(directory).resolve()
    _prepare_directory(d)
    for sub in ("slapd.d", "data", "accesslog"):
        (d / sub).mkdir()
    (d / "slapd.d").chmod(0o700)
    tls = cached_server_bundle().copy_to(d / "tls")

    slapadd = _proc.find_tool("slapadd")
    config = d / "config.ldif"
    text = _config_ldif(d, base_dn, size_limit, extra_config_ldif)
    config.write_text(text if syncrepl else _without_syncprov(text))
    _proc.run([slapadd, "-q", "-n0", "-F", d / "slapd.d", "-l", config])
    base = d / "base.ldif"
    base.write_text(_data_ldif(base_dn))
    load = [slapadd, "-q", "-w", "-F", str(d / "slapd.d"), "-b", base_dn]
    _proc.run([*load, "-l", base], timeout=TOOL_TIMEOUT)
    for item in ldifs:
        if isinstance(item, str):
            _proc.run(load, input=item, timeout=TOOL_TIMEOUT)
        else:  # a path (any os.PathLike)
            _proc.run([*load, "-l", Path(item).resolve()], timeout=TOOL_TIMEOUT)

    for attempt in range(2):
        ldap_port, ldaps_port = free_ports(2)
        inst = SlapdInstance(
            directory=d,
            base_dn=base_dn,
            ldap_port=ldap_port,
            ldaps_port=ldaps_port,
            admin_dn=f"cn=admin,{base_dn}",
            admin_password=ADMIN_PASSWORD,
            ca_cert=tls.ca_cert,
            pid=0,
            reader_dn=f"cn=reader,{base_dn}",
            ldapi_path=_socket_path(d),
        )
        try:
            inst.pid = _launch(inst)
        except _BindError:
            if attempt == 1:
                raise
            continue
        break
    inst.save()
    if stop_at_exit:
        _proc.stop_at_exit(inst)
    return inst
