"""A headless, long-lived owner of runs (`vigil worker`): it adopts runs nobody drives - queued
ones (`vigil run --queue`) and those whose owner died - drives up to `concurrency` of them at once,
renews their leases and applies their signals (the Runtime does both), and on stop finishes the
steps in progress and releases its runs, so another worker adopts them at once.

    async with Runtime(store, registry) as rt:
        await Worker(rt, concurrency=8).run(stop_event)
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .owner import owner_alive
from .projection import RunInfo
from .runtime import Runtime

__all__ = ["Worker"]


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 16,
        graphs: set[str] | None = None,
        poll: float = 0.2,
        grace: float = 30.0,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.rt = runtime
        self.concurrency = max(1, concurrency)
        self.graphs = graphs
        self.poll = poll
        self.grace = grace
        self.say = say
        runtime.max_active = self.concurrency  # restarts (decisions, wakes) queue for a slot too
        runtime.listen(self._heard)

    def _heard(self, what: str, run_id: str, data: object) -> None:
        if what == "finished":
            self.say(f"run {run_id} {type(data).__name__ if data is not None else 'ended'}")
        elif what == "lost":
            self.say(f"run {run_id} lost: {data}")
        elif what == "interrupt":
            self.say(f"run {run_id} waits for a human: {getattr(data, 'title', '')}")

    def busy(self) -> int:
        """Runs being driven now or queued for a slot (a run waiting for a human takes none)."""
        return self.rt.active() + len(self.rt._queued)

    def _wanted(self, info: RunInfo) -> bool:
        if self.graphs is not None and info.graph not in self.graphs:
            return False
        return info.graph in self.rt.registry and not owner_alive(info.owner, info.lease_until_ns)

    async def adopt_some(self) -> list[str]:
        """Adopt orphaned runs, oldest first, while there are free slots."""
        adopted: list[str] = []
        for status in ("running", "waiting"):
            offset = 0
            while self.busy() < self.concurrency:
                batch = await self.rt.store.runs(status=status, limit=200, offset=offset, order="oldest")
                if not batch:
                    break
                offset += len(batch)
                for info in batch:
                    if self.busy() >= self.concurrency:
                        break
                    if info.run_id not in self.rt.drivers and self._wanted(info):
                        if await self.rt.adopt(info.run_id):
                            adopted.append(info.run_id)
                            self.say(f"run {info.run_id} ({info.graph}) adopted")
        return adopted

    async def run(self, stop: asyncio.Event) -> None:
        """Adopt and drive until `stop` is set; then drain and release (see Runtime.drain)."""
        while not stop.is_set():
            await self.adopt_some()
            try:
                await asyncio.wait_for(stop.wait(), self.poll)
            except asyncio.TimeoutError:
                pass
        self.say(f"stopping: finishing the steps in progress (up to {self.grace:g}s)")
        left = await self.rt.drain(self.grace)
        if left:
            self.say(f"{left} run(s) were still in a step after {self.grace:g}s; stopped mid-step")
