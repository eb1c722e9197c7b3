#!/usr/bin/env bash
# Install what this project needs on a fresh Debian 12 / Ubuntu machine (as root), then the Python venv.
# Idempotent and quick when everything is already there. Usage: scripts/bootstrap.sh [test|demo]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openssl slapd ldap-utils redis-server krb5-user)
# python-ldap (the sync's bulk reader) compiles against OpenLDAP's client library.
PACKAGES+=(libldap2-dev libsasl2-dev)
# Samba AD DC for tests/test_active_directory.py (devservers/samba.py): samba, samba-tool provision, ldb tools.
PACKAGES+=(samba samba-ad-dc samba-ad-provision winbind ldb-tools)
# A real IMAP server that signs our users in through `manage.py checkpassword` (tests/test_dovecot_imap.py).
PACKAGES+=(dovecot-imapd)
# Kerberos single sign-on: gssapi compiles against MIT krb5; private MIT KDCs (k5test), curl with SPNEGO,
# headless Chromium, and libfaketime for the clock-skew test (tests/test_kerberos_sso.py).
PACKAGES+=(libkrb5-dev krb5-kdc krb5-admin-server curl chromium faketime)
PYTHON=${PYTHON:-python3}

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Debian splits venv/ensurepip out of python3; a Python built elsewhere (pyenv) has them already.
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
# python-ldap has no wheel: it needs a C compiler and the Python headers.
command -v gcc >/dev/null || missing+=(gcc)
"$PYTHON" -c "import os, sysconfig, sys; sys.exit(not os.path.exists(sysconfig.get_paths()['include'] + '/Python.h'))" \
  || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Run as root (or: sudo apt-get install ${missing[*]})." >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Package scripts must not start system services: slapd would listen on every interface, redis on 6379,
  # samba/smbd/winbind, dovecot and the krb5 KDC on their fixed ports.
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
