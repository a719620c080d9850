"""What a driver needs to know about a run, folded from its log: the state, where the run is
in its supersteps, and every recorded effect and interrupt, so re-execution can replay them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..codec import Corrupt, Unknown
from ..events import (
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    ArtifactStored,
    InterruptRaised,
    InterruptResolved,
    Note,
    RunCancelled,
    RunCompleted,
    RunDiverged,
    RunFailed,
    RunPaused,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    ToolApprovedForRun,
)
from ..state import apply

__all__ = ["RunView", "ActionRecord", "superstep_of", "call_position", "resolution_problem",
           "after_end_problem", "ENDS"]

ENDS = (RunCompleted, RunFailed, RunCancelled, RunDiverged)

_clone_enc = msgspec.msgpack.Encoder()
_clone_dec = msgspec.msgpack.Decoder()


def clone(value: Any) -> Any:
    """A deep copy, fast: what the nodes get, so they can never change the folded state."""
    return _clone_dec.decode(_clone_enc.encode(value))


def superstep_of(step_id: str) -> int:
    return int(step_id.split(".", 1)[0])


def resolution_problem(event: InterruptResolved, entry: list | None) -> str | None:
    """Why a resolution in a log must not be acted on, or None. `entry` is [raised, resolved]
    for its interrupt as folded so far. The driver, `verify` and `import` all ask this, so a
    decision written into a log by hand is refused the same way everywhere."""
    if entry is None:
        return f"a resolution of interrupt {event.interrupt_id!r}, which was never raised"
    raised, resolved = entry
    if resolved is not None:
        return f"a second resolution of interrupt {event.interrupt_id} (already resolved: {resolved.decision})"
    if event.payload_hash != raised.payload_hash:
        return (
            f"a resolution of interrupt {event.interrupt_id} whose payload hash "
            f"{event.payload_hash[:12] or '(none)'} is not the raised payload's {raised.payload_hash[:12]}"
        )
    return None


def after_end_problem(event: Any, terminal: Any) -> str:
    return f"{type(event).__name__} after the run ended ({type(terminal).__name__})"


def call_position(interrupt_id: str) -> str | None:
    """The ctx call an interrupt belongs to: itself (`ctx.interrupt`), the tool call it gates
    (`<call>.approval`), or None for an in-doubt question (it belongs to the effect's record)."""
    head, _, tail = interrupt_id.rpartition("#")
    if ".doubt" in tail:
        return None
    return interrupt_id.removesuffix(".approval")


@dataclass
class ActionRecord:
    requested: ActionRequested
    outcome: ActionSucceeded | ActionFailed | None = None
    attempt: int = 1  # the step attempt the request was made in
    requests: int = 1  # how many times it was requested: each is one occurrence of the effect


@dataclass
class RunView:
    run_id: str
    started: RunStarted | None = None
    seq: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    terminal: Any = None
    paused: bool = False
    # step_id -> the attempt last started, and the step's failures and completion
    attempts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[StepFailed]] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    # superstep -> (node, next) of its completions in log order; the current superstep's start state
    completions: dict[int, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)
    step_start_state: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, ActionRecord] = field(default_factory=dict)
    interrupts: dict[str, list] = field(default_factory=dict)  # id -> [raised, resolved | None]
    approved_tools: set[str] = field(default_factory=set)
    # step_id -> {call position: the attempt that recorded it}: what a re-execution must consume
    calls: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)
    notes: dict[str, Note] = field(default_factory=dict)  # call position -> the Note made there
    # call position or effect action id -> the ArtifactStored recorded there (kernel/artifacts.py)
    artifacts: dict[str, ArtifactStored] = field(default_factory=dict)

    def pending_interrupts(self) -> list[InterruptRaised]:
        return [raised for raised, resolved in self.interrupts.values() if resolved is None]

    def feed(self, seq: int, event: Any) -> None:
        self.seq = seq
        if isinstance(event, (Unknown, Corrupt)):
            self.problems.append((seq, f"{type(event).__name__.lower()} {event.type}"))
        elif self.terminal is not None:
            self.problems.append((seq, after_end_problem(event, self.terminal)))
        elif isinstance(event, StepCompleted):
            n = superstep_of(event.step_id)
            if n not in self.step_start_state:
                self.step_start_state = {n: clone(self.state)}
            apply(self.state, event.update)
            self.completed.add(event.step_id)
            self.completions.setdefault(n, []).append((event.node, event.next))
        elif isinstance(event, StepStarted):
            self.attempts[event.step_id] = event.attempt
        elif isinstance(event, ActionRequested):
            attempt = self.attempts.get(event.step_id, 1)
            before = self.actions.get(event.action_id)
            self.actions[event.action_id] = ActionRecord(
                event, None, attempt, before.requests + 1 if before else 1
            )
            self.calls.setdefault(event.step_id, {})[event.action_id] = attempt
        elif isinstance(event, (ActionSucceeded, ActionFailed)):
            record = self.actions.get(event.action_id)
            if record is not None:
                record.outcome = event
        elif isinstance(event, InterruptRaised):
            self.interrupts[event.interrupt_id] = [event, None]
            position = call_position(event.interrupt_id)
            if position is not None:
                self.calls.setdefault(event.step_id, {})[position] = self.attempts.get(event.step_id, 1)
        elif isinstance(event, InterruptResolved):
            entry = self.interrupts.get(event.interrupt_id)
            problem = resolution_problem(event, entry)
            if problem is not None:  # never honoured: the run is not driven past it
                self.problems.append((seq, problem))
            else:
                entry[1] = event
        elif isinstance(event, Note):
            self.notes[event.note_id] = event
            self.calls.setdefault(event.step_id, {})[event.note_id] = self.attempts.get(event.step_id, 1)
        elif isinstance(event, StepFailed):
            self.failures.setdefault(event.step_id, []).append(event)
        elif isinstance(event, ArtifactStored):
            self.artifacts[event.action_id] = event
            if event.action_id not in self.actions:  # a ctx.artifact call: a position of its own
                self.calls.setdefault(event.step_id, {})[event.action_id] = self.attempts.get(event.step_id, 1)
        elif isinstance(event, ToolApprovedForRun):
            self.approved_tools.add(event.tool)
        elif isinstance(event, RunStarted):
            self.started = event
            apply(self.state, event.update)
        elif isinstance(event, ENDS):
            self.terminal = event
        elif isinstance(event, RunPaused):
            self.paused = True
        elif isinstance(event, RunResumed):
            self.paused = False

    def state_before(self, superstep: int) -> dict[str, Any]:
        """The state every node of `superstep` sees: as it was before the superstep's first
        completion (or now, if none has completed yet)."""
        return clone(self.step_start_state.get(superstep, self.state))
