"""One superstep of a run: the nodes it triggers run concurrently as branches, each to completion,
suspension or failure (with its retries); joins wait for every branch they name."""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import nullcontext
from typing import Any

import anyio

from . import scopes
from ..codec import canonical_hash, encode
from ..errorinfo import classify
from ..errors import Diverged, EncodeFailed, Failed, Lost, RunEnded, StepDiverged, Suspended
from ..events import Patch, StepCompleted, StepFailed, StepStarted
from ..graph import DELETE, END
from ..limits import Limit
from ..redact import recordable
from ..state import apply, state_hash
from .context import Ctx
from .effects import error_text, sleep_until
from .runview import clone

__all__ = ["Supersteps"]


class Supersteps:
    """Mixed into RunDriver: `view`, `graph`, `post`, `unconsumed` and `_position` come from it."""

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
        cap = self.graph.max_concurrency
        # A line of this superstep's own: nodes wait for a slot before StepStarted, so the log
        # shows a node as started only once it runs, and replay (positions are per node) is
        # the same whatever order the slots were given in.
        slots = Limit(cap, name=f"nodes of {self.run_id}") if cap and len(nodes) > cap else None
        try:
            async with anyio.create_task_group() as tg:
                for node in nodes:
                    tg.start_soon(self._branch, n, node, outcome, slots)
        except BaseExceptionGroup as group:
            raise _first(group) from None
        return "suspended" in outcome.values()

    async def _branch(self, n: int, node: str, outcome: dict[str, str], slots: Limit | None = None) -> None:
        step_id = f"{n}.{node}"
        spec = self.graph.nodes.get(node)
        if spec is None:  # a newer version of the graph renamed or removed it
            was = self.view.started.graph_version if self.view.started else "?"
            raise StepDiverged(Diverged(step_id, (
                f"node {node!r} is in the log but not in graph {self.graph.name!r} "
                f"v{self.graph.version} (the run started on v{was})"
            )))
        while True:
            failures = self.view.failures.get(step_id, [])
            if failures and failures[-1].attempt == self.view.attempts.get(step_id):
                await sleep_until(failures[-1].retry_at_ns or 0)  # a retry's wait takes no slot
            async with slots.hold(self.run_id, "node", node) if slots else nullcontext():
                attempt = self.view.attempts.get(step_id)
                if attempt is None:
                    attempt = 1
                    self.post(StepStarted(step_id=step_id, node=node, attempt=1))
                elif failures and failures[-1].attempt == attempt:
                    attempt += 1
                    self.post(StepStarted(step_id=step_id, node=node, attempt=attempt))
                ctx = Ctx(self, step_id, node, attempt)
                update, error = await self._execute(spec.fn, n, ctx)
            if ctx.diverged is not None:  # even if the node caught it
                raise StepDiverged(ctx.diverged)
            if ctx.suspended:  # likewise: a waiting branch never completes
                outcome[node] = "suspended"
                return
            if error is None:
                try:
                    self.unconsumed(ctx)
                except Diverged as d:
                    raise StepDiverged(d) from None
                try:
                    patches = self.graph.patches(_recordable_update(update))
                except Exception as exc:
                    error = exc
            if error is not None:
                if isinstance(error, (Lost, Failed, RunEnded)):
                    raise error
                policy = spec.retry
                what = classify(error)  # an effect's failure keeps the class it was recorded with
                if policy and isinstance(error, policy.retry_on) and attempt < policy.attempts:
                    delay = policy.delay(attempt, random.random())
                    self.post(StepFailed(
                        step_id=step_id, node=node, attempt=attempt, error=error_text(error),
                        retry_at_ns=time.time_ns() + int(delay * 1e9), error_info=what,
                    ))
                    continue
                self.post(StepFailed(
                    step_id=step_id, node=node, attempt=attempt, error=error_text(error), error_info=what,
                ))
                raise Failed(f"node {node} failed after {attempt} attempt(s): {error_text(error)}", what) from None
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


def _recordable_update(update: Any) -> Any:
    """A node's update as the log records it; a key set to DELETE stays DELETE (the patch that
    removes it carries no value), the rest is made recordable together, so redaction still sees
    each value under its key."""
    if not isinstance(update, dict) or not any(v is DELETE for v in update.values()):
        return recordable(update)
    kept = recordable({k: v for k, v in update.items() if v is not DELETE})
    return {k: DELETE if v is DELETE else kept[k] for k, v in update.items()}
