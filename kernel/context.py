"""`ctx`: the only door from a node to the world. Every call is a recorded action with a
deterministic id (step id + call index, taken when the call is made), so re-executing the node
returns what was recorded instead of running the effect again."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any, Callable

from .tools import Tool, ToolRejected

if TYPE_CHECKING:  # pragma: no cover
    from .driver import RunDriver

__all__ = ["Ctx"]


class Ctx:
    def __init__(self, driver: "RunDriver", step_id: str, node: str, attempt: int) -> None:
        self._driver = driver
        self.run_id = driver.run_id
        self.step_id = step_id
        self.node = node
        self.attempt = attempt
        self._calls = 0

    def _next_id(self) -> str:
        action_id = f"{self.step_id}#{self._calls}"
        self._calls += 1
        return action_id

    async def tool(self, tool: Tool | str, /, **args: Any) -> Any:
        """Run a tool of this graph, asking a human first if it needs approval."""
        spec = self._driver.tool(tool)
        args = spec.validate(args)  # ToolInputError goes back to the caller, unrecorded
        action_id = self._next_id()
        effective = await self._driver.approve(self, action_id, spec, args)
        key = f"{self.run_id}:{action_id}"
        return await self._driver.effect(
            self, action_id, "tool", spec.name, effective,
            lambda: spec(effective, key), idempotent=spec.idempotent, key=key,
        )

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

    async def child(self, graph: str, input: Any = None, *, labels: dict[str, str] | None = None) -> Any:
        """Start a child run (with lineage) and return its output when it completes."""
        return await self._driver.child(self, self._next_id(), graph, input, labels or {})


def _async(fn: Callable[[], Any]) -> Callable[[], Any]:
    async def call() -> Any:
        return fn()

    return call
