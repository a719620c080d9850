"""`ctx`: the only door from a node to the world. Every call is a recorded action with a
deterministic id (step id + its position, see kernel.engine.scopes), so re-executing the node returns
what was recorded instead of running the effect again."""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any, Callable

from . import scopes
from .artifacts import record_artifact
from ..errors import ToolRejected
from ..tools import Tool

if TYPE_CHECKING:  # pragma: no cover
    from ..artifacts import ArtifactRef
    from .driver import RunDriver

__all__ = ["Ctx"]


class Ctx:
    def __init__(self, driver: "RunDriver", step_id: str, node: str, attempt: int) -> None:
        self._driver = driver
        self.run_id = driver.run_id
        self.step_id = step_id
        self.node = node
        self.attempt = attempt
        self.root = scopes.Scope(self)
        self.consumed: set[str] = set()  # call positions this execution made
        self.suspended = False  # set by the driver, so `except Exception` cannot hide it
        self.diverged: BaseException | None = None
        self.tasks: list[asyncio.Task] = []

    def _next_id(self) -> str:
        scope = scopes.current()
        if scope is None or scope.owner is not self:
            scope = self.root
        return f"{self.step_id}#{scope.next_call()}"

    def _started(self, task: asyncio.Task) -> None:
        self.tasks.append(task)

    async def settle(self, cancel: bool) -> None:
        """Wait for every task this node started (cancelling them first if asked): a step
        ends - done, suspended, failed or cancelled - only when nothing of it still runs."""
        cancelled = False
        while pending := [t for t in self.tasks if not t.done()]:
            if cancel or cancelled:
                for task in pending:
                    task.cancel()
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled = True
        for task in self.tasks:
            if not task.cancelled():
                task.exception()  # retrieved: its error already reached the node, or is moot
        if cancelled:
            raise asyncio.CancelledError

    async def tool(self, tool: Tool | str, /, **args: Any) -> Any:
        """Run a tool of this graph, asking a human first if it needs approval."""
        spec = self._driver.tool(tool)
        args = spec.validate(args)  # ToolInputError goes back to the caller, unrecorded
        return await self._driver.call_tool(self, self._next_id(), spec, args)

    async def llm(
        self,
        model: Any,
        messages: list[dict[str, Any]],
        *,
        tools: list[Tool] | None = None,
    ) -> dict[str, Any]:
        """One model call: the assistant message, with any tool calls, recorded once."""
        action_id = self._next_id()
        specs = [t.spec() for t in tools or ()]
        signature = self._driver.llm_signature(messages, specs)
        on_token = self._driver.token_sink(action_id)
        return await self._driver.effect(
            self, action_id, "llm", model.name, signature,
            lambda: model.complete(messages, specs, on_token), idempotent=True,
            limit=getattr(model, "limit", None),  # a provider's line (kernel.limits)
        )

    async def interrupt(
        self, title: str, payload: Any = None, *, kind: str = "input"
    ) -> Any:
        """Suspend this branch until a human answers; returns the answer (its `value`)."""
        resolution = await self._driver.interrupt(self, self._next_id(), kind, title, payload)
        if resolution.decision == "reject":
            raise ToolRejected(str(resolution.value or "rejected"))
        return resolution.value

    async def sleep(self, seconds: float) -> None:
        """A durable timer: after a restart the run wakes when it was due, not later."""
        action_id = self._next_id()
        due = time.time_ns() + int(seconds * 1e9)
        await self._driver.effect(
            self, action_id, "sleep", "sleep", {"seconds": seconds},
            None, idempotent=True, due_ns=due,
        )

    async def now(self) -> float:
        """Wall-clock seconds, recorded: a replay sees the same time."""
        ns = await self._driver.effect(
            self, self._next_id(), "clock", "now", None, _async(time.time_ns), idempotent=True
        )
        return ns / 1e9

    async def random(self) -> float:
        """A float in [0, 1), recorded: a replay sees the same number."""
        return await self._driver.effect(
            self, self._next_id(), "random", "random", None, _async(random.random), idempotent=True
        )

    def note(self, name: str, payload: Any = None) -> None:
        """Record a domain event (a Note) in the run's log: what the node decided or found.
        Not awaited: it is queued in order with the step's other appends. Redacted like every
        event, left out of the state, and made once per call position (a replay notes nothing)."""
        if not isinstance(name, str) or not name:
            raise ValueError("a note needs a name (a non-empty str)")
        self._driver.note(self, self._next_id(), name, payload)

    async def artifact(self, data: bytes, kind: str) -> "ArtifactRef":
        """Store bytes (a report, a file) in the log, content-addressed; recorded once, so a
        replay returns the same reference without storing or recording it again."""
        return await record_artifact(self._driver, self, self._next_id(), data, kind)

    async def child(self, graph: str, input: Any = None, *, labels: dict[str, str] | None = None) -> Any:
        """Start a child run (with lineage) and return its output when it completes."""
        return await self._driver.child(self, self._next_id(), graph, input, labels or {})


def _async(fn: Callable[[], Any]) -> Callable[[], Any]:
    async def call() -> Any:
        return fn()

    return call
