"""A throw-away Samba Active Directory domain controller on loopback (127.0.0.1 / ::1 only).

Samba's ports are fixed (LDAP 389, LDAPS 636, Kerberos 88, ...): one DC per machine at a time, as root.
Provisioning takes ~8-12 s; a directory that was provisioned (and seeded) before is only restarted (~1 s).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _proc
from .tls import make_ca, make_server_cert

__all__ = ["SAMBA_TCP_PORTS", "SambaInstance", "start_samba"]

logger = logging.getLogger(__name__)

DEFAULT_REALM = "EXAMPLE.TEST"
DEFAULT_DOMAIN = "EXAMPLE"
DEFAULT_ADMIN_PASSWORD = "Passw0rd!Adm1n"
DEFAULT_STRONG_AUTH = "allow_sasl_over_tls"
HOST_NAME = "dc1"
LOOPBACK = ("127.0.0.1", "::1")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
PROVISION_TIMEOUT = 600.0
TOOL_TIMEOUT = 600.0
# Fixed TCP ports of an AD DC (LDAP, LDAPS, GC, GC-TLS, Kerberos, kpasswd, RPC endpoint mapper, SMB).
SAMBA_TCP_PORTS = (389, 636, 3268, 3269, 88, 464, 135, 445, 139)
# Never started: DNS (53) and its updates, NetBIOS name service (137/138 UDP), WINS replication.
SERVICES = "-dns -dnsupdate -nbt -wrepl"
_PROC_NAME = "samba"
_MARKER = "ready.json"  # written once provision (and the caller's seed) finished
_MARKER_VERSION = 1
# Files and directories start_samba owns inside the instance directory (removed before a fresh provision).
_OWNED = (
    "dc", "tls", "run", "empty.conf", "provision.log", "samba.out", "krb5.conf", "instance.json",
    _MARKER, "timings.json",
)  # fmt: skip
_OWNED_GLOBS = ("log.*",)
_BIND_FAILURE = re.compile(r"Failed to bind|ADDRESS_ALREADY_ASSOCIATED|Address already in use", re.I)
_STRONG_AUTH_VALUES = ("no", "allow_sasl_over_tls", "yes")


def _base_dn(realm: str) -> str:
    """EXAMPLE.TEST -> DC=example,DC=test."""
    return ",".join(f"DC={part}" for part in realm.lower().split("."))


@dataclass
class SambaInstance(_proc.SavedInstance):
    """A running (or stopped) private Samba AD DC; see start_samba."""

    directory: Path
    realm: str  # Kerberos realm / DNS domain, upper case: EXAMPLE.TEST
    domain: str  # NetBIOS domain: EXAMPLE
    base_dn: str  # DC=example,DC=test
    admin_dn: str
    admin_upn: str  # Administrator@EXAMPLE.TEST
    admin_password: str
    ca_cert: Path
    krb5_conf: Path
    pid: int
    strong_auth: str = DEFAULT_STRONG_AUTH
    host_name: str = HOST_NAME
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Normalise paths."""
        self.directory = Path(self.directory)
        self.ca_cert = Path(self.ca_cert)
        self.krb5_conf = Path(self.krb5_conf)

    # ----- names and URLs -----
    @property
    def ldap_url(self) -> str:
        """Plain LDAP (StartTLS capable); a simple bind needs StartTLS unless strong_auth is "no"."""
        return "ldap://127.0.0.1:389"

    @property
    def ldaps_url(self) -> str:
        """LDAP over TLS."""
        return "ldaps://127.0.0.1:636"

    @property
    def dns_host_name(self) -> str:
        """The DC's FQDN (in its certificate; not resolvable, nothing serves DNS): dc1.example.test."""
        return f"{self.host_name}.{self.realm.lower()}"

    @property
    def smb_conf(self) -> Path:
        """The DC's own smb.conf (every samba tool must get it with -s)."""
        return self.directory / "dc" / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        """The directory database, for ldb tools run locally as the system (no ACLs)."""
        return self.directory / "dc" / "private" / "sam.ldb"

    @property
    def log_path(self) -> Path:
        """The samba process's output."""
        return self.directory / "samba.out"

    @property
    def running(self) -> bool:
        """True if the samba root process is alive."""
        return _proc.pid_alive(self.pid, _PROC_NAME)

    # ----- persistence -----
    def urls(self) -> dict[str, Any]:
        return {
            "ldap_url": self.ldap_url,
            "ldaps_url": self.ldaps_url,
            "dns_host_name": self.dns_host_name,
            "smb_conf": str(self.smb_conf),
        }

    # ----- process control -----
    def stop(self) -> None:
        """SIGTERM samba (its smbd/winbindd children follow) and wait until all are gone and 389 is free.

        Idempotent, safe from atexit and when it is already gone; SIGKILL after STOP_TIMEOUT.
        """
        if not self.running:
            _proc.reap(self.pid)
            return
        tree = _descendants(self.pid)
        _proc.terminate(self.pid, _PROC_NAME, timeout=STOP_TIMEOUT)
        _finish_tree(tree, STOP_TIMEOUT)
        _wait_ports_free(STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL samba and its children (a DC dying mid-run) and wait until they are gone."""
        if not self.running:
            _proc.reap(self.pid)
            return
        tree = _descendants(self.pid)
        _proc.kill(self.pid, _PROC_NAME)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _finish_tree(tree, STOP_TIMEOUT)
        _wait_ports_free(STOP_TIMEOUT)

    def restart(self) -> None:
        """Start samba again on the same database (after stop() or kill()); stops it first if needed."""
        if self.running:
            self.stop()
        started = time.monotonic()
        self.pid = _launch(self)
        self.timings["restart_s"] = round(time.monotonic() - started, 2)
        self.save()

    # ----- tools -----
    def tool_env(self) -> dict[str, str]:
        """Environment for samba and Kerberos tools: this DC's krb5.conf, no stray settings of the caller."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "LDAP"))}
        env["KRB5_CONFIG"] = str(self.krb5_conf)
        env["LDAPTLS_CACERT"] = str(self.ca_cert)
        return env

    def samba_tool(self, *args: str, timeout: float = TOOL_TIMEOUT) -> str:
        """Run `samba-tool ARGS -s smb.conf` locally; its output; RuntimeError (with stderr) on failure."""
        cmd = [_proc.find_tool("samba-tool"), *args, "-s", str(self.smb_conf)]
        return _proc.run(cmd, timeout=timeout, env=self.tool_env()).stdout

    def _ldb_tool(self, tool: str, ldif: str) -> str:
        cmd = [_proc.find_tool(tool), "-H", str(self.sam_ldb)]
        return _proc.run(cmd, input=ldif, timeout=TOOL_TIMEOUT, env=self.tool_env()).stdout

    def ldbmodify(self, ldif: str) -> str:
        """Apply an LDIF change text to sam.ldb directly (as the system: no ACL, no TLS needed)."""
        return self._ldb_tool("ldbmodify", ldif)

    def ldbadd(self, ldif: str) -> str:
        """Add the entries of an LDIF text to sam.ldb directly (the full DSDB module stack runs: objectGUID,
        SID, uSN, replication metadata, password hashes are made as for an LDAP add)."""
        return self._ldb_tool("ldbadd", ldif)


# --------------------------------------------------------------------------- processes


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids of every live process (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] in ("Z", "X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    """Every live descendant of pid (smbd and winbindd run in sessions of their own, so not a killpg)."""
    if pid <= 0 or not Path("/proc/self").exists():
        return []
    children = _children_map()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _live(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _finish_tree(pids: list[int], timeout: float) -> None:
    """Wait for the former children of samba to exit; SIGKILL those that do not."""
    if not _proc.poll(lambda: not any(_live(p) for p in pids), timeout):
        for pid in pids:
            if _live(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _proc.poll(lambda: not any(_live(p) for p in pids), 5.0)


def _port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
        except OSError:
            return False
        return True


def _wait_ports_free(timeout: float) -> None:
    """Wait until nothing listens on 127.0.0.1:389 any more (a restart must be able to bind it)."""
    _proc.poll(lambda: not _port_open("127.0.0.1", 389), timeout, max_interval=0.1)


def _who_listens(port: int) -> str:
    """`ss` lines of the listeners on port (with the process when visible), or ""."""
    ss = shutil.which("ss") or "/usr/bin/ss"
    if not os.access(ss, os.X_OK):
        return ""
    try:
        res = subprocess.run(
            [ss, "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return res.stdout.strip()


def _check_ports_free() -> None:
    """Refuse to start when one of the fixed AD ports is taken on loopback (an earlier DC, a slapd...)."""
    for port in SAMBA_TCP_PORTS:
        for host in LOOPBACK:
            if _port_open(host, port):
                holder = _who_listens(port)
                raise RuntimeError(
                    f"Cannot start the Samba AD DC: TCP port {port} on {host} is already in use"
                    + (f" by:\n{holder}\n" if holder else ". ")
                    + "Samba's ports are fixed, so only one DC can run on this machine at a time: stop the "
                    "other one first (python -m devservers samba down DIR, or the process above)."
                )


# --------------------------------------------------------------------------- launch


def _ldap_answers(base_dn: str) -> bool:
    """True if the LDAP server on 127.0.0.1:389 answers anonymously with our naming context."""
    cmd = [
        _proc.find_tool("ldapsearch"), "-x", "-LLL", "-o", "nettimeout=2", "-H", "ldap://127.0.0.1:389",
        "-s", "base", "-b", "", "defaultNamingContext",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDAP")}
    try:
        res = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=5, check=False, env=env
        )
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and base_dn.lower() in res.stdout.lower()


def _launch(inst: SambaInstance) -> int:
    """Start `samba -i -M single` in its own session and wait until LDAP and LDAPS answer; return its pid."""
    _check_ports_free()
    out = inst.log_path
    cmd = [
        _proc.find_tool("samba"), "-i", "-M", "single", "-s", str(inst.smb_conf), "--debug-stdout", "-d1",
    ]  # fmt: skip
    offset = out.stat().st_size if out.exists() else 0
    proc = _proc.spawn_detached(cmd, out)

    def failure(reason: str) -> RuntimeError:
        log = _proc.tail(out, offset=offset)
        if _BIND_FAILURE.search(log):
            reason += " (one of its fixed ports was taken meanwhile: only one DC can run per machine)"
        return RuntimeError(f"{reason}\ncommand: {_proc.format_cmd(cmd)}\nsamba output ({out}):\n{log}")

    def ready() -> bool:
        rc = proc.poll()
        if rc is not None:
            _proc.reap(proc.pid)
            raise failure(f"samba exited with status {rc} while starting")
        return _ldap_answers(inst.base_dn) and _port_open("127.0.0.1", 636)

    if not _proc.poll(ready, START_TIMEOUT, max_interval=0.1):
        tree = _descendants(proc.pid)
        _proc.kill(proc.pid, _PROC_NAME)
        _finish_tree(tree, STOP_TIMEOUT)
        raise failure(
            f"samba did not answer on ldap://127.0.0.1:389 (root DSE with {inst.base_dn}) and 636 within "
            f"{START_TIMEOUT:.0f} s"
        )
    return proc.pid


# --------------------------------------------------------------------------- provision


def _krb5_conf(realm: str) -> str:
    """A krb5.conf for clients of this DC (kinit, gssapi): KDC on 127.0.0.1:88, no DNS lookups."""
    dns_domain = realm.lower()
    return f"""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
[realms]
    {realm} = {{
        kdc = 127.0.0.1:88
    }}
[domain_realm]
    .{dns_domain} = {realm}
    {dns_domain} = {realm}
    localhost = {realm}
"""


def _provision(inst: SambaInstance) -> None:
    """Certificates, samba-tool domain provision (loopback only), SPNs, relaxed password settings."""
    d = inst.directory
    started = time.monotonic()
    tls = d / "tls"
    ca_crt, ca_key = make_ca(tls, common_name=f"Samba test CA ({inst.realm})")
    default_dns = [inst.dns_host_name, "localhost"]
    host = socket.gethostname()
    if host and host not in default_dns:
        default_dns.append(host)
    crt, key = make_server_cert(
        tls,
        ca_crt,
        ca_key,
        common_name=inst.dns_host_name,
        dns_names=default_dns,
        ip_addresses=list(LOOPBACK),
    )
    inst.timings["certificates_s"] = round(time.monotonic() - started, 2)

    # -s empty.conf keeps Debian's /etc/samba/smb.conf ([homes], [printers], /var/log paths) out of the DC.
    empty = d / "empty.conf"
    empty.write_text("")
    options = {
        "interfaces": "lo",
        "bind interfaces only": "yes",
        # provision copies the machine's resolver into "dns forwarder": point it at nothing, on loopback.
        "dns forwarder": "127.0.0.2",
        "server services": SERVICES,
        "tls enabled": "yes",
        "tls keyfile": str(key),
        "tls certfile": str(crt),
        "tls cafile": str(ca_crt),
        "ldap server require strong auth": inst.strong_auth,
        "log file": str(d / "log.%m"),
        "pid directory": str(d / "run"),
    }
    cmd = [
        _proc.find_tool("samba-tool"), "domain", "provision", "-s", str(empty), f"--targetdir={d / 'dc'}",
        f"--realm={inst.realm}", f"--domain={inst.domain}", "--server-role=dc",
        "--dns-backend=SAMBA_INTERNAL", "--use-rfc2307", f"--adminpass={inst.admin_password}",
        f"--host-name={inst.host_name}",
        *[f"--option={name}={value}" for name, value in options.items()],
    ]  # fmt: skip
    started = time.monotonic()
    log = d / "provision.log"
    with log.open("w") as fh:
        try:
            res = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=PROVISION_TIMEOUT,
                check=False,
                env=inst.tool_env(),
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"samba-tool domain provision timed out; see {log}") from exc
    if res.returncode != 0:
        shown = _proc.format_cmd(cmd).replace(inst.admin_password, "********")
        raise RuntimeError(
            f"samba-tool domain provision failed (exit {res.returncode}): {shown}\n{_proc.tail(log)}"
        )
    inst.timings["provision_s"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    # Normally the dnsupdate service does this; without it the KDC lacks ldap/dc1.example.test & co.
    _proc.run([_proc.find_tool("samba_spnupdate"), "-s", str(inst.smb_conf)], env=inst.tool_env())
    inst.samba_tool("domain", "passwordsettings", "set", "--min-pwd-age=0", "--history-length=0")
    inst.krb5_conf.write_text(_krb5_conf(inst.realm))
    inst.timings["post_provision_s"] = round(time.monotonic() - started, 2)


# --------------------------------------------------------------------------- start


def _marker(
    realm: str, domain: str, admin_password: str, strong_auth: str, seed_version: str | None
) -> dict[str, Any]:
    return {
        "version": _MARKER_VERSION,
        "realm": realm,
        "domain": domain,
        "admin_password": admin_password,
        "strong_auth": strong_auth,
        "seed_version": seed_version,
    }


def _reusable(d: Path, wanted: dict[str, Any]) -> bool:
    """Whether d holds a complete provision (and seed) made with the same parameters.

    A wanted seed_version of None accepts whatever seed the directory holds (the command line's `up`).
    """
    try:
        found = json.loads((d / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(found, dict):
        return False
    if wanted["seed_version"] is None:
        found = {**found, "seed_version": None}
    return found == wanted and (d / "instance.json").is_file() and (d / "dc" / "etc" / "smb.conf").is_file()


def _clear(d: Path) -> None:
    """Remove what an earlier instance left in d (only our own files)."""
    for name in _OWNED:
        p = d / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for pattern in _OWNED_GLOBS:
        for p in d.glob(pattern):
            if p.is_file() or p.is_symlink():
                p.unlink()


def start_samba(
    directory: Path,
    *,
    realm: str = DEFAULT_REALM,
    domain: str = DEFAULT_DOMAIN,
    admin_password: str = DEFAULT_ADMIN_PASSWORD,
    strong_auth: str = DEFAULT_STRONG_AUTH,
    fresh: bool = False,
    seed: Callable[[SambaInstance], None] | None = None,
    seed_version: str | None = None,
    stop_at_exit: bool = True,
) -> SambaInstance:
    """Provision a Samba AD DC in directory (or reuse the one there) and start it; needs root.

    strong_auth: "ldap server require strong auth" (allow_sasl_over_tls: a simple bind needs TLS; "no": plain
    simple binds work; "yes": also no SASL over TLS). A directory that holds a complete provision made with
    the same realm, domain, password, strong_auth and seed_version (None: any seed) is only restarted, unless
    fresh; anything else is provisioned anew (the directory's earlier contents are removed). seed(instance)
    runs once after a new provision, with samba running; the marker that allows reuse is written only after it
    returned. stop_at_exit: stop samba when this process exits.
    """
    if strong_auth not in _STRONG_AUTH_VALUES:
        raise ValueError(f"strong_auth must be one of {', '.join(_STRONG_AUTH_VALUES)}, not {strong_auth!r}")
    if os.geteuid() != 0:
        raise RuntimeError("a Samba AD DC needs root (it binds ports below 1024 and sets file ACLs)")
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    old: SambaInstance | None = None
    if (d / "instance.json").exists():
        try:
            old = SambaInstance.load(d)
        except (ValueError, TypeError, KeyError, OSError):
            old = None
        if old is not None and old.running:
            raise RuntimeError(f"a samba (pid {old.pid}) is already running in {d}; stop it first")
    _check_ports_free()

    wanted = _marker(realm, domain, admin_password, strong_auth, seed_version)
    if not fresh and old is not None and _reusable(d, wanted):
        inst = old
        inst.timings = {}
        started = time.monotonic()
        inst.pid = _launch(inst)
        inst.timings["restart_s"] = round(time.monotonic() - started, 2)
        inst.save()
        logger.info("Samba AD DC restarted in %s (%.1f s)", d, inst.timings["restart_s"])
        if stop_at_exit:
            _proc.stop_at_exit(inst)
        return inst

    began = time.monotonic()
    _clear(d)
    base_dn = _base_dn(realm)
    inst = SambaInstance(
        directory=d,
        realm=realm.upper(),
        domain=domain.upper(),
        base_dn=base_dn,
        admin_dn=f"CN=Administrator,CN=Users,{base_dn}",
        admin_upn=f"Administrator@{realm.upper()}",
        admin_password=admin_password,
        ca_cert=d / "tls" / "ca.crt",
        krb5_conf=d / "krb5.conf",
        pid=0,
        strong_auth=strong_auth,
    )
    _provision(inst)
    started = time.monotonic()
    inst.pid = _launch(inst)
    inst.timings["first_start_s"] = round(time.monotonic() - started, 2)
    inst.save()
    if stop_at_exit:
        _proc.stop_at_exit(inst)
    try:
        if seed is not None:
            started = time.monotonic()
            seed(inst)
            inst.timings["seed_s"] = round(time.monotonic() - started, 2)
    except BaseException:
        inst.stop()
        raise
    inst.timings["total_s"] = round(time.monotonic() - began, 2)
    inst.save()
    (d / "timings.json").write_text(json.dumps(inst.timings, indent=2) + "\n")
    (d / _MARKER).write_text(json.dumps({**wanted, "seed_version": seed_version or ""}, indent=2) + "\n")
    logger.info("Samba AD DC provisioned in %s: %s", d, inst.timings)
    return inst
