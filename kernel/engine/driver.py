"""Drives one run: supersteps of concurrent nodes, effects recorded before they run and replayed
after, interrupts that suspend one branch, retries on durable timers.

Everything a driver knows it folds from its own appends (`emit`) or, after a restart, from the
log; nothing else survives a crash, and nothing else needs to. What it needs of the process
hosting it is a Host (host.py), nothing more.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable

from . import scopes
from ..errorinfo import classify, info
from ..errors import Failed, Lost, StepDiverged
from ..events import RunCompleted, RunDiverged, RunFailed
from ..graph import Graph
from .appends import Appends
from .effects import Effects, error_text
from .llmsig import Signatures
from .runview import RunView, clone
from .supersteps import Supersteps

if TYPE_CHECKING:  # pragma: no cover
    from .host import Host

__all__ = ["RunDriver"]


class RunDriver(Appends, Supersteps, Effects):
    def __init__(self, host: Host, graph: Graph, view: RunView) -> None:
        self.host = host
        self.store = host.store
        self.graph = graph
        self.view = view
        self.run_id = view.run_id
        self.task: asyncio.Task | None = None
        self._wake = False
        self._tools = {t.name: t for t in graph.tools}
        self._position: tuple[int, list[str], dict[str, set[str]]] | None = None
        self._last: asyncio.Future[int] | None = None
        self._started: asyncio.Future[int] | None = None  # RunStarted, when this process made it
        self._error: BaseException | None = None
        # when a stretch without the loop going round has been busy long enough (_busy_window)
        self._busy_cpu = self._busy_wall = 0.0
        self._went_round = True
        self._signatures = Signatures()  # the conversation redacted once, not on every turn

    def start(self) -> None:
        if self.task is None or self.task.done():
            if not self.host.may_drive(self):
                return  # the host is at its limit: it starts this run when a slot frees
            self._wake = False
            scopes.install()
            # Detached: started from inside a node (a child run) it must take no call position.
            self.task = asyncio.create_task(
                self._drive(), name=f"vigil-run-{self.run_id}", context=scopes.detached()
            )
            self.task.add_done_callback(self.host.slot_freed)
        else:
            self._wake = True  # a branch was resolved while others still run: go round again

    async def _drive(self) -> None:
        try:
            try:
                await self._steps()
            except (Lost, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a bug, or a log this code cannot follow: say so in the log
                if self.view.terminal is None and self._error is None:
                    self.post(RunFailed(
                        error=f"the driver stopped: {error_text(exc)}", error_info=classify(exc),
                    ))
            await self.flush()
        except Lost as exc:
            self.host.lost(self.run_id, str(exc))
            return
        if self.view.terminal is not None:
            self.host.finished(self)

    async def _steps(self) -> None:
        try:
            while self.view.terminal is None:
                if self.host.draining or self.view.paused:
                    return  # the process is stopping, or a human paused the run: resumable as is
                n, pending = self._where()
                if pending is None:
                    self.post(RunCompleted(output=clone(self.view.state)))
                    return
                if n > self.graph.step_limit:
                    message = f"step limit {self.graph.step_limit} reached"
                    # The graph's own limit stopped it, not a fault: a policy, like a rejection.
                    self.post(RunFailed(error=message, error_info=info("step_limit", "policy", message)))
                    return
                if time.thread_time() > self._busy_cpu or time.perf_counter() > self._busy_wall:
                    # A step boundary after 5 ms without a pause: nodes that never await must
                    # not starve the loop, so a cancel or a signal gets its turn here. A driver
                    # that did wait (a model call, a commit) has let the loop go round already:
                    # a yield then would only queue the run behind every other run's work once
                    # more, in the middle of its step overhead (bench/NOTES.md, engine).
                    if not self._went_round:
                        await asyncio.sleep(0)
                    self._busy_window()
                suspended = await self._superstep(n, pending)
                if suspended:
                    if self._wake:
                        self._wake = False
                        continue
                    return
        except StepDiverged as d:
            self.post(RunDiverged(step_id=d.inner.step_id, error=str(d.inner)))
        except Failed as f:
            self.post(RunFailed(error=f.message, error_info=f.info or info("failed", "internal", f.message)))

    def _busy_window(self) -> None:
        """Start a window of allowed busy time; a callback queued now runs only once this task
        has let the loop go round (it cannot while the driver runs), which marks the window idle.
        5 ms of the thread's CPU, not of the wall clock: a process the OS did not schedule for
        5 ms (a loaded machine) has starved nobody, and a yield then costs the run a whole round
        of the loop. And 50 ms of the wall clock, for nodes that block the thread without using
        it (time.sleep, a sync HTTP call)."""
        self._busy_cpu = time.thread_time() + 0.005
        self._busy_wall = time.perf_counter() + 0.05
        self._went_round = False
        asyncio.get_running_loop().call_soon(self._round_done)

    def _round_done(self) -> None:
        self._went_round = True

    # what nodes see of the driver ------------------------------------------------------

    def llm_signature(self, messages: list[dict], specs: list[dict]) -> dict[str, Any]:
        """What an llm action records as its input: the new message and a hash of them all (the
        conversation is in the state already; recording it whole on every turn would grow the
        log with the square of the turns)."""
        return self._signatures.of(messages, specs)

    def token_sink(self, action_id: str) -> Callable[[str], None]:
        return lambda token: self.host.stream(self.run_id, action_id, token)
