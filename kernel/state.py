"""State is the fold of patches. No graph code is needed to rebuild it at any seq."""

from __future__ import annotations

from typing import Any, Iterable

from .codec import canonical_hash
from .errors import PatchError
from .events import Patch, RunStarted, StepCompleted

__all__ = ["PatchError", "apply", "fold", "state_hash", "STATE_TYPES"]

# Only these event types change state; readers filter on them in SQL to skip decoding the rest.
STATE_TYPES = ("RunStarted", "StepCompleted")


def apply(state: dict[str, Any], patches: Iterable[Patch]) -> None:
    for p in patches:
        op, key, value = p.op, p.key, p.value
        if op == "set":
            # A shallow copy, so later appends never mutate the value held by the event.
            cls = type(value)
            state[key] = value.copy() if cls is list or cls is dict else value
        elif op == "append" or op == "extend":
            current = state.get(key)
            if current is None:
                current = state[key] = []
            elif type(current) is not list:
                raise PatchError(f"{op} to {key!r}, which holds a {type(current).__name__}")
            if op == "append":
                current.append(value)
            else:
                try:
                    current.extend(value)
                except TypeError:  # a log written by hand, or by a bug: named, never a traceback
                    raise PatchError(f"extend of {key!r} with a {type(value).__name__}, not a list") from None
        elif op == "merge":
            current = state.get(key)
            if current is None:
                current = state[key] = {}
            elif type(current) is not dict:
                raise PatchError(f"merge into {key!r}, which holds a {type(current).__name__}")
            try:
                current.update(value)
            except (TypeError, ValueError):
                raise PatchError(f"merge into {key!r} of a {type(value).__name__}, not a mapping") from None
        elif op == "delete":
            state.pop(key, None)
        else:  # pragma: no cover - the decoder only admits the ops above
            raise PatchError(f"unknown patch op {op!r}")


def fold(state: dict[str, Any], event: Any) -> None:
    """Apply one decoded event to `state` in place; events that do not change state are ignored."""
    if type(event) in _FOLDED:
        apply(state, event.update)


_FOLDED = frozenset({StepCompleted, RunStarted})


def state_hash(state: dict[str, Any]) -> str:
    return canonical_hash(state)
