"""Throw-away X.509 material (openssl CLI): test CAs, server certificates, and a per-host cached bundle."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._proc import find_tool, run

__all__ = ["TlsBundle", "cache_dir", "cached_server_bundle", "make_ca", "make_server_cert"]

_CACHE_VERSION = "v1"
_DAYS = "3650"


@dataclass(frozen=True)
class TlsBundle:
    """Paths of a CA and a server certificate signed by it."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def copy_to(self, directory: Path) -> TlsBundle:
        """Copy the four files into directory (ca.crt, ca.key, server.crt, server.key; keys 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        out = TlsBundle(
            directory / "ca.crt", directory / "ca.key", directory / "server.crt", directory / "server.key"
        )
        for src, dst in zip(self._paths(), out._paths(), strict=True):
            shutil.copyfile(src, dst)
        out.ca_key.chmod(0o600)
        out.server_key.chmod(0o600)
        return out

    def _paths(self) -> tuple[Path, Path, Path, Path]:
        """The four paths in a fixed order."""
        return (self.ca_cert, self.ca_key, self.server_cert, self.server_key)


def _subj(common_name: str) -> str:
    """An openssl -subj string for a CN (slashes escaped)."""
    return "/CN=" + common_name.replace("\\", "\\\\").replace("/", "\\/")


def make_ca(directory: Path, *, common_name: str) -> tuple[Path, Path]:
    """Create a fresh self-signed RSA-2048 CA in directory; return (ca.crt, ca.key)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / "ca.crt", directory / "ca.key"
    run(
        [
            find_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS,
            "-subj", _subj(common_name), "-keyout", key, "-out", crt,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )  # fmt: skip
    key.chmod(0o600)
    return crt, key


def default_server_names() -> tuple[list[str], list[str]]:
    """DNS names and IPs every local test server cert carries (libldap checks `hostname` for "localhost")."""
    dns = ["localhost"]
    host = socket.gethostname()
    if host and host not in dns:
        dns.append(host)
    return dns, ["127.0.0.1", "::1"]


def make_server_cert(
    directory: Path,
    ca_cert: Path,
    ca_key: Path,
    *,
    common_name: str = "localhost",
    dns_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    name: str = "server",
) -> tuple[Path, Path]:
    """Create an RSA-2048 server cert signed by the given CA in directory; return (<name>.crt, <name>.key)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    default_dns, default_ips = default_server_names()
    dns = default_dns if dns_names is None else dns_names
    ips = default_ips if ip_addresses is None else ip_addresses
    san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    openssl = find_tool("openssl")
    with tempfile.TemporaryDirectory(prefix="devservers-csr-") as tmp:
        csr, ext = Path(tmp) / "server.csr", Path(tmp) / "ext.cnf"
        ext.write_text(
            f"subjectAltName={san}\n"
            "extendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "basicConstraints=CA:FALSE\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid,issuer\n"
        )
        run(
            [openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", _subj(common_name),
             "-keyout", key, "-out", csr]
        )  # fmt: skip
        run(
            [openssl, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
             "-set_serial", str(secrets.randbits(63)), "-days", _DAYS, "-extfile", ext, "-out", crt]
        )  # fmt: skip
    key.chmod(0o600)
    return crt, key


def cache_dir() -> Path:
    """Root of the on-disk certificate cache ($DEVSERVERS_CACHE, default /tmp/devservers-cache), mode 0700."""
    root = Path(os.environ.get("DEVSERVERS_CACHE") or "/tmp/devservers-cache")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = root.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(
            f"certificate cache {root} is not a directory owned by uid {os.getuid()}; refusing it"
        )
    return root


_BUNDLES: dict[str, TlsBundle] = {}


def cached_server_bundle() -> TlsBundle:
    """CA + server cert for this host, generated once into the cache and reused (keys take ~0.7 s)."""
    host = socket.gethostname() or "localhost"
    if host in _BUNDLES:
        return _BUNDLES[host]
    root = cache_dir()
    final = root / f"tls-{_CACHE_VERSION}-{host}"
    bundle = TlsBundle(final / "ca.crt", final / "ca.key", final / "server.crt", final / "server.key")
    if not all(p.is_file() and p.stat().st_size > 0 for p in bundle._paths()):
        tmp = Path(tempfile.mkdtemp(prefix=".tls-tmp-", dir=root))
        try:
            ca_crt, ca_key = make_ca(tmp, common_name=f"devservers test CA ({host})")
            make_server_cert(tmp, ca_crt, ca_key)
            complete = all(p.is_file() and p.stat().st_size > 0 for p in bundle._paths())
            if final.exists() and not complete:  # damaged entry (files removed by hand?)
                shutil.rmtree(final, ignore_errors=True)
            if not complete:
                try:
                    tmp.rename(final)  # atomic publish; if a concurrent process won, use its bundle
                except OSError:
                    if not all(p.is_file() for p in bundle._paths()):
                        raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _BUNDLES[host] = bundle
    return bundle
