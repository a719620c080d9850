"""The demo workflows, always registered: runnable with no API key."""

from __future__ import annotations


def register_demos(registry) -> None:
    pass
