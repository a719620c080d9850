"""The kernel's shape: its modules import one another without a cycle, none is past ~400 lines,
the engine never reaches the demos, and the Runtime is the driver's Host."""

from __future__ import annotations

import ast
from pathlib import Path

from cli_helpers import ROOT

KERNEL = ROOT / "kernel"
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(KERNEL.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: list[ast.stmt]):
    """The statements that run when the module is imported: not function bodies, not
    `if TYPE_CHECKING:` blocks (never run); class bodies and other blocks do run."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, (ast.Try, ast.TryStar)):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)
        elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While, ast.ClassDef)):
            yield from _import_time_statements(node.body)
            yield from _import_time_statements(getattr(node, "orelse", []))


def import_graph() -> dict[str, set[str]]:
    """module -> the kernel modules importing it imports (its own parent packages included:
    Python imports `kernel.engine` before `kernel.engine.driver`)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        deps: set[str] = set()
        parts = name.split(".")
        deps.update(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
        for node in _import_time_statements(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # `from pkg import name`: the module pkg.name, if that is what name is.
                targets = [source, *(f"{source}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                bits = target.split(".")
                # importing a.b.c imports a and a.b first
                deps.update(".".join(bits[:i]) for i in range(1, len(bits) + 1))
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_graph_sees_relative_and_package_imports():
    graph = import_graph()
    assert "kernel.engine.driver" in graph["kernel.engine.runtime"]
    assert "kernel.registry" in graph["kernel.engine.runtime"]
    assert "kernel.engine" in graph["kernel.engine.runtime"]  # its package
    assert "kernel.engine.scopes" in graph["kernel.engine.driver"]  # `from . import scopes`
    assert "kernel.engine.driver" not in graph["kernel.engine.context"]  # only under TYPE_CHECKING


def test_a_cycle_is_found_and_named():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_kernel_imports_have_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_kernel_module_is_past_the_limit():
    long = {
        str(path.relative_to(ROOT)): n
        for path in module_files().values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules past {MAX_LINES} lines (split them): {long}"


def test_the_engine_and_the_registry_never_import_the_demos_or_a_model():
    graph = import_graph()
    for name in [n for n in graph if n.startswith("kernel.engine")] + ["kernel.registry"]:
        bad = {m for m in reaches(graph, name) if m.startswith(("kernel.demos", "kernel.agents"))}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_the_runtime_is_the_drivers_host():
    from kernel.engine.host import Host
    from kernel.engine.runtime import Runtime

    wanted = {
        name for name in vars(Host)
        if not name.startswith("_") and callable(vars(Host)[name])
    } | set(Host.__annotations__)
    assert wanted, "Host declares nothing"
    for name in sorted(wanted):
        assert name in Host.__annotations__ or callable(getattr(Runtime, name, None)), name
    # the attributes are set by Runtime.__init__
    source = (KERNEL / "engine" / "runtime.py").read_text()
    for name in Host.__annotations__:
        assert f"self.{name} = " in source, name
