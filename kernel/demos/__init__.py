"""The demo workflows, always registered: runnable with no API key."""

from __future__ import annotations

from typing import Any

__all__ = ["register_demos", "samples"]


def _modules() -> list[Any]:
    from . import deploy, research, support, triage

    return [support, research, deploy, triage]


def register_demos(registry: Any) -> None:
    for module in _modules():
        registry.add(module.graph)


def samples() -> dict[str, Any]:
    """A realistic input per demo graph."""
    return {m.graph.name: m.SAMPLE_INPUT for m in _modules()}
