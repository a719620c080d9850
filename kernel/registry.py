"""Graphs registered by name: the demo workflows always, the user's through --workflows."""

from __future__ import annotations

import importlib

from .errors import NotFound, VigilError
from .graph import Graph

__all__ = ["Registry", "default_registry"]


class Registry:
    def __init__(self) -> None:
        self._graphs: dict[str, Graph] = {}

    def add(self, graph: Graph) -> Graph:
        self._graphs[graph.name] = graph.validate()
        return graph

    def get(self, name: str) -> Graph:
        try:
            return self._graphs[name]
        except KeyError:
            known = ", ".join(sorted(self._graphs)) or "none"
            raise NotFound(f"no graph {name!r} registered (known: {known})") from None

    def __contains__(self, name: str) -> bool:
        return name in self._graphs

    def __iter__(self):
        return iter(sorted(self._graphs.values(), key=lambda g: g.name))

    def load(self, modules: str | None) -> None:
        """Import MODULE[,MODULE]; each exposes `register(registry)` or a `GRAPHS` list."""
        for name in filter(None, (m.strip() for m in (modules or "").split(","))):
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # a user's module: any import failure is one clear line
                raise VigilError(f"cannot import workflows module {name!r}: {exc}") from None
            if hasattr(module, "register"):
                module.register(self)
            for graph in getattr(module, "GRAPHS", ()):
                self.add(graph)


def default_registry(modules: str | None = None) -> Registry:
    from .demos import register_demos

    registry = Registry()
    register_demos(registry)
    registry.load(modules)
    return registry
