"""Free-port selection and port polling, loopback only."""

from __future__ import annotations

import ipaddress
import socket
import time

__all__ = ["free_port", "free_ports", "wait_for_port"]


def _check_loopback(host: str) -> None:
    """Refuse anything that is not a loopback address: these servers must never be reachable from outside."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing non-loopback address {host!r}; use 127.0.0.1 or ::1")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """Return n distinct currently-free TCP ports on host (all bound at once, then released)."""
    _check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """Return one currently-free TCP port on host."""
    return free_ports(1, host)[0]


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until a TCP connect to host:port succeeds; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    last: OSError | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.05, min(1.0, timeout))):
                return
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"nothing accepted connections on {host}:{port} within {timeout:.1f} s ({last})"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
