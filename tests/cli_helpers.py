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
