"""Built-in colour themes as data files (TOML), turned into Textual themes by the console."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

__all__ = ["load_themes", "DEFAULT"]

DEFAULT = "vigil-dark"


def load_themes() -> list[dict[str, Any]]:
    """Every themes/*.toml as a dict of Theme fields, in name order."""
    out = []
    for path in sorted(Path(__file__).parent.glob("*.toml")):
        with path.open("rb") as f:
            out.append(tomllib.load(f))
    return out
