"""CLI: python -m devservers {slapd,redis,samba} {up,down,status,restart} DIR ... (prints one JSON line)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .redis import RedisInstance, start_redis
from .samba import SambaInstance, start_samba
from .slapd import SlapdInstance, start_slapd


def _print(data: dict[str, Any]) -> None:
    """Print one JSON line."""
    print(json.dumps(data, sort_keys=True), flush=True)


def _parser() -> argparse.ArgumentParser:
    """Build the argument parser."""
    p = argparse.ArgumentParser(prog="python -m devservers", description=__doc__)
    servers = p.add_subparsers(dest="server", required=True)

    slapd = servers.add_parser("slapd", help="private OpenLDAP slapd on 127.0.0.1")
    sa = slapd.add_subparsers(dest="action", required=True)
    up = sa.add_parser("up", help="build DIR, load LDIFs offline, start, print a JSON description")
    up.add_argument("directory", type=Path)
    up.add_argument("--base-dn", default="dc=example,dc=com")
    up.add_argument(
        "--ldif", type=Path, action="append", default=[], help="LDIF file to slapadd (repeatable)"
    )
    up.add_argument("--size-limit", type=int, default=500, help="frontend size limit (<= 0: unlimited)")
    for name in ("down", "status", "restart"):
        sa.add_parser(name).add_argument("directory", type=Path)

    redis = servers.add_parser("redis", help="private redis-server on 127.0.0.1")
    ra = redis.add_subparsers(dest="action", required=True)
    for name in ("up", "down", "status", "restart"):
        ra.add_parser(name).add_argument("directory", type=Path)

    samba = servers.add_parser("samba", help="Samba AD DC (EXAMPLE.TEST) on 127.0.0.1/::1, fixed ports; root")
    sba = samba.add_subparsers(dest="action", required=True)
    up = sba.add_parser("up", help="provision DIR (or restart the DC already provisioned there), start it")
    up.add_argument("directory", type=Path)
    up.add_argument("--fresh", action="store_true", help="provision anew even if DIR holds a provision")
    up.add_argument(
        "--strong-auth",
        default="allow_sasl_over_tls",
        choices=["no", "allow_sasl_over_tls", "yes"],
        help="ldap server require strong auth (default: a simple bind needs TLS)",
    )
    for name in ("down", "status", "restart"):
        sba.add_parser(name).add_argument("directory", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = _parser().parse_args(argv)
    directory: Path = args.directory
    if args.action == "down" and not (directory / "instance.json").exists():
        _print({"directory": str(directory), "running": False})  # nothing to stop: fine for teardown traps
        return 0
    target: SlapdInstance | RedisInstance | SambaInstance
    try:
        if args.server == "slapd" and args.action == "up":
            for f in args.ldif:
                if not f.is_file():
                    raise FileNotFoundError(f"LDIF file not found: {f}")
            target = start_slapd(
                directory,
                base_dn=args.base_dn,
                ldifs=args.ldif,
                size_limit=args.size_limit,
                stop_at_exit=False,
            )
        elif args.server == "slapd":
            target = SlapdInstance.load(directory)
        elif args.server == "samba" and args.action == "up":
            target = start_samba(
                directory, strong_auth=args.strong_auth, fresh=args.fresh, stop_at_exit=False
            )
        elif args.server == "samba":
            target = SambaInstance.load(directory)
        elif args.action == "up":
            target = start_redis(directory, stop_at_exit=False)
        else:
            target = RedisInstance.load(directory)
        if args.action == "down":
            target.stop()
        elif args.action == "restart":
            target.restart()
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"devservers: {exc}", file=sys.stderr)
        return 1
    data = target.to_json()
    data["running"] = target.running
    _print(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
