"""Graphs registered by name. Which ones is the caller's choice: the CLI adds the demos
(console/workflows.py), a user's module is loaded by name or path."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import NotFound, VigilError
from .graph import Graph

__all__ = ["Registry"]


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
        """Import MODULE[,MODULE] (a module name, or a path to a .py file); each exposes
        `register(registry)` or a `GRAPHS` list."""
        for name in filter(None, (m.strip() for m in (modules or "").split(","))):
            try:
                module = _import(name)
            except VigilError:
                raise
            except Exception as exc:  # a user's module: any import failure is one clear line
                raise VigilError(f"cannot import workflows module {name!r}: {exc}") from None
            try:
                if hasattr(module, "register"):
                    module.register(self)
                for graph in getattr(module, "GRAPHS", ()):
                    self.add(graph)
            except Exception as exc:  # the user's code again: one clear line, not a traceback
                raise VigilError(
                    f"workflows module {name!r} failed to register its graphs: "
                    f"{type(exc).__name__}: {exc}"
                ) from None


def _import(name: str) -> ModuleType:
    """A module by name (found from the current directory too, as `python -m` would) or by the
    path of its file (`./flows.py`; its directory is searched for what it imports)."""
    if name.endswith(".py") or os.sep in name:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise VigilError(f"cannot import workflows file {name!r}: no such file")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        module_name = f"vigil_workflows_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise VigilError(f"cannot import workflows file {name!r}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    return importlib.import_module(name)

