"""Running the real `vigil` CLI in tests (a module of its own: two conftest.py files share a name)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def vigil(*args: str, db: Path | None = None, input: bytes | None = None, timeout: float = 60):
    """Run the real `vigil` CLI in a subprocess."""
    env = dict(os.environ)
    if db is not None:
        env["VIGIL_DB"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "console.cli", *args],
        cwd=ROOT,
        env=env,
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def rest_of(proc: subprocess.Popen, timeout: float = 60) -> tuple:
    """(stdout, stderr) from here to the process's exit, after some readline() calls on it.

    Not communicate(timeout=...): that reads the pipes' file descriptors directly, so whatever a
    readline() had already buffered past its line is lost (seen: a tail's first 8 rows missing
    when the reader printed them before the test read its "ready" line)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        out = pool.submit(proc.stdout.read) if proc.stdout else None
        err = pool.submit(proc.stderr.read) if proc.stderr else None
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        return (out.result() if out else None), (err.result() if err else None)
