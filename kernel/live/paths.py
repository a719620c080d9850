"""Where an owner's live socket is: `<db>.live/<hash of the owner id>.sock`, found by any process
from the database path and the owner recorded on the run (RunInfo.owner)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator

__all__ = ["live_dir", "socket_path", "addressable", "ensure_dir"]

# sun_path holds 108 bytes on Linux; a pytest tmp dir or a deep home directory passes that
_SUN_PATH = 100


def live_dir(db: Path | str) -> Path:
    # resolved: an owner and a viewer reaching one file by different paths (a symlink, another
    # working directory) must meet at one directory
    db = Path(db).resolve()
    return db.with_name(db.name + ".live")


def socket_path(db: Path | str, owner: str) -> Path:
    # hashed: an owner id (host:pid:start) may hold characters and a length a file name should not
    return live_dir(db) / (hashlib.sha256(owner.encode()).hexdigest()[:20] + ".sock")


@contextlib.contextmanager
def addressable(path: Path) -> Iterator[str]:
    """A name for `path` that fits in sun_path: itself, or the same file reached through an open
    descriptor of its directory (/proc/self/fd/N/name) when the full path is too long."""
    if len(os.fsencode(str(path))) < _SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def ensure_dir(directory: Path) -> bool:
    """The socket directory, 0700 and ours; False (no live channel) if it is someone else's."""
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        st = directory.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return False
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)  # a umask or a copy widened it: only its user may connect
    return True
