"""Drives one run: supersteps of concurrent nodes, effects recorded before they run and replayed
after, interrupts that suspend one branch, retries on durable timers.

Everything a driver knows it folds from its own appends (`emit`) or, after a restart, from the
log; nothing else survives a crash, and nothing else needs to.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any, Callable

import anyio

from . import scopes
from ..codec import canonical_hash, encode
from .context import Ctx
from .effects import (
    ActionError,
    Diverged,
    Effects,
    Failed,
    Suspended,
    error_text,
    recordable,
    sleep_until,
)
from ..errors import EncodeFailed, RunEnded, VigilError
from ..events import Patch, RunCompleted, RunDiverged, RunFailed, StepCompleted, StepFailed, StepStarted
from ..graph import END, Graph
from .runview import RunView, clone
from ..state import apply, state_hash

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["RunDriver", "Diverged", "Suspended", "ActionError"]


class _Lost(Exception):
    """This driver's view and the log parted (another writer, a store error): stop driving."""


class RunDriver(Effects):
    def __init__(self, runtime: "Runtime", graph: Graph, view: RunView) -> None:
        self.rt = runtime
        self.store = runtime.store
        self.graph = graph
        self.view = view
        self.run_id = view.run_id
        self.task: asyncio.Task | None = None
        self._wake = False
        self._tools = {t.name: t for t in graph.tools}
        self._position: tuple[int, list[str], dict[str, set[str]]] | None = None
        self._last: asyncio.Future[int] | None = None
        self._error: BaseException | None = None
        self._busy_until = time.perf_counter() + 0.005

    # the log ---------------------------------------------------------------------------

    def post(self, *events: Any) -> asyncio.Future[int]:
        """Queue an append after the view's last seq and fold it into the view now, so that
        concurrent branches always extend the same sequence. Nothing waits for the commit:
        appends commit in the order they are queued, so whatever must be durable before an
        effect runs (`emit`) or before the driver stops (`flush`) carries everything before it."""
        if self.view.terminal is not None:
            # Nothing follows a run's end: a late sibling, a decision racing a cancel.
            raise RunEnded(f"run {self.run_id} has ended ({type(self.view.terminal).__name__})")
        expected = self.view.seq
        future = self.store.submit(self.run_id, events, expected_seq=expected)
        for i, event in enumerate(events, 1):
            self.view.feed(expected + i, event)
        future.add_done_callback(self._check)
        self._last = future
        return future

    def _check(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None and self._error is None:
            self._error = future.exception()

    async def emit(self, *events: Any) -> int:
        """Append and wait until it (and all before it) is committed."""
        return await self._wait(self.post(*events))

    def adopt_pending(self, future: asyncio.Future[int]) -> None:
        """Track an append queued for this run by someone else (the runtime's RunStarted)."""
        future.add_done_callback(self._check)
        self._last = future

    async def flush_until(self, future: asyncio.Future[int]) -> None:
        await self._wait(future)

    async def flush(self) -> None:
        if self._last is not None:
            await self._wait(self._last)

    async def _wait(self, future: asyncio.Future[int]) -> int:
        try:
            # Shielded: a cancelled driver still lets its queued appends commit, so the view
            # it already folded and the log never part.
            seq = await asyncio.shield(future)
        except VigilError as exc:
            self._error = self._error or exc
        if self._error is not None:
            raise _Lost(f"run {self.run_id}: {self._error}") from self._error
        return seq

    # lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.task is None or self.task.done():
            if not self.rt.may_drive(self):
                return  # the runtime is at its limit: it starts this run when a slot frees
            self._wake = False
            scopes.install()
            # Detached: started from inside a node (a child run) it must take no call position.
            self.task = asyncio.create_task(
                self._drive(), name=f"vigil-run-{self.run_id}", context=scopes.detached()
            )
            self.task.add_done_callback(self.rt.slot_freed)
        else:
            self._wake = True  # a branch was resolved while others still run: go round again

    async def _drive(self) -> None:
        try:
            try:
                await self._steps()
            except (_Lost, asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # a bug, or a log this code cannot follow: say so in the log
                if self.view.terminal is None and self._error is None:
                    self.post(RunFailed(error=f"the driver stopped: {error_text(exc)}"))
            await self.flush()
        except _Lost as exc:
            self.rt.lost(self.run_id, str(exc))
            return
        if self.view.terminal is not None:
            self.rt.finished(self)

    async def _steps(self) -> None:
        try:
            while self.view.terminal is None:
                if self.rt.draining or self.view.paused:
                    return  # the process is stopping, or a human paused the run: resumable as is
                n, pending = self._where()
                if pending is None:
                    self.post(RunCompleted(output=clone(self.view.state)))
                    return
                if n > self.graph.step_limit:
                    self.post(RunFailed(error=f"step limit {self.graph.step_limit} reached"))
                    return
                if time.perf_counter() > self._busy_until:
                    # A step boundary after 5 ms without a pause: nodes that never await must
                    # not starve the loop, so a cancel or a signal gets its turn here.
                    await asyncio.sleep(0)
                    self._busy_until = time.perf_counter() + 0.005
                suspended = await self._superstep(n, pending)
                if suspended:
                    if self._wake:
                        self._wake = False
                        continue
                    return
        except _Diverged as d:
            self.post(RunDiverged(step_id=d.inner.step_id, error=str(d.inner)))
        except Failed as f:
            self.post(RunFailed(error=f.message))

    def _where(self) -> tuple[int, list[str] | None]:
        """The superstep in progress and its nodes not yet completed (None: the run is done).
        Advances a cached position, so a long run is not re-walked from its first step."""
        v = self.view
        if self._position is None:
            self._position = (1, list(v.started.start_at), {})
        n, frontier, joins = self._position
        while True:
            done = {node for node, _ in v.completions.get(n, ())}
            pending = [node for node in frontier if node not in done]
            if pending:
                self._position = (n, frontier, joins)
                return n, pending
            nxt: list[str] = []
            for node, targets in v.completions.get(n, ()):
                for t in targets:
                    if t == END:
                        continue
                    waits_for = self.graph.joins.get(t)
                    if waits_for is None:
                        nxt.append(t)
                        continue
                    got = joins.setdefault(t, set())
                    got.add(node)
                    if got >= waits_for:
                        nxt.append(t)
                        joins[t] = set()
            frontier = list(dict.fromkeys(nxt))
            if not frontier:
                self._position = (n, [], joins)
                return n, None
            n += 1

    async def _superstep(self, n: int, nodes: list[str]) -> bool:
        """Run `nodes` concurrently; True if any branch is left waiting."""
        outcome: dict[str, str] = {}
        if len(nodes) == 1:  # nothing to run beside it: no task group to pay for
            try:
                await self._branch(n, nodes[0], outcome)
            except BaseExceptionGroup as group:
                raise _first(group) from None
            return "suspended" in outcome.values()
        try:
            async with anyio.create_task_group() as tg:
                for node in nodes:
                    tg.start_soon(self._branch, n, node, outcome)
        except BaseExceptionGroup as group:
            raise _first(group) from None
        return "suspended" in outcome.values()

    async def _branch(self, n: int, node: str, outcome: dict[str, str]) -> None:
        step_id = f"{n}.{node}"
        spec = self.graph.nodes.get(node)
        if spec is None:  # a newer version of the graph renamed or removed it
            was = self.view.started.graph_version if self.view.started else "?"
            raise _Diverged(Diverged(step_id, (
                f"node {node!r} is in the log but not in graph {self.graph.name!r} "
                f"v{self.graph.version} (the run started on v{was})"
            )))
        while True:
            attempt = self.view.attempts.get(step_id)
            failures = self.view.failures.get(step_id, [])
            if attempt is None:
                attempt = 1
                self.post(StepStarted(step_id=step_id, node=node, attempt=1))
            elif failures and failures[-1].attempt == attempt:
                await sleep_until(failures[-1].retry_at_ns or 0)
                attempt += 1
                self.post(StepStarted(step_id=step_id, node=node, attempt=attempt))
            ctx = Ctx(self, step_id, node, attempt)
            update, error = await self._execute(spec.fn, n, ctx)
            if ctx.diverged is not None:  # even if the node caught it
                raise _Diverged(ctx.diverged)
            if ctx.suspended:  # likewise: a waiting branch never completes
                outcome[node] = "suspended"
                return
            if error is None:
                try:
                    self.unconsumed(ctx)
                except Diverged as d:
                    raise _Diverged(d) from None
                try:
                    patches = self.graph.patches(recordable(update))
                except Exception as exc:
                    error = exc
            if error is not None:
                if isinstance(error, (_Lost, Failed, RunEnded)):
                    raise error
                policy = spec.retry
                if policy and isinstance(error, policy.retry_on) and attempt < policy.attempts:
                    delay = policy.delay(attempt, random.random())
                    self.post(StepFailed(
                        step_id=step_id, node=node, attempt=attempt, error=error_text(error),
                        retry_at_ns=time.time_ns() + int(delay * 1e9),
                    ))
                    continue
                self.post(StepFailed(step_id=step_id, node=node, attempt=attempt, error=error_text(error)))
                raise Failed(f"node {node} failed after {attempt} attempt(s): {error_text(error)}") from None
            await self._complete(step_id, node, patches)
            outcome[node] = "done"
            return

    async def _execute(self, fn: Any, n: int, ctx: Ctx) -> tuple[Any, Exception | None]:
        """Run a node under its call scope; return (update, error) once every task it started
        has finished. Cancelled, it cancels them and waits: nothing of the step outlives it."""
        token = scopes.enter(ctx.root)
        try:
            update = await fn(self.view.state_before(n), ctx)
            error = None
        except Suspended:
            ctx.suspended = True
            update, error = None, None
        except Exception as exc:
            update, error = None, exc
        except BaseException as exc:
            # A task group inside the node wraps a suspension (or a failure) in a group: that is
            # the node waiting or failing, not the step being cancelled.
            leaves = list(_leaves(exc)) if isinstance(exc, BaseExceptionGroup) else []
            if not leaves or not all(isinstance(e, (Suspended, Exception)) for e in leaves):
                scopes.leave(token)
                token = None
                await ctx.settle(cancel=True)
                raise
            if any(isinstance(e, Suspended) for e in leaves):
                ctx.suspended = True
            update, error = None, next((e for e in leaves if isinstance(e, Exception)), None)
        finally:
            if token is not None:
                scopes.leave(token)
        await ctx.settle(cancel=False)  # siblings finish and record their outcomes
        return update, error

    async def _complete(self, step_id: str, node: str, patches: tuple) -> None:
        after = clone(self.view.state)
        apply(after, patches)
        try:
            nxt = self.graph.successors(node, after)
        except Exception as exc:  # a branch function that raised or chose a missing node
            raise Failed(f"edges after {node}: {error_text(exc)}") from None
        try:
            self.post(StepCompleted(
                step_id=step_id, node=node, update=patches, next=nxt, state_hash=state_hash(after)
            ))
        except (EncodeFailed, TypeError, ValueError, OverflowError) as exc:
            bad = [p.key for p in patches if not _encodes(p)]
            raise Failed(
                f"node {node} returned a value the log cannot store"
                f" ({', '.join(map(repr, bad)) or 'unknown key'}): {error_text(exc)}"
            ) from None

    # what nodes see of the driver ------------------------------------------------------

    def llm_signature(self, messages: list[dict], specs: list[dict]) -> dict[str, Any]:
        """What an llm action records as its input: the new message and a hash of them all (the
        conversation is in the state already; recording it whole on every turn would grow the
        log with the square of the turns)."""
        messages = recordable(messages)
        return {
            "messages": len(messages),
            "last": messages[-1] if messages else None,
            "hash": canonical_hash(messages),
            "tools": [s["name"] for s in specs],
        }

    def token_sink(self, action_id: str) -> Callable[[str], None]:
        return lambda token: self.rt.stream(self.run_id, action_id, token)


class _Diverged(Exception):
    def __init__(self, inner: Diverged) -> None:
        self.inner = inner


def _first(group: BaseExceptionGroup) -> BaseException:
    """The exception that matters in a task group's group: the first that is not a cancel."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


def _leaves(group: BaseExceptionGroup):
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _encodes(patch: Patch) -> bool:
    try:
        encode(StepCompleted(step_id="", node="", update=(patch,)))
        canonical_hash(patch.value)
    except Exception:
        return False
    return True
