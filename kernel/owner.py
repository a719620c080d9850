"""Who this process is: the owner id written on the runs it drives, and the actor of decisions."""

from __future__ import annotations

import functools
import os
import pwd
import socket
import time

from .events import Actor

__all__ = ["HOST", "owner_id", "parse_owner", "owner_alive", "current_actor"]

# VIGIL_HOST names this host where hostnames do not tell hosts apart (containers that share
# one); a run owned on another host is freed only when its lease runs out.
HOST = os.environ.get("VIGIL_HOST") or socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks (Linux), so a reused pid is not mistaken for us."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[19].decode()


_OWNER = f"{HOST}:{os.getpid()}:{_start_time(os.getpid()) or time.time_ns()}"


def owner_id() -> str:
    return _OWNER


def parse_owner(owner: str) -> tuple[str, int, str]:
    host, pid, start = owner.rsplit(":", 2)
    return host, int(pid), start


def owner_alive(owner: str | None, lease_until_ns: int | None, now_ns: int | None = None) -> bool:
    """On this host a dead pid frees its runs at once; elsewhere the lease must expire."""
    if not owner:
        return False
    try:
        host, pid, start = parse_owner(owner)
    except ValueError:
        return False
    if host == HOST:
        return _start_time(pid) == start
    return (lease_until_ns or 0) > (now_ns or time.time_ns())


def _user() -> str:
    """getpass.getuser(), with its password-database lookup kept per uid (a resolution's actor
    is made on every decision; the lookup went through NSS each time)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    return _user_of(os.getuid())


@functools.lru_cache(maxsize=8)
def _user_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def current_actor() -> Actor:
    try:
        tty = os.ttyname(0)
    except OSError:
        tty = None
    return Actor(
        user=_user(),
        uid=os.getuid(),
        host=HOST,
        pid=os.getpid(),
        tty=tty,
        ssh_connection=os.environ.get("SSH_CONNECTION"),
        # Set by `vigil serve` for each browser session it starts (console/serve.py).
        via=os.environ.get("VIGIL_VIA") or None,
    )
