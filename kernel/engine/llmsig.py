"""What an llm action records as its input, computed turn by turn.

The signature is the new message and a hash of the whole conversation, redacted: its definition
(`canonical_hash(recordable(messages))`, sha256 over sorted-key JSON) is what replay compares, so
it cannot change. Redacting the whole conversation on every turn made a run's cost grow with the
square of its turns (15% of a busy worker's CPU at 1,000 runs); each message is redacted once
here and its JSON kept, and the hash is taken over the kept pieces (the canonical JSON of a list
is `[` + its items' JSON joined by `,` + `]`), which is the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..codec import _canonical
from ..redact import recordable

__all__ = ["Signatures"]


class Signatures:
    """One per run driver: the conversation seen so far, each message as given (its canonical
    JSON, to notice an edit or a different history) and as recorded."""

    def __init__(self) -> None:
        self._given: list[bytes] = []
        self._recorded: list[Any] = []
        self._pieces: list[bytes] = []

    def of(self, messages: list[dict], specs: list[dict]) -> dict[str, Any]:
        given = [_canonical.encode(m) for m in messages]  # C, no walk in Python
        k = 0
        while k < len(given) and k < len(self._given) and given[k] == self._given[k]:
            k += 1
        del self._given[k:], self._recorded[k:], self._pieces[k:]
        for m, raw in zip(messages[k:], given[k:]):
            clean = recordable(m)
            self._given.append(raw)
            self._recorded.append(clean)
            self._pieces.append(_canonical.encode(clean))
        return {
            "messages": len(messages),
            "last": self._recorded[-1] if messages else None,
            "hash": hashlib.sha256(b"[" + b",".join(self._pieces) + b"]").hexdigest(),
            "tools": [s["name"] for s in specs],
        }
