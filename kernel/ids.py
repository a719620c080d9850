"""Run ids: sortable by creation time, short enough to type a prefix of."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_run_id"]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase


def _b32(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def new_run_id() -> str:
    """9 characters of milliseconds since the epoch, then 5 random ones."""
    return _b32(time.time_ns() // 1_000_000, 9) + _b32(secrets.randbits(25), 5)
