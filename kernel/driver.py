"""Drives one run: supersteps of concurrent nodes, effects recorded before they run and replayed
after, interrupts that suspend one branch, retries on durable timers.

Everything a driver knows it folds from its own appends (`emit`) or, after a restart, from the
log; nothing else survives a crash, and nothing else needs to.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import anyio

from .codec import canonical_hash, short
from .context import Ctx
from .errors import VigilError
from .events import (
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    InterruptRaised,
    InterruptResolved,
    RunCompleted,
    RunDiverged,
    RunFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from .graph import END, Graph
from .redact import recordable, redact
from .secrets import restore
from .runview import RunView, clone
from .state import apply, state_hash
from .tools import Tool, ToolInputError, ToolRejected

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import Runtime

__all__ = ["RunDriver", "Diverged", "Suspended", "ActionError"]


class Diverged(VigilError):
    """A re-executed call does not match the recorded one; the run is parked, never guessed."""

    def __init__(self, step_id: str, message: str) -> None:
        super().__init__(message)
        self.step_id = step_id


class Suspended(Exception):
    """Unwinds a node whose branch waits: for a human, or for a child run."""


class ActionError(VigilError):
    """A recorded effect failed; replayed as the same error within the same attempt."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class _NodeFailed(Exception):
    pass


class _Lost(Exception):
    """This driver's view and the log parted (another writer, a store error): stop driving."""


def _error_text(exc: BaseException) -> str:
    text = redact(str(exc))  # as the log will hold it, so a replay raises the same text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _recordable(value: Any) -> Any:
    return recordable(value)


class RunDriver:
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

    # the log ---------------------------------------------------------------------------

    def post(self, *events: Any) -> asyncio.Future[int]:
        """Queue an append after the view's last seq and fold it into the view now, so that
        concurrent branches always extend the same sequence. Nothing waits for the commit:
        appends commit in the order they are queued, so whatever must be durable before an
        effect runs (`emit`) or before the driver stops (`flush`) carries everything before it."""
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
            self._wake = False
            self.task = asyncio.create_task(self._drive(), name=f"vigil-run-{self.run_id}")
        else:
            self._wake = True  # a branch was resolved while others still run: go round again

    async def _drive(self) -> None:
        try:
            await self._steps()
            await self.flush()
        except _Lost as exc:
            self.rt.lost(self.run_id, str(exc))
            return
        if self.view.terminal is not None:
            self.rt.finished(self)

    async def _steps(self) -> None:
        try:
            while self.view.terminal is None:
                n, pending = self._where()
                if pending is None:
                    self.post(RunCompleted(output=clone(self.view.state)))
                    return
                if n > self.graph.step_limit:
                    self.post(RunFailed(error=f"step limit {self.graph.step_limit} reached"))
                    return
                suspended = await self._superstep(n, pending)
                if suspended:
                    if self._wake:
                        self._wake = False
                        continue
                    return
        except _Diverged as d:
            self.post(RunDiverged(step_id=d.inner.step_id, error=str(d.inner)))
        except _Failed as f:
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
        spec = self.graph.nodes[node]
        while True:
            attempt = self.view.attempts.get(step_id)
            failures = self.view.failures.get(step_id, [])
            if attempt is None:
                attempt = 1
                self.post(StepStarted(step_id=step_id, node=node, attempt=1))
            elif failures and failures[-1].attempt == attempt:
                await _sleep_until(failures[-1].retry_at_ns or 0)
                attempt += 1
                self.post(StepStarted(step_id=step_id, node=node, attempt=attempt))
            ctx = Ctx(self, step_id, node, attempt)
            try:
                update = await spec.fn(self.view.state_before(n), ctx)
                patches = self.graph.patches(_recordable(update))
            except Suspended:
                outcome[node] = "suspended"
                return
            except Diverged as d:
                raise _Diverged(d) from None
            except (asyncio.CancelledError, _Lost, _Failed):
                raise
            except Exception as exc:
                policy = spec.retry
                if policy and isinstance(exc, policy.retry_on) and attempt < policy.attempts:
                    delay = policy.delay(attempt, random.random())
                    self.post(StepFailed(
                        step_id=step_id, node=node, attempt=attempt, error=_error_text(exc),
                        retry_at_ns=time.time_ns() + int(delay * 1e9),
                    ))
                    continue
                self.post(StepFailed(step_id=step_id, node=node, attempt=attempt, error=_error_text(exc)))
                raise _Failed(f"node {node} failed after {attempt} attempt(s): {_error_text(exc)}") from None
            await self._complete(step_id, node, patches)
            outcome[node] = "done"
            return

    async def _complete(self, step_id: str, node: str, patches: tuple) -> None:
        after = clone(self.view.state)
        apply(after, patches)
        try:
            nxt = self.graph.successors(node, after)
        except Exception as exc:  # a branch function that raised or chose a missing node
            raise _Failed(f"edges after {node}: {_error_text(exc)}") from None
        self.post(StepCompleted(
            step_id=step_id, node=node, update=patches, next=nxt, state_hash=state_hash(after)
        ))

    # effects ---------------------------------------------------------------------------

    def tool(self, tool: Tool | str) -> Tool:
        name = tool if isinstance(tool, str) else tool.name
        spec = self._tools.get(name)
        if spec is None:
            raise ToolInputError(f"no tool {name!r} in graph {self.graph.name!r}")
        return spec

    def llm_signature(self, messages: list[dict], specs: list[dict]) -> dict[str, Any]:
        """What an llm action records as its input: the new message and a hash of them all (the
        conversation is in the state already; recording it whole on every turn would grow the
        log with the square of the turns)."""
        messages = _recordable(messages)
        return {
            "messages": len(messages),
            "last": messages[-1] if messages else None,
            "hash": canonical_hash(messages),
            "tools": [s["name"] for s in specs],
        }

    def token_sink(self, action_id: str) -> Callable[[str], None]:
        return lambda token: self.rt.stream(self.run_id, action_id, token)

    async def effect(
        self,
        ctx: Ctx,
        action_id: str,
        kind: str,
        name: str,
        input: Any,
        run: Callable[[], Awaitable[Any]] | None,
        *,
        idempotent: bool = False,
        key: str | None = None,
        due_ns: int | None = None,
    ) -> Any:
        input = _recordable(input)
        record = self.view.actions.get(action_id)
        if record is not None:
            req = record.requested
            if (req.kind, req.name) != (kind, name) or canonical_hash(req.input) != canonical_hash(input):
                raise Diverged(
                    ctx.step_id,
                    f"{action_id}: the log has {req.kind} {req.name} {short(req.input, 80)}, "
                    f"the code now calls {kind} {name} {short(input, 80)}",
                )
            out = record.outcome
            if isinstance(out, ActionSucceeded):
                return out.output
            if isinstance(out, ActionFailed) and record.attempt == ctx.attempt:
                raise ActionError(out.error, out.retryable)
            due_ns = req.due_ns
            if out is None and not idempotent:
                # Requested, then the process died: did it run? Only a human can say.
                answer = await self.in_doubt(ctx, action_id, req)
                if answer is not None:
                    return answer
            if out is not None:  # failed in an earlier attempt: this attempt asks again
                await self.emit(req)
        else:
            await self.emit(ActionRequested(
                action_id=action_id, step_id=ctx.step_id, kind=kind, name=name, input=input,
                idempotency_key=key, due_ns=due_ns,
            ))
        return await self._run_effect(action_id, run, due_ns, idempotent)

    async def _run_effect(
        self, action_id: str, run: Callable[[], Awaitable[Any]] | None, due_ns: int | None, idempotent: bool
    ) -> Any:
        try:
            if due_ns is not None:
                await _sleep_until(due_ns)
            output = await run() if run is not None else None
            output = _recordable(output)
        except (asyncio.CancelledError, Suspended, Diverged):
            raise
        except Exception as exc:
            retryable = bool(getattr(exc, "retryable", False))
            error = _error_text(exc)
            self.post(ActionFailed(action_id=action_id, error=error, retryable=retryable))
            # The same exception a replay raises from the record, so code sees no difference.
            raise ActionError(error, retryable) from exc
        done = self.post(ActionSucceeded(action_id=action_id, output=output))
        if not idempotent:  # keep the window in which a crash leaves it in doubt small
            await self._wait(done)
        return output

    async def in_doubt(self, ctx: Ctx, action_id: str, req: ActionRequested) -> Any:
        """Ask whether an interrupted non-idempotent effect ran. Returns its output if a human
        says it did; None to run it again; raises to fail the run."""
        resolution = await self.interrupt(
            ctx, f"{action_id}.doubt", "in_doubt", f"did {req.kind} {req.name} run before the crash?",
            {"action_id": action_id, "kind": req.kind, "name": req.name, "input": req.input},
        )
        if resolution.decision == "answer":
            output = _recordable(resolution.value)
            await self.emit(ActionSucceeded(action_id=action_id, output=output))
            return output
        if resolution.decision == "fail":
            raise _Failed(f"{req.name} was in doubt after a crash; failed by {_who(resolution)}")
        return None  # "retry"

    async def approve(self, ctx: Ctx, action_id: str, spec: Tool, args: dict) -> dict:
        """The arguments the tool will run with, after any approval the call needs."""
        interrupt_id = f"{action_id}.approval"
        asked = interrupt_id in self.view.interrupts  # the log decides on replay
        if not asked:
            if not spec.needs_approval(args) or spec.name in self.view.approved_tools:
                return args
            if self.rt.approvals == "auto":
                return args
            if self.rt.approvals == "deny":
                raise ToolRejected(f"{spec.name} needs approval and this runtime denies it")
        resolution = await self.interrupt(
            ctx, interrupt_id, "approval", f"{spec.name} needs your approval", {"tool": spec.name, "args": args}
        )
        if resolution.decision == "reject":
            raise ToolRejected(f"rejected by {_who(resolution)}: {resolution.value or 'no reason given'}")
        if resolution.decision == "edit":
            return spec.validate(restore(resolution.value, args))
        return args

    async def interrupt(
        self, ctx: Ctx, interrupt_id: str, kind: str, title: str, payload: Any
    ) -> InterruptResolved:
        payload = _recordable(payload)
        digest = canonical_hash(payload)
        entry = self.view.interrupts.get(interrupt_id)
        if entry is not None:
            raised, resolved = entry
            if raised.payload_hash != digest:
                raise Diverged(ctx.step_id, f"{interrupt_id}: the interrupt now carries another payload")
            if resolved is not None:
                return resolved
            raise Suspended(interrupt_id)
        raised = InterruptRaised(
            interrupt_id=interrupt_id, step_id=ctx.step_id, kind=kind, title=title,
            payload=payload, payload_hash=digest,
        )
        self.post(raised)
        self.rt.raised(self.run_id, raised)
        auto = self.rt.auto_decide(raised) if self.rt.auto_decide else None
        if auto is not None:
            self.post(auto)
            return auto
        raise Suspended(interrupt_id)

    async def child(self, ctx: Ctx, action_id: str, graph: str, input: Any, labels: dict) -> Any:
        record = self.view.actions.get(action_id)
        signature = {"graph": graph, "input": _recordable(input)}
        if record is None:
            child_id = await self.rt.new_child_id(self.run_id)
            seq = await self.emit(ActionRequested(
                action_id=action_id, step_id=ctx.step_id, kind="child", name=graph,
                input=signature, idempotency_key=child_id,
            ))
            await self.rt.start(graph, input, labels=labels, run_id=child_id,
                                parent=(self.run_id, seq), lineage="child")
        else:
            req = record.requested
            if (req.kind, req.name) != ("child", graph) or canonical_hash(req.input) != canonical_hash(signature):
                raise Diverged(ctx.step_id, f"{action_id}: the log started child {req.name} {short(req.input, 80)}")
            if isinstance(record.outcome, ActionSucceeded):
                return record.outcome.output
            if isinstance(record.outcome, ActionFailed):
                raise ActionError(record.outcome.error)
            child_id = req.idempotency_key
        info = await self.rt.child_status(child_id)
        if info is None or info.status in ("running", "waiting"):
            raise Suspended(child_id)  # the child's end wakes this run
        if info.status == "completed":
            output = await self.rt.child_output(child_id)
            await self.emit(ActionSucceeded(action_id=action_id, output=output))
            return output
        error = f"child run {child_id} {info.status}: {info.error or ''}".strip()
        await self.emit(ActionFailed(action_id=action_id, error=error))
        raise ActionError(error)


class _Diverged(Exception):
    def __init__(self, inner: Diverged) -> None:
        self.inner = inner


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _first(group: BaseExceptionGroup) -> BaseException:
    """The exception that matters in a task group's group: the first that is not a cancel."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


def _who(resolution: InterruptResolved) -> str:
    return resolution.actor.user if resolution.actor else "someone"


async def _sleep_until(due_ns: int) -> None:
    delay = (due_ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)
