"""`Secret`: a value a node hands to a tool that the log only ever sees as `[REDACTED:<kind>]`.

    await ctx.tool("call_api", url=url, api_key=Secret(os.environ["OPENAI_API_KEY"]))

The tool's function receives the plain string. Everything recorded (the ActionRequested input, an
approval's payload, state) holds the marker instead, so the approver sees that a secret is there
and which kind, and a replay hashes the same marker and stays in step. A Secret never prints,
formats or pickles its value; `reveal()` is the one way to it.
"""

from __future__ import annotations

import hmac
from typing import Any

__all__ = ["Secret", "reveal", "unwrap", "rewrap", "restore"]


class Secret:
    __slots__ = ("_value", "kind")

    def __init__(self, value: str, kind: str | None = None) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        from .redact import kind_of  # redact imports this module; import late

        self._value = value
        # Computed once: the marker (and so every hash of it) never changes for this value.
        self.kind = kind or kind_of(value) or "secret"
        if kind_of(self.marker) is not None:  # a kind that reads as a secret would be redacted
            self.kind = "secret"               # again on the next pass: markers must be final

    @property
    def marker(self) -> str:
        return f"[REDACTED:{self.kind}]"

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.marker})"

    def __str__(self) -> str:
        return self.marker

    def __format__(self, spec: str) -> str:
        return format(self.marker, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled (its value would be written out)")

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self


def reveal(value: Any) -> Any:
    """`value` with every Secret in it replaced by its plain string (what a tool runs with)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        out = [reveal(v) for v in value]
        return tuple(out) if isinstance(value, tuple) else out
    return value


Path = tuple  # of dict keys and list indexes


def unwrap(value: Any, path: Path = ()) -> tuple[Any, list[tuple[Path, Secret]]]:
    """`value` revealed, and where its Secrets were, so they can be put back after a
    conversion that only understands plain values (a tool's argument validation)."""
    found: list[tuple[Path, Secret]] = []

    def walk(v: Any, p: Path) -> Any:
        if isinstance(v, Secret):
            found.append((p, v))
            return v.reveal()
        if isinstance(v, dict):
            return {k: walk(x, p + (k,)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, p + (i,)) for i, x in enumerate(v)]
        return v

    return walk(value, path), found


def rewrap(value: Any, found: list[tuple[Path, Secret]]) -> Any:
    """Put each Secret back where `unwrap` found it, if the converted value there is still its."""
    for path, secret in found:
        parent = value
        try:
            for step in path[:-1]:
                parent = parent[step]
            if parent[path[-1]] == secret.reveal():
                parent[path[-1]] = secret
        except (KeyError, IndexError, TypeError):
            continue
    return value


def restore(edited: Any, original: Any, key: Any = None) -> Any:
    """Edited tool arguments with each part the approver left as shown (markers and all) put
    back to the value it stood for: editing one field must not run the tool with `[REDACTED:...]`
    in another. The comparison is with the recorded form, so it is the same on replay."""
    from .redact import recordable

    shown = recordable(original) if key is None else recordable({key: original})[key]
    if shown == edited:
        return original
    if isinstance(edited, dict) and isinstance(original, dict):
        return {k: restore(v, original[k], k) if k in original else v for k, v in edited.items()}
    if isinstance(edited, list) and isinstance(original, (list, tuple)):
        return [restore(v, original[i]) if i < len(original) else v for i, v in enumerate(edited)]
    return edited
