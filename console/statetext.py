"""The scrubber's detail as text: a value pretty-printed, the change between two states, and
long documents cut (saying so)."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from kernel.codec import short

__all__ = ["capped", "pretty", "diff_lines"]

_json = msgspec.json.Encoder()
_json_format = msgspec.json.format


def capped(lines: list[str], limit: int = 5000) -> list[str]:
    """Long documents are cut, saying so; never silently."""
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"… cut at {limit} lines: `vigil state RUN --at SEQ` prints all of it"]


def pretty(value: Any) -> str:
    # msgspec's formatter, not json.dumps(indent=2): the same text (keys in order, non-ASCII kept)
    # but in C; json.dumps indents in pure Python, 50 ms for a 1 MB state at every cursor move.
    # (Floats with an exponent print as 1e20, not 1e+20.)
    try:
        return _json_format(_json.encode(value), indent=2).decode()
    except (TypeError, ValueError, OverflowError):  # what msgspec cannot encode (huge ints, ...)
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def diff_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed at the top level and one level into dicts and lists, as readable lines."""
    out: list[str] = []
    for key in list(before) + [k for k in after if k not in before]:
        if key not in after:
            out.append(f"- {key}")
        elif key not in before:
            out.append(f"+ {key}: {short(after[key], 120)}")
        elif before[key] != after[key]:
            old, new = before[key], after[key]
            if isinstance(old, list) and isinstance(new, list) and new[: len(old)] == old:
                for item in new[len(old):]:
                    out.append(f"+ {key}[]: {short(item, 120)}")
            elif isinstance(old, dict) and isinstance(new, dict):
                for sub in set(old) | set(new):
                    if old.get(sub, _MISSING) != new.get(sub, _MISSING):
                        out.append(f"~ {key}.{sub}: {short(old.get(sub), 120)} → {short(new.get(sub), 120)}")
            else:
                out.append(f"~ {key}: {short(old, 120)} → {short(new, 120)}")
    return out


_MISSING = object()

