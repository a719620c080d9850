"""The event log: the port (port.py), what every backend's reader shares (folding.py), and the
backends (sqlite/, postgres/). Nothing here is imported until a log is opened."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["target_of"]


def target_of(value: str | os.PathLike | None) -> str | Path:
    """What `--db` / VIGIL_DB names: a PostgreSQL URL as given, else a SQLite path (`sqlite:`
    prefix optional); none means the default SQLite file."""
    from .port import is_postgres

    if value is None or value == "":
        from .sqlite.schema import default_path

        return default_path()
    if is_postgres(value):
        return str(value)
    text = os.fspath(value)
    if text.startswith("sqlite:"):
        text = text.removeprefix("sqlite:").removeprefix("//")
    return Path(text)
