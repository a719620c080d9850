"""The graphs the `vigil` CLI and console serve: the demo workflows, then the user's --workflows.

Registering the demos is the CLI's choice, not the kernel's: `kernel.registry` knows no workflow,
so embedding the runtime never imports them.
"""

from __future__ import annotations

from kernel.demos import register_demos
from kernel.registry import Registry

__all__ = ["default_registry"]


def default_registry(modules: str | None = None) -> Registry:
    registry = Registry()
    register_demos(registry)
    registry.load(modules)
    return registry
