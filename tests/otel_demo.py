"""One log of real demo runs per test process, shared by the otel test modules (read-only there):
the demo takes seconds, and the export and follow tests only read it."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from cli_helpers import vigil


@functools.cache
def demo_log() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="vigil-otel-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    db = folder / "vigil.db"
    out = vigil("demo", "--headless", "--approve", "all", db=db)
    assert out.returncode == 0, out.stderr
    return db
