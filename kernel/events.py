"""Every event in the log: frozen, kw_only msgspec Structs in one tagged union.

The tag (`type`) is the class name. A run's state is never stored as truth; it is the
fold of the `update` patches carried by RunStarted and StepCompleted (see kernel.state).
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

__all__ = [
    "Patch",
    "Actor",
    "Event",
    "EVENT_TYPES",
    "RunStarted",
    "RunCompleted",
    "RunFailed",
    "RunCancelled",
    "RunDiverged",
    "RunPaused",
    "RunResumed",
    "RunAdopted",
    "StepStarted",
    "StepCompleted",
    "StepFailed",
    "ActionRequested",
    "ActionSucceeded",
    "ActionFailed",
    "InterruptRaised",
    "InterruptResolved",
    "ToolApprovedForRun",
    "Note",
    "ErrorInfo",
    "ERROR_CATEGORIES",
    "ArtifactStored",
]

PatchOp = Literal["set", "append", "extend", "merge", "delete"]


class Patch(msgspec.Struct, frozen=True, array_like=True):
    """One generic state change: the result of a reducer, not the reducer itself."""

    op: PatchOp
    key: str
    value: Any = None


class Actor(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who made a human decision, recorded with it.

    `claimed`: the decision was relayed by a signal, and this is who the sending process said
    it was (it recorded itself in the signal row); the owner could not check it. A decision made
    in the process that records it is that process's own (`claimed` false, left out of the body).

    `via`: the console was not opened in a terminal of its own but relayed, e.g. "vigil serve
    from 192.0.2.7:51234" for a browser session; user, tty and ssh_connection are then those of
    whoever started `vigil serve`, so this says who actually pressed the key.
    """

    user: str
    uid: int
    host: str
    pid: int
    tty: str | None = None
    ssh_connection: str | None = None
    claimed: bool = False
    via: str | None = None


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    pass


# run ---------------------------------------------------------------------------------


class RunStarted(_Event):
    graph: str
    graph_version: str = "1"
    input: Any = None
    update: tuple[Patch, ...] = ()
    parent_run_id: str | None = None
    parent_seq: int | None = None  # the parent's seq: the fork point, or the child's request
    lineage: Literal["child", "fork"] | None = None
    labels: dict[str, str] = {}
    start_at: tuple[str, ...] = ()  # forks: the nodes the first superstep runs (default: START's)


class RunCompleted(_Event):
    output: Any = None


class RunFailed(_Event):
    error: str
    error_info: ErrorInfo | None = None  # None in bodies written before error_info existed


class RunCancelled(_Event):
    reason: str = ""
    actor: Actor | None = None


class RunDiverged(_Event):
    """A replayed effect did not match the recorded one; the run is parked."""

    step_id: str
    error: str


class RunPaused(_Event):
    """The run stops at its next step boundary until RunResumed (the step under way finishes)."""

    reason: str = ""
    actor: Actor | None = None


class RunResumed(_Event):
    actor: Actor | None = None


class RunAdopted(_Event):
    """A process took over driving the run (its owner died, or the run was queued or released)."""

    owner: str
    previous: str | None = None


# step --------------------------------------------------------------------------------


class StepStarted(_Event):
    step_id: str
    node: str
    attempt: int = 1


class StepCompleted(_Event):
    step_id: str
    node: str
    update: tuple[Patch, ...] = ()
    next: tuple[str, ...] = ()
    state_hash: str = ""


class StepFailed(_Event):
    step_id: str
    node: str
    attempt: int
    error: str
    retry_at_ns: int | None = None
    error_info: ErrorInfo | None = None


# action (every effect) ----------------------------------------------------------------

ActionKind = Literal["tool", "llm", "sleep", "clock", "random", "child"]


class ActionRequested(_Event):
    action_id: str
    step_id: str
    kind: ActionKind
    name: str
    input: Any = None
    idempotency_key: str | None = None
    due_ns: int | None = None  # a durable timer: when the sleep ends

class ActionSucceeded(_Event):
    action_id: str
    output: Any = None


class ActionFailed(_Event):
    action_id: str
    error: str
    retryable: bool = False
    error_info: ErrorInfo | None = None


# interrupt ---------------------------------------------------------------------------


class InterruptRaised(_Event):
    interrupt_id: str
    step_id: str
    kind: Literal["approval", "input", "in_doubt"]
    title: str
    payload: Any = None
    payload_hash: str = ""


class InterruptResolved(_Event):
    interrupt_id: str
    decision: Literal["approve", "reject", "edit", "answer", "retry", "fail"]
    value: Any = None
    payload_hash: str = ""
    actor: Actor | None = None


class ToolApprovedForRun(_Event):
    """'Approve this tool for the rest of the run', honoured on replay."""

    tool: str
    actor: Actor | None = None


# notes and errors (added last: a merge with other branches' events stays a pure addition) ------


class Note(_Event):
    """A domain event a node records with `ctx.note(name, payload)`: what the run decided or
    found, for people and tools reading the log. Never part of the state (the fold skips it);
    `note_id` is the call position, so a re-executed step does not note twice."""

    note_id: str
    step_id: str
    name: str
    payload: Any = None


# What a failure was, for filtering and retry decisions; the free text stays in `error`.
ERROR_CATEGORIES = ("rate_limit", "transport", "tool", "policy", "timeout", "internal")


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A failure, classified where it happened. `category` is a str, not a Literal, so a body
    written by a newer vigil with a category this one does not know still decodes. Every field
    is written, defaults too: readers of the JSON look for `category` and `retryable`."""

    code: str
    category: str = "internal"
    retryable: bool = False
    message: str = ""


# artifact ----------------------------------------------------------------------------


class ArtifactStored(_Event):
    """Bytes stored in the log's artifacts table (kernel/artifacts.py), by `ctx.artifact` at
    call position `action_id`, or as the output of the effect `action_id` (its ActionSucceeded,
    next, holds the reference): export, copy and verify find a run's artifacts by these."""

    artifact_id: str
    kind: str
    size: int
    step_id: str
    action_id: str


Event = Union[
    RunStarted,
    RunCompleted,
    RunFailed,
    RunCancelled,
    RunDiverged,
    RunPaused,
    RunResumed,
    RunAdopted,
    StepStarted,
    StepCompleted,
    StepFailed,
    ActionRequested,
    ActionSucceeded,
    ActionFailed,
    InterruptRaised,
    InterruptResolved,
    ToolApprovedForRun,
    Note,
    ArtifactStored,
]

EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in Event.__args__}
