"""Plain-text renderings of runs and events, shared by the CLI and the console."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from kernel.codec import Corrupt, Record, Unknown, short, to_builtins
from kernel.events import (
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    InterruptRaised,
    InterruptResolved,
    Note,
    RunCancelled,
    RunCompleted,
    RunDiverged,
    RunAdopted,
    RunFailed,
    RunPaused,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    ToolApprovedForRun,
    ArtifactStored,
)
from kernel.owner import owner_alive
from kernel.projection import TERMINAL, RunInfo

__all__ = ["short", "clock", "duration", "summary", "event_line", "record_json", "run_line"]

_json = msgspec.json.Encoder()


def clock(ts_ns: int, *, date: bool = False) -> str:
    seconds = ts_ns / 1e9
    stamp = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(seconds))
    return stamp if date else f"{stamp}.{int(seconds * 1000) % 1000:03d}"


def duration(ns: int) -> str:
    s = ns / 1e9
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _by(actor) -> str:
    if actor is None:
        return ""
    # Relayed by a signal: who the sending process said it was, unchecked (see README).
    via = f" via {actor.via}" if actor.via else ""
    return f" by {actor.user}{via} (claimed)" if actor.claimed else f" by {actor.user}{via}"


def _patches(update: tuple) -> str:
    return " ".join(f"{p.op}:{p.key}" for p in update)


def summary(event: Any) -> str:
    """One line saying what an event means."""
    match event:
        case RunStarted():
            fork = f" fork of {event.parent_run_id}@{event.parent_seq}" if event.parent_run_id else ""
            return f"{event.graph} v{event.graph_version} input={short(event.input)}{fork}"
        case RunCompleted():
            return f"output={short(event.output)}"
        case RunFailed():
            return f"{event.error}{_category(event.error_info)}"
        case RunDiverged():
            return event.error
        case RunCancelled() | RunPaused():
            who = _by(event.actor)
            return f"{event.reason}{who}"
        case RunResumed():
            return _by(event.actor).lstrip()
        case RunAdopted():
            return f"driven by {event.owner}" + (f" after {event.previous}" if event.previous else "")
        case StepStarted():
            return f"{event.node} [{event.step_id}] attempt {event.attempt}"
        case StepCompleted():
            nxt = ",".join(event.next) or "end"
            return f"{event.node} [{event.step_id}] {_patches(event.update)} -> {nxt}"
        case StepFailed():
            return f"{event.node} attempt {event.attempt}: {event.error}{_category(event.error_info)}"
        case ActionRequested():
            return f"{event.kind} {event.name}({short(event.input, 48)}) [{event.action_id}]"
        case ActionSucceeded():
            return f"[{event.action_id}] -> {short(event.output)}"
        case ActionFailed():
            return (f"[{event.action_id}] {event.error}{_category(event.error_info)}"
                    + (" (retryable)" if event.retryable else ""))
        case InterruptRaised():
            return f"{event.kind}: {event.title} [{event.interrupt_id}]"
        case InterruptResolved():
            who = _by(event.actor)
            return f"{event.decision} [{event.interrupt_id}]{who}"
        case ToolApprovedForRun():
            return f"{event.tool} approved for the rest of the run"
        case Note():
            return f"{event.name} {short(event.payload, 80)} [{event.note_id}]"
        case ArtifactStored():
            return f"{event.kind}, {event.size:,} bytes, {event.artifact_id[:12]} [{event.action_id}]"
        case Unknown():
            return f"unknown event type ({len(event.body)} bytes; written by a newer vigil?)"
        case Corrupt():
            return f"CORRUPT: {event.error}"
    return ""


def _category(info) -> str:
    return f" [{info.category}:{info.code}]" if info is not None else ""


def event_line(record: Record) -> str:
    return f"{record.seq:>7}  {clock(record.ts_ns)}  {record.type:<18} {summary(record.event)}"


def record_json(record: Record) -> dict[str, Any]:
    """The record's fields and the event's fields in one flat object."""
    out: dict[str, Any] = {
        "pos": record.pos,
        "run_id": record.run_id,
        "seq": record.seq,
        "ts_ns": record.ts_ns,
        "type": record.type,
    }
    event = record.event
    if isinstance(event, Unknown):
        out["unknown"] = True
    elif isinstance(event, Corrupt):
        out["corrupt"] = event.error
    else:
        out.update(to_builtins(event))
    return out


def owner_text(run: RunInfo) -> str:
    """Who drives a run: `host:pid`, `orphaned` (its owner died: a worker or `vigil resume`
    adopts it), `free` (queued or released: likewise), or `-` for an ended run."""
    if run.status in TERMINAL:
        return "-"
    if not run.owner:
        return "free"
    if not owner_alive(run.owner, run.lease_until_ns, run.seen_ns):
        return "orphaned"
    host, pid, _ = run.owner.rsplit(":", 2)
    return f"{host}:{pid}"


def run_line(run: RunInfo, now_ns: int) -> str:
    end = run.updated_ns if run.status in TERMINAL else now_ns
    pending = str(run.pending) if run.pending else "-"
    # What kind of failure, in its own column beside the status: one word, so `awk` still works.
    error = run.error_category if run.status == "failed" and run.error_category else "-"
    return (
        f"{run.run_id:<16}  {run.graph[:18]:<18}  {run.status:<9}  {error:<10}  {clock(run.created_ns, date=True)}"
        f"  {duration(end - run.created_ns):>8}  {run.last_seq:>7}  {pending:>7}  {owner_text(run)}"
    )


RUN_HEADER = (
    f"{'RUN':<16}  {'GRAPH':<18}  {'STATUS':<9}  {'ERROR':<10}  {'STARTED':<19}  {'DURATION':>8}  {'EVENTS':>7}"
    f"  {'PENDING':>7}  OWNER"
)
