#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at the given URL's host and port; on a fresh machine install Debian's
# package, start its cluster on loopback and give the postgres user the URL's password.
set -euo pipefail
url=${1:?usage: ensure_postgres.sh postgres://user:password@host:port/db}
read -r user password host port < <(python3 - "$url" <<'PY'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.username or "postgres", u.password or "postgres", u.hostname or "127.0.0.1", u.port or 5432)
PY
)
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if command -v pg_isready >/dev/null && ready; then exit 0; fi
if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
  export DEBIAN_FRONTEND=noninteractive
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get update -q && apt-get install -y -q --no-install-recommends postgresql
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
conf=/etc/postgresql/$version/main/postgresql.conf
grep -q "^listen_addresses = '127.0.0.1'" "$conf" || echo "listen_addresses = '127.0.0.1'" >> "$conf"
grep -q "^port = $port" "$conf" || echo "port = $port" >> "$conf"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 50); do ready && break; sleep 0.2; done
ready || { echo "PostgreSQL did not start on $host:$port" >&2; exit 1; }
su postgres -c "psql -q -p $port -c \"ALTER USER $user WITH PASSWORD '$password'\"" >/dev/null
echo "PostgreSQL is up on $host:$port"
