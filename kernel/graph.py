"""Agent graphs: nodes, static / conditional / join edges, per-key reducers, validation.

    g = Graph("support", version="2", reducers={"messages": "extend"})
    g.add_node("classify", classify)
    g.add_edge(START, "classify")
    g.add_branch("classify", route, targets=["refund", "reply"])
    g.add_edge(["search_a", "search_b"], "summarise")   # a join: waits for both
"""

from __future__ import annotations

import inspect

import msgspec
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Literal

from .errors import GraphError
from .events import Patch

__all__ = ["START", "END", "DELETE", "Graph", "GraphError", "RetryPolicy", "Node", "Reducer"]

START = "__start__"
END = "__end__"

Reducer = Literal["replace", "append", "extend", "merge"]
_REDUCER_OPS = {"replace": "set", "append": "append", "extend": "extend", "merge": "merge"}


class _Delete:
    """`return {"draft": DELETE}` removes the key from the state, whatever its reducer."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()
NodeFn = Callable[[dict[str, Any], Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing node is retried. The wait is a durable timer, recorded in StepFailed."""

    attempts: int = 3
    backoff: Literal["fixed", "exponential"] = "exponential"
    initial: float = 0.5
    maximum: float = 30.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds before attempt `attempt + 1`; `rand` in [0, 1) gives the jitter."""
        base = self.initial if self.backoff == "fixed" else self.initial * 2 ** (attempt - 1)
        base = min(base, self.maximum)
        return base * (0.5 + rand) if self.jitter else base


@dataclass
class Node:
    name: str
    fn: NodeFn
    retry: RetryPolicy | None = None


@dataclass
class _Branch:
    fn: Callable[[dict[str, Any]], str | list[str]]
    targets: tuple[str, ...]


@dataclass
class Graph:
    name: str
    version: str = "1"
    reducers: dict[str, Reducer] = field(default_factory=dict)
    step_limit: int = 100
    description: str = ""
    tools: list[Any] = field(default_factory=list)  # the Tools its nodes call, for `vigil graphs`
    # What a run's input must be: a msgspec Struct type, or {field: type} (all required unless
    # given as (type, default)). Unknown fields are refused too: a typo is an error, not a
    # KeyError inside a node later.
    input_schema: Any = None
    # At most this many nodes of one superstep run at once (fan-out to 50 searches, say); the
    # rest wait for a slot before they start. None: all of them. See kernel.limits.
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.edges: dict[str, list[str]] = {}
        self.branches: dict[str, _Branch] = {}
        self.joins: dict[str, frozenset[str]] = {}  # target -> the sources it waits for
        self._duplicates: list[str] = []
        self._input_type: Any = None

    # building --------------------------------------------------------------------------

    def check_input(self, value: Any) -> Any:
        """`value` converted to the declared input (as plain data), or GraphError saying why."""
        if self.input_schema is None:
            return value
        if self._input_type is None:
            schema = self.input_schema
            if isinstance(schema, dict):
                fields = [(k, *v) if isinstance(v, tuple) else (k, v) for k, v in schema.items()]
                schema = msgspec.defstruct(f"{self.name}_input", fields, kw_only=True, forbid_unknown_fields=True)
            self._input_type = schema
        if value is None:
            value = {}
        try:
            return msgspec.to_builtins(msgspec.convert(value, self._input_type))
        except (msgspec.ValidationError, UnicodeError) as exc:  # UnicodeError: lone surrogates
            raise GraphError(f"input for graph {self.name!r}: {exc}") from None

    def add_node(self, name: str, fn: NodeFn, *, retry: RetryPolicy | None = None) -> "Graph":
        if name in self.nodes or name in (START, END):
            self._duplicates.append(name)
        if not inspect.iscoroutinefunction(fn):
            raise GraphError(f"node {name!r}: must be an async function (state, ctx) -> update")
        self.nodes[name] = Node(name, fn, retry)
        return self

    def node(self, name: str | None = None, *, retry: RetryPolicy | None = None):
        """Decorator form of add_node."""

        def register(fn: NodeFn) -> NodeFn:
            self.add_node(name or fn.__name__, fn, retry=retry)
            return fn

        return register

    def add_edge(self, source: str | Iterable[str], target: str) -> "Graph":
        if isinstance(source, str):
            self.edges.setdefault(source, []).append(target)
            return self
        sources = frozenset(source)
        self.joins[target] = sources
        for s in sources:
            self.edges.setdefault(s, []).append(target)
        return self

    def add_branch(
        self, source: str, fn: Callable[[dict[str, Any]], str | list[str]], targets: Iterable[str]
    ) -> "Graph":
        """A conditional edge: `fn(state)` names the next node(s) among `targets` (or END)."""
        self.branches[source] = _Branch(fn, tuple(targets))
        return self

    # running ---------------------------------------------------------------------------

    def successors(self, node: str, state: dict[str, Any]) -> tuple[str, ...]:
        """Where `node` leads, given the state after it ran."""
        out = list(self.edges.get(node, ()))
        branch = self.branches.get(node)
        if branch is not None:
            chosen = branch.fn(state)
            chosen = [chosen] if isinstance(chosen, str) else list(chosen)
            for c in chosen:
                if c not in branch.targets:
                    raise GraphError(
                        f"branch after {node!r} chose {c!r}, not one of {list(branch.targets)}"
                    )
            out.extend(chosen)
        return tuple(dict.fromkeys(out))

    def patches(self, update: dict[str, Any] | None) -> tuple[Patch, ...]:
        """A node's update as generic patch operations, through each key's reducer."""
        if not update:
            return ()
        if not isinstance(update, dict):
            raise GraphError(f"a node must return a dict or None, not {type(update).__name__}")
        return tuple(
            Patch("delete", key, None) if value is DELETE
            else Patch(_REDUCER_OPS[self.reducers.get(key, "replace")], key, value)
            for key, value in update.items()
        )

    # validation ------------------------------------------------------------------------

    def validate(self) -> "Graph":
        if not self.nodes:
            raise GraphError(f"graph {self.name!r} has no nodes")
        m = self.max_concurrency
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise GraphError(f"graph {self.name!r}: max_concurrency must be a whole number of at least 1, not {m!r}")
        if self._duplicates:
            raise GraphError(f"graph {self.name!r}: duplicate node {self._duplicates[0]!r}")
        known = set(self.nodes) | {START, END}
        for source, targets in self._all_edges():
            if source not in known:
                raise GraphError(f"graph {self.name!r}: edge from missing node {source!r}")
            for t in targets:
                if t not in known or t == START:
                    raise GraphError(
                        f"graph {self.name!r}: edge {source!r} -> {t!r} goes to a missing node"
                    )
        if not self.edges.get(START) and START not in self.branches:
            raise GraphError(f"graph {self.name!r}: nothing follows START")
        reachable = self._reach(START, forward=True)
        for name in self.nodes:
            if name not in reachable:
                raise GraphError(f"graph {self.name!r}: node {name!r} is unreachable from START")
        if END not in reachable:
            raise GraphError(f"graph {self.name!r}: no path reaches END")
        reaches_end = self._reach(END, forward=False)
        for name in self.nodes:
            if name not in reaches_end:
                raise GraphError(
                    f"graph {self.name!r}: node {name!r} has no path to END "
                    "(a cycle with no conditional exit)"
                )
        return self

    def _all_edges(self) -> list[tuple[str, tuple[str, ...]]]:
        out = [(s, tuple(t)) for s, t in self.edges.items()]
        out += [(s, b.targets) for s, b in self.branches.items()]
        return out

    def _reach(self, origin: str, *, forward: bool) -> set[str]:
        adjacency: dict[str, set[str]] = {}
        for source, targets in self._all_edges():
            for t in targets:
                a, b = (source, t) if forward else (t, source)
                adjacency.setdefault(a, set()).add(b)
        seen, todo = {origin}, [origin]
        while todo:
            for nxt in adjacency.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen
