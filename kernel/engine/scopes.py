"""Call positions that do not depend on timing.

A ctx call's id is its position in the node's code. A single counter per node is not enough once
a node starts tasks (`asyncio.gather`, a task group): live, a call waits for its commit and the
other task moves first; replayed, it returns at once and the same task moves first, so the
interleaving - and a shared counter - differs. So every task a node starts gets a scope of its
own, numbered in the order the parent created it (creation order is the parent's own code, so it
is the same on every replay): calls are `#0, #1` in the node, `#t0.0, #t0.1` in its first task,
`#t0.t1.0` in that task's second task.

The loop's task factory assigns the scope when a task is created under one, and remembers the
task so the driver can settle it when the node stops (a sibling must never outlive its step).
Code that runs an effect (the tool itself, a model client) runs with no scope: tasks it starts
live do not exist on replay and must not take numbers.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Coroutine

__all__ = ["Scope", "current", "enter", "leave", "detached", "install", "outside", "inline"]

_current: contextvars.ContextVar["Scope | None"] = contextvars.ContextVar("vigil_scope", default=None)


class Scope:
    __slots__ = ("owner", "prefix", "_calls", "_tasks")

    def __init__(self, owner: Any, prefix: str = "") -> None:
        self.owner = owner  # the Ctx: it keeps the tasks started under it
        self.prefix = prefix
        self._calls = 0
        self._tasks = 0

    def next_call(self) -> str:
        position = f"{self.prefix}{self._calls}"
        self._calls += 1
        return position

    def child(self) -> "Scope":
        scope = Scope(self.owner, f"{self.prefix}t{self._tasks}.")
        self._tasks += 1
        return scope


def current() -> Scope | None:
    return _current.get()


def enter(scope: Scope | None) -> contextvars.Token:
    return _current.set(scope)


def leave(token: contextvars.Token) -> None:
    _current.reset(token)


def outside() -> contextvars.Token:
    """Run what follows with no scope (an effect's own code); undo with leave()."""
    return _current.set(None)


async def inline(coro: Coroutine) -> Any:
    """Await `coro` as if it were a task started here, without the task: it runs in the scope
    such a task would get, so its calls take the same positions (a log recorded either way
    replays either way). A task costs two turns of the loop (one to start, one to hand its
    result back), and under load each turn queues the run behind every other ready run."""
    scope = _current.get()
    if scope is None:
        return await coro
    token = _current.set(scope.child())
    try:
        return await coro
    finally:
        _current.reset(token)


def detached() -> contextvars.Context:
    """A context for a task that belongs to no node (a run's driver, a chore)."""
    ctx = contextvars.copy_context()
    ctx.run(_current.set, None)
    return ctx


def install(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Number the tasks nodes start (idempotent; keeps a task factory already set)."""
    loop = loop or asyncio.get_running_loop()
    previous = loop.get_task_factory()
    if getattr(previous, "_vigil", False):
        return

    def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine, **kw: Any) -> asyncio.Future:
        context = kw.pop("context", None)
        if context is None:
            context = contextvars.copy_context()
        scope = context.get(_current)
        if scope is not None:
            context.run(_current.set, scope.child())
        if previous is not None:
            task = previous(loop, coro, context=context, **kw)
        else:
            task = asyncio.Task(coro, loop=loop, context=context, **kw)
        if scope is not None:
            scope.owner._started(task)
        return task

    factory._vigil = True  # type: ignore[attr-defined]
    loop.set_task_factory(factory)
