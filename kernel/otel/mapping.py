"""One run's events, fed in seq order, to finished spans (OpenTelemetry GenAI conventions).

    run    invoke_agent {graph} (the run called a model) or invoke_workflow {graph}
    step   step {node}                         one span per attempt
    tool   execute_tool {tool}                 gen_ai.tool.name, gen_ai.tool.call.id
    llm    chat {model}                        gen_ai.request.model, gen_ai.usage.*_tokens
    other  {kind} {name}                       sleep, clock, random, child
Interrupts, decisions, pauses, adoptions and cancels are span events carrying the actor.

A span is finished when the event that ends it is fed, so the same code serves an export after
the fact and the live follower. What is still open when a run ends is closed with it
(`vigil.unfinished`). Every string attribute goes through kernel.redact again: the log is
redacted already, this is defence in depth for whatever leaves the machine.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..artifacts import ref_of
from .. import events as ev
from ..redact import redact
from .spans import Span, SpanEvent, SpanLink, span_id

__all__ = ["RunContext", "RunMapper", "MAX_TEXT"]

MAX_TEXT = 4096  # arguments and results are for a glance in a trace viewer, not an archive
_json = msgspec.json.Encoder()
_ENDS = (ev.RunCompleted, ev.RunFailed, ev.RunCancelled, ev.RunDiverged)


class RunContext(msgspec.Struct, frozen=True, kw_only=True):
    """Where a run's spans go: its trace, the span its run span hangs under (a child run's
    `child` action in the parent), and a link (a fork's source run)."""

    trace_id: int
    parent_id: int | None = None
    link: SpanLink | None = None


class _Open(msgspec.Struct, kw_only=True):
    span_id: int
    parent_id: int | None
    name: str
    kind: str = "internal"
    start_ns: int
    attributes: dict[str, Any]
    events: list[SpanEvent] = []


def _text(value: Any) -> str:
    value = redact(value)
    text = value if isinstance(value, str) else _json.encode(value).decode()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (bool, int, float)):
            pass
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = [_text(v) for v in value]
        else:  # a string, or a structure (tool arguments, results) shown as JSON
            value = _text(value)
        out[key] = value
    return out


def _actor(actor: ev.Actor | None) -> dict[str, Any]:
    if actor is None:
        return {}
    return {
        "vigil.actor.user": actor.user, "vigil.actor.uid": actor.uid, "vigil.actor.host": actor.host,
        "vigil.actor.pid": actor.pid, "vigil.actor.tty": actor.tty,
        "vigil.actor.ssh_connection": actor.ssh_connection, "vigil.actor.claimed": actor.claimed,
    }


def _error_info(info: ev.ErrorInfo | None) -> dict[str, Any]:
    """A failure's class, as OpenTelemetry's `error.type` (its category) and vigil's own code."""
    if info is None:
        return {}
    return {"error.type": info.category, "vigil.error.code": info.code, "vigil.error.retryable": info.retryable}


def _model(name: str) -> tuple[str | None, str]:
    provider, sep, model = name.partition(":")
    return (provider, model) if sep else (None, name)


class RunMapper:
    """Feed a run's records in seq order; each `feed` returns the spans it finished."""

    def __init__(self, run_id: str, context: RunContext) -> None:
        self.run_id = run_id
        self.context = context
        self.ended = False
        self._run: _Open | None = None
        self._called_model = False
        self._steps: dict[str, _Open] = {}
        self._actions: dict[str, _Open] = {}
        self._interrupt_steps: dict[str, str] = {}

    def feed(self, record: Any) -> list[Span]:
        e, seq, ts = record.event, record.seq, record.ts_ns
        if self.ended or (self._run is None and not isinstance(e, ev.RunStarted)):
            return []  # nothing hangs off a run that has not started, or has ended
        if isinstance(e, ev.RunStarted):
            self._start_run(e, seq, ts)
        elif isinstance(e, ev.StepStarted):
            out = self._close_step(e.step_id, ts, unfinished=True)
            self._steps[e.step_id] = _Open(
                span_id=span_id(self.run_id, seq), parent_id=self._run.span_id, name=f"step {e.node}",
                start_ns=ts, attributes={"vigil.step.id": e.step_id, "vigil.step.node": e.node,
                                         "vigil.step.attempt": e.attempt},
            )
            return out
        elif isinstance(e, ev.StepCompleted):
            return self._close_step(e.step_id, ts, extra={"vigil.step.next": list(e.next)})
        elif isinstance(e, ev.StepFailed):
            return self._close_step(e.step_id, ts, error=e.error, extra={
                "vigil.step.retry_at_ns": e.retry_at_ns, **_error_info(e.error_info)})
        elif isinstance(e, ev.ActionRequested):
            self._open_action(e, seq, ts)
        elif isinstance(e, ev.ActionSucceeded):
            return self._close_action(e.action_id, ts, output=e.output)
        elif isinstance(e, ev.ActionFailed):
            return self._close_action(e.action_id, ts, error=e.error, extra={
                "vigil.action.retryable": e.retryable, **_error_info(e.error_info)})
        elif isinstance(e, ev.Note):
            self._note(e.step_id, "vigil.note", ts, {"vigil.note.name": e.name, "vigil.note.payload": e.payload})
        elif isinstance(e, ev.ArtifactStored):
            self._note(e.step_id, "vigil.artifact.stored", ts, {
                "vigil.artifact.id": e.artifact_id, "vigil.artifact.kind": e.kind,
                "vigil.artifact.size": e.size, "vigil.action.id": e.action_id,
            })
        elif isinstance(e, ev.InterruptRaised):
            self._interrupt_steps[e.interrupt_id] = e.step_id
            self._note(e.step_id, "vigil.interrupt.raised", ts, {
                "vigil.interrupt.id": e.interrupt_id, "vigil.interrupt.kind": e.kind,
                "vigil.interrupt.title": e.title, "vigil.interrupt.payload_hash": e.payload_hash,
            })
        elif isinstance(e, ev.InterruptResolved):
            self._note(self._interrupt_steps.get(e.interrupt_id), "vigil.interrupt.resolved", ts, {
                "vigil.interrupt.id": e.interrupt_id, "vigil.decision": e.decision, **_actor(e.actor),
            })
        elif isinstance(e, ev.ToolApprovedForRun):
            self._note(None, "vigil.tool.approved_for_run", ts, {"gen_ai.tool.name": e.tool, **_actor(e.actor)})
        elif isinstance(e, ev.RunPaused):
            self._note(None, "vigil.run.paused", ts, {"vigil.reason": e.reason, **_actor(e.actor)})
        elif isinstance(e, ev.RunResumed):
            self._note(None, "vigil.run.resumed", ts, _actor(e.actor))
        elif isinstance(e, ev.RunAdopted):
            self._note(None, "vigil.run.adopted", ts, {"vigil.owner": e.owner, "vigil.owner.previous": e.previous})
        elif isinstance(e, _ENDS):
            return self._end_run(e, ts)
        return []

    # run ----------------------------------------------------------------------------------

    def _start_run(self, e: ev.RunStarted, seq: int, ts: int) -> None:
        attributes = {
            "vigil.run.id": self.run_id, "vigil.graph": e.graph, "vigil.graph.version": e.graph_version,
            "vigil.run.lineage": e.lineage, "vigil.run.parent_id": e.parent_run_id,
            "vigil.run.parent_seq": e.parent_seq,
            **{f"vigil.label.{k}": v for k, v in e.labels.items()},
        }
        self._run = _Open(span_id=span_id(self.run_id, seq), parent_id=self.context.parent_id,
                          name=e.graph, start_ns=ts, attributes=attributes)

    def _end_run(self, e: Any, ts: int) -> list[Span]:
        out = []
        for action_id in list(self._actions):
            out += self._close_action(action_id, ts, unfinished=True)
        for step_id in list(self._steps):
            out += self._close_step(step_id, ts, unfinished=True)
        run, graph = self._run, self._run.name
        operation = "invoke_agent" if self._called_model else "invoke_workflow"
        run.name = f"{operation} {graph}"
        run.attributes["gen_ai.operation.name"] = operation
        if self._called_model:
            run.attributes["gen_ai.agent.name"] = graph
        status = {ev.RunCompleted: "completed", ev.RunFailed: "failed",
                  ev.RunCancelled: "cancelled", ev.RunDiverged: "diverged"}[type(e)]
        run.attributes["vigil.run.status"] = status
        error = getattr(e, "error", None)
        run.attributes.update(_error_info(getattr(e, "error_info", None)))
        if isinstance(e, ev.RunCancelled):
            run.events.append(SpanEvent(name="vigil.run.cancelled", ts_ns=ts,
                                        attributes=_clean({"vigil.reason": e.reason, **_actor(e.actor)})))
        self.ended = True
        links = (self.context.link,) if self.context.link else ()
        return out + [self._finish(run, ts, error=error, links=links)]

    # steps and actions --------------------------------------------------------------------

    def _close_step(self, step_id: str, ts: int, *, error: str | None = None,
                    extra: dict | None = None, unfinished: bool = False) -> list[Span]:
        step = self._steps.pop(step_id, None)
        if step is None:
            return []
        out = []
        for action_id, action in list(self._actions.items()):
            if action.parent_id == step.span_id:  # a step never ends before its effects do
                out += self._close_action(action_id, ts, unfinished=True)
        step.attributes.update(extra or {})
        if unfinished:
            step.attributes["vigil.unfinished"] = True
        return out + [self._finish(step, ts, error=error)]

    def _open_action(self, e: ev.ActionRequested, seq: int, ts: int) -> None:
        step = self._steps.get(e.step_id)
        attributes: dict[str, Any] = {"vigil.action.id": e.action_id, "vigil.action.kind": e.kind,
                                      "vigil.step.id": e.step_id}
        kind = "internal"
        if e.kind == "tool":
            name = f"execute_tool {e.name}"
            attributes.update({
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": e.name,
                "gen_ai.tool.call.id": e.action_id, "gen_ai.tool.type": "function",
                "gen_ai.tool.call.arguments": e.input,
            })
        elif e.kind == "llm":
            provider, model = _model(e.name)
            name, kind = f"chat {model}", "client"
            self._called_model = True
            attributes.update({"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                               "gen_ai.request.model": model})
        else:
            name = f"{e.kind} {e.name}"
        self._actions[e.action_id] = _Open(
            span_id=span_id(self.run_id, seq), parent_id=step.span_id if step else self._run.span_id,
            name=name, kind=kind, start_ns=ts, attributes=attributes,
        )

    def _close_action(self, action_id: str, ts: int, *, output: Any = None, error: str | None = None,
                      extra: dict | None = None, unfinished: bool = False) -> list[Span]:
        action = self._actions.pop(action_id, None)
        if action is None:
            return []
        a = action.attributes
        a.update(extra or {})
        if unfinished:
            a["vigil.unfinished"] = True
        elif a.get("gen_ai.operation.name") == "chat" and isinstance(output, dict):
            a["gen_ai.response.model"] = a.get("gen_ai.request.model")
            usage = output.get("usage") or {}
            for key in ("input_tokens", "output_tokens"):
                if isinstance(usage.get(key), int):
                    a[f"gen_ai.usage.{key}"] = usage[key]
            a["gen_ai.response.finish_reasons"] = ["tool_calls" if output.get("tool_calls") else "stop"]
        elif a.get("gen_ai.operation.name") == "execute_tool" and error is None:
            ref = ref_of(output)  # an output over the threshold is in an artifact: say which
            a["gen_ai.tool.call.result"] = output if ref is None else (
                f"[artifact {ref.artifact_id}: {ref.kind}, {ref.size} bytes]")
        return [self._finish(action, ts, error=error)]

    def _note(self, step_id: str | None, name: str, ts: int, attributes: dict) -> None:
        target = self._steps.get(step_id) if step_id else None
        (target or self._run).events.append(SpanEvent(name=name, ts_ns=ts, attributes=_clean(attributes)))

    def _finish(self, o: _Open, end_ns: int, *, error: str | None = None, links: tuple = ()) -> Span:
        return Span(
            trace_id=self.context.trace_id, span_id=o.span_id, parent_id=o.parent_id, name=o.name,
            kind=o.kind, start_ns=o.start_ns, end_ns=max(end_ns, o.start_ns), attributes=_clean(o.attributes),
            events=tuple(o.events), links=links, error=_text(error) if error is not None else None,
        )
