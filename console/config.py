"""The user's settings: the chosen theme (persisted) and remapped keys, in the config dir.

    ~/.config/vigil/config.toml     theme = "vigil-light"
    ~/.config/vigil/keys.toml       "scrubber.fork" = "ctrl+f"     (binding id = keys)

A file that does not parse, or a value of the wrong type, never stops the console: the loaders
return what they could use and, beside it, one readable sentence per problem for a notice.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

__all__ = ["config_dir", "load_theme", "save_theme", "load_keymap"]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "vigil"


def _read(name: str, fallback: str) -> tuple[dict, list[str]]:
    path = config_dir() / name
    try:
        with path.open("rb") as f:
            return tomllib.load(f), []
    except FileNotFoundError:
        return {}, []
    except tomllib.TOMLDecodeError as exc:
        # the message carries "(at line N, column M)"
        return {}, [f"{path} is not valid TOML: {exc}; {fallback}"]
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [f"cannot read {path}: {exc}; {fallback}"]


def load_theme() -> tuple[str | None, list[str]]:
    data, problems = _read("config.toml", "using the default settings")
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        problems.append(f"{config_dir() / 'config.toml'}: theme must be a name in quotes; using the default theme")
        theme = None
    return theme, problems


def save_theme(name: str) -> None:
    directory = config_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "config.toml.tmp"
        tmp.write_text(f'theme = "{name}"\n')
        tmp.replace(directory / "config.toml")
    except OSError:
        pass  # a read-only home must not break the console


def load_keymap() -> tuple[dict[str, str], list[str]]:
    """Binding id -> keys, and the problems (each entry that is not "id" = "keys" is skipped)."""
    data, problems = _read("keys.toml", "using the default keys")
    keymap: dict[str, str] = {}
    for binding_id, keys in data.items():
        if isinstance(keys, str) and keys.strip():
            keymap[binding_id] = keys.replace(" ", "")
        else:
            problems.append(f'{config_dir() / "keys.toml"}: "{binding_id}" must be keys in quotes, '
                            f'like "z" or "ctrl+f,f2"; ignored')
    return keymap, problems
