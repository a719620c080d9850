"""What a node's ctx calls do inside the driver: match the call against what the log holds at its
position, replay a recorded result, or record the request, run the effect and record its outcome.

Every ctx call has a position (kernel.engine.scopes). Whatever the log holds at that position - an effect,
an interrupt, an approval - must be the same kind, name and input, or the run is parked as
diverged naming both sides; a re-executed step must also make every call it recorded.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from . import scopes
from .artifacts import offload_output, replayed_output
from ..codec import canonical_hash, short
from ..errorinfo import classify, info
from ..events import Note
from ..errors import ActionError, Diverged, Failed, Suspended, ToolInputError, ToolRejected
from ..events import ActionFailed, ActionRequested, ActionSucceeded, InterruptRaised, InterruptResolved
from ..limits import Limit
from ..redact import recordable, redact
from ..secrets import restore
from ..tools import Tool

if TYPE_CHECKING:  # pragma: no cover
    from .context import Ctx

__all__ = ["Effects", "error_text", "sleep_until"]


def error_text(exc: BaseException) -> str:
    """`Type: message`, always encodable (a lone surrogate must not stop a run being recorded)."""
    text = redact(str(exc))  # as the log will hold it, so a replay raises the same text
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _info_of_child(category: str | None, error: str):
    return info("child_failed", category or "internal", error)


def _who(resolution: InterruptResolved) -> str:
    return resolution.actor.user if resolution.actor else "someone"


async def sleep_until(due_ns: int) -> None:
    delay = (due_ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


class Effects:
    """Mixed into RunDriver: `view`, `host`, `post`, `emit`, `_wait`, `graph` come from it."""

    # positions -------------------------------------------------------------------------

    def recorded_at(self, position: str) -> tuple[str, str, Any] | None:
        """(kind, name, input) of what the log holds at a call position, or None."""
        view = self.view
        entry = view.interrupts.get(f"{position}.approval")
        if entry is not None:  # a gated tool call: the arguments the model asked for
            payload = entry[0].payload or {}
            return "tool", payload.get("tool", "?"), payload.get("args")
        record = view.actions.get(position)
        if record is not None:
            req = record.requested
            return req.kind, req.name, req.input
        note = view.notes.get(position)
        if note is not None:
            return "note", note.name, note.payload
        entry = view.interrupts.get(position)
        if entry is not None:
            raised = entry[0]
            return "interrupt", raised.title, raised.payload
        stored = view.artifacts.get(position)
        if stored is not None:  # a ctx.artifact call (kernel/engine/artifacts.py)
            return "artifact", stored.kind, {"artifact_id": stored.artifact_id, "size": stored.size}
        return None

    def expect(self, ctx: "Ctx", position: str, kind: str, name: str, input: Any) -> str:
        """Check a call against the log at its position; returns the position it takes.

        A retry may go another way than the attempt before it (a fallback tool, a new prompt): a
        call that differs from what an *earlier attempt* recorded there is a new call, at
        `<position>@<attempt>` (the same on every replay of this attempt). A call that differs
        from what this attempt recorded is a divergence. A call the same as an earlier attempt's
        is that call: its result is replayed, never run again."""
        recorded = self.recorded_at(position)
        if recorded is not None:
            r_kind, r_name, r_input = recorded
            if (r_kind, r_name) != (kind, name) or canonical_hash(r_input) != canonical_hash(input):
                if self.view.calls.get(ctx.step_id, {}).get(position, ctx.attempt) < ctx.attempt:
                    return self.expect(ctx, f"{position}@{ctx.attempt}", kind, name, input)
                raise self.diverge(
                    ctx, f"{position}: the log has {r_kind} {r_name} {short(r_input, 80)}, "
                    f"the code now calls {kind} {name} {short(input, 80)}",
                )
        ctx.consumed.add(position)
        return position

    def diverge(self, ctx: "Ctx", message: str) -> Diverged:
        error = Diverged(ctx.step_id, message)
        ctx.diverged = ctx.diverged or error
        return error

    def unconsumed(self, ctx: "Ctx") -> None:
        """A step that completes must have made every call it recorded in this attempt."""
        for position, attempt in self.view.calls.get(ctx.step_id, {}).items():
            if attempt == ctx.attempt and position not in ctx.consumed:
                kind, name, input = self.recorded_at(position) or ("?", "?", None)
                raise self.diverge(
                    ctx, f"{position}: the log has {kind} {name} {short(input, 80)}, "
                    "the code now ends the step without it",
                )

    # effects ---------------------------------------------------------------------------

    async def call_tool(self, ctx: "Ctx", position: str, spec: Tool, args: dict) -> Any:
        position = self.expect(ctx, position, "tool", spec.name, recordable(args))
        effective = await self.approve(ctx, position, spec, args)
        key = f"{self.run_id}:{position}"
        return await self.effect(
            ctx, position, "tool", spec.name, effective,
            lambda: spec(effective, key), idempotent=spec.idempotent, key=key, checked=True,
            limit=spec.limit,
        )

    async def effect(
        self,
        ctx: "Ctx",
        action_id: str,
        kind: str,
        name: str,
        input: Any,
        run: Callable[[], Awaitable[Any]] | None,
        *,
        idempotent: bool = False,
        key: str | None = None,
        due_ns: int | None = None,
        checked: bool = False,
        limit: Limit | None = None,
    ) -> Any:
        input = recordable(input)
        if not checked:
            action_id = self.expect(ctx, action_id, kind, name, input)
        record = self.view.actions.get(action_id)  # matched already: expect() (tools: call_tool)
        if record is not None:
            req = record.requested
            out = record.outcome
            if isinstance(out, ActionSucceeded):
                return await replayed_output(self, action_id, out.output)
            if isinstance(out, ActionFailed) and record.attempt == ctx.attempt:
                raise ActionError(out.error, out.retryable, out.error_info)
            due_ns = req.due_ns
            if out is None and not idempotent:
                # Requested, then the process died: did it run? Only a human can say.
                answer = await self.in_doubt(ctx, action_id, record.requests, req)
                if answer is not None:
                    return answer
        # A limited effect waits for its slot before it is requested: queued is not in doubt.
        async with limit.hold(self.run_id, kind, name) if limit else nullcontext():
            if record is None:
                req = ActionRequested(
                    action_id=action_id, step_id=ctx.step_id, kind=kind, name=name, input=input,
                    idempotency_key=key, due_ns=due_ns,
                )
            if record is None or out is not None or not idempotent:
                # A new request, or another occurrence of one (a new attempt, or a human said
                # run it again). A non-idempotent effect waits until its request is durable, so
                # a crash while it runs asks a question. An idempotent one need not: with no
                # result after a crash it is simply run again, so it starts at once and its
                # request commits with whatever comes next (one fsync less before every model
                # call and idempotent tool; bench/NOTES.md, many live runs).
                if idempotent:
                    self.post(req)
                    await self.started()
                else:
                    await self.emit(req)
            return await self._run_effect(action_id, run, due_ns, idempotent)

    async def _run_effect(
        self, action_id: str, run: Callable[[], Awaitable[Any]] | None, due_ns: int | None, idempotent: bool
    ) -> Any:
        token = scopes.outside()  # tasks the effect's own code starts take no call positions
        try:
            if due_ns is not None:
                await sleep_until(due_ns)
            output = await run() if run is not None else None
            output = recordable(output)
        except (asyncio.CancelledError, Diverged):
            raise
        except Exception as exc:
            retryable = bool(getattr(exc, "retryable", False))
            error = error_text(exc)
            what = classify(exc, default=self._failure_default(action_id))
            self.post(ActionFailed(action_id=action_id, error=error, retryable=retryable, error_info=what))
            # The same exception a replay raises from the record, so code sees no difference.
            raise ActionError(error, retryable, what) from exc
        finally:
            scopes.leave(token)
        # A big output goes to an artifact; the node still gets the output itself.
        done = self.post(ActionSucceeded(action_id=action_id, output=await offload_output(self, action_id, output)))
        if not idempotent:  # keep the window in which a crash leaves it in doubt small
            await self._wait(done)
        return output

    def _failure_default(self, action_id: str) -> str:
        """What an exception out of an effect is, unless it says: a tool's is the tool's failure
        (its request is in the view already: recorded before the effect ran)."""
        record = self.view.actions.get(action_id)
        return "tool" if record is not None and record.requested.kind == "tool" else "internal"

    async def in_doubt(self, ctx: "Ctx", action_id: str, occurrence: int, req: ActionRequested) -> Any:
        """Ask whether an interrupted non-idempotent effect ran. Returns its output if a human
        says it did; None to run it again; raises to fail the run. Each occurrence (each time
        it was requested) gets its own question: an answer never covers a later crash."""
        interrupt_id = f"{action_id}.doubt" if occurrence == 1 else f"{action_id}.doubt.{occurrence}"
        resolution = await self.interrupt(
            ctx, interrupt_id, "in_doubt", f"did {req.kind} {req.name} run before the crash?",
            {"action_id": action_id, "kind": req.kind, "name": req.name, "input": req.input},
            position=False,
        )
        if resolution.decision == "answer":
            output = recordable(resolution.value)
            await self.emit(ActionSucceeded(action_id=action_id, output=output))
            return output
        if resolution.decision == "fail":
            message = f"{req.name} was in doubt after a crash; failed by {_who(resolution)}"
            raise Failed(message, info("failed_in_doubt", "policy", message))
        return None  # "retry"

    async def approve(self, ctx: "Ctx", action_id: str, spec: Tool, args: dict) -> dict:
        """The arguments the tool will run with, after any approval the call needs."""
        interrupt_id = f"{action_id}.approval"
        asked = interrupt_id in self.view.interrupts  # the log decides on replay
        if not asked and action_id in self.view.actions:
            return args  # it ran without asking (an earlier policy): the log decides
        if not asked:
            if not spec.needs_approval(args) or spec.name in self.view.approved_tools:
                return args
            if self.host.approvals == "auto":
                return args
            if self.host.approvals == "deny":
                raise ToolRejected(f"{spec.name} needs approval and this runtime denies it")
        resolution = await self.interrupt(
            ctx, interrupt_id, "approval", f"{spec.name} needs your approval",
            {"tool": spec.name, "args": args}, position=False,
        )
        if resolution.decision == "reject":
            raise ToolRejected(f"rejected by {_who(resolution)}: {resolution.value or 'no reason given'}")
        if resolution.decision == "edit":
            return spec.validate(restore(resolution.value, args))
        return args

    def note(self, ctx: "Ctx", position: str, name: str, payload: Any) -> None:
        """Record a Note at its call position, once: a re-executed step (after a crash, a decision,
        a retry) that notes the same thing there finds it in the log and appends nothing."""
        payload = recordable(payload)
        position = self.expect(ctx, position, "note", name, payload)
        if position in self.view.notes:
            return
        self.post(Note(note_id=position, step_id=ctx.step_id, name=name, payload=payload))

    async def interrupt(
        self, ctx: "Ctx", interrupt_id: str, kind: str, title: str, payload: Any, *, position: bool = True
    ) -> InterruptResolved:
        """`position`: a `ctx.interrupt` call of its own (matched like any call); approvals and
        in-doubt questions belong to the call they ask about, matched with it."""
        payload = recordable(payload)
        title = recordable(title)
        if position:
            interrupt_id = self.expect(ctx, interrupt_id, "interrupt", title, payload)
        digest = canonical_hash(payload)
        entry = self.view.interrupts.get(interrupt_id)
        if entry is not None:
            raised, resolved = entry
            if raised.payload_hash != digest:
                raise self.diverge(ctx, f"{interrupt_id}: the interrupt now carries another payload")
            if resolved is not None:
                return resolved
            ctx.suspended = True
            raise Suspended(interrupt_id)
        raised = InterruptRaised(
            interrupt_id=interrupt_id, step_id=ctx.step_id, kind=kind, title=title,
            payload=payload, payload_hash=digest,
        )
        self.post(raised)
        self.host.raised(self.run_id, raised)
        auto = self.host.auto_resolve(raised)
        if auto is not None:
            self.post(auto)
            return auto
        ctx.suspended = True
        raise Suspended(interrupt_id)

    async def child(self, ctx: "Ctx", action_id: str, graph: str, input: Any, labels: dict) -> Any:
        signature = {"graph": graph, "input": recordable(input)}
        action_id = self.expect(ctx, action_id, "child", graph, signature)
        record = self.view.actions.get(action_id)
        if record is None:
            child_id = await self.host.new_child_id(self.run_id)
            seq = await self.emit(ActionRequested(
                action_id=action_id, step_id=ctx.step_id, kind="child", name=graph,
                input=signature, idempotency_key=child_id,
            ))
            await self.host.start(graph, input, labels=labels, run_id=child_id,
                                  parent=(self.run_id, seq), lineage="child")
        else:
            if isinstance(record.outcome, ActionSucceeded):
                return record.outcome.output
            if isinstance(record.outcome, ActionFailed):
                raise ActionError(record.outcome.error, False, record.outcome.error_info)
            child_id = record.requested.idempotency_key
        info = await self.host.child_status(child_id)
        if info is None or info.status in ("running", "waiting"):
            ctx.suspended = True
            raise Suspended(child_id)  # the child's end wakes this run
        if info.status == "completed":
            output = await self.host.child_output(child_id)
            await self.emit(ActionSucceeded(action_id=action_id, output=output))
            return output
        error = f"child run {child_id} {info.status}: {info.error or ''}".strip()
        # The child's own category travels up: a parent failing on a child's rate limit is
        # a rate limit too.
        what = _info_of_child(info.error_category, error)
        await self.emit(ActionFailed(action_id=action_id, error=error, error_info=what))
        raise ActionError(error, False, what)

    def tool(self, tool: Tool | str) -> Tool:
        name = tool if isinstance(tool, str) else tool.name
        spec = self._tools.get(name)
        if spec is None:
            raise ToolInputError(f"no tool {name!r} in graph {self.graph.name!r}")
        return spec
