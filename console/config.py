"""The user's settings: the chosen theme (persisted) and remapped keys, in the config dir.

    ~/.config/vigil/config.toml     theme = "vigil-light"
    ~/.config/vigil/keys.toml       "scrubber.fork" = "ctrl+f"     (binding id = keys)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

__all__ = ["config_dir", "load_theme", "save_theme", "load_keymap"]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "vigil"


def _read(name: str) -> dict:
    path = config_dir() / name
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def load_theme() -> str | None:
    theme = _read("config.toml").get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(name: str) -> None:
    directory = config_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "config.toml.tmp"
        tmp.write_text(f'theme = "{name}"\n')
        tmp.replace(directory / "config.toml")
    except OSError:
        pass  # a read-only home must not break the console


def load_keymap() -> dict[str, str]:
    return {k: v for k, v in _read("keys.toml").items() if isinstance(v, str)}
