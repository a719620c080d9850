"""A run's recorded events, matched one by one against what a replaying driver would append.

Used by `vigil replay` (replaycheck.py). The driver's own matcher (effects.py `expect`) checks a
call against what the log holds at its position when a step runs *again*; a replay check runs
every step again from the first, with a view that holds only what the replay has produced so
far, so each append is matched here instead: by identity (which step, which call position,
which occurrence), never by arrival order, because concurrent branches and task groups append
in whatever order their commits landed live.
"""

from __future__ import annotations

from typing import Any

from ..codec import Corrupt, Unknown, canonical_hash, short, to_builtins
from ..events import (
    ArtifactStored,
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    InterruptRaised,
    InterruptResolved,
    RunAdopted,
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

__all__ = ["Recording", "Mismatch", "key_of", "step_of", "describe", "is_driver", "EXTERNAL_TYPES"]

# What comes from outside the run's code (its start, decisions, pauses, cancels, adoptions):
# fed to the replay as recorded. Every other event is the driver's own, matched against what
# the replay appends; a kind of event added later (a note, say) is the driver's by default.
EXTERNAL_TYPES = (
    RunStarted, InterruptResolved, ToolApprovedForRun, RunPaused, RunResumed, RunAdopted, RunCancelled,
)


def is_driver(event: Any) -> bool:
    return not isinstance(event, (*EXTERNAL_TYPES, Unknown, Corrupt))


class Mismatch(Exception):
    """The code disagrees with the recorded event at `seq`."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def key_of(event: Any) -> tuple:
    """The identity of a driver event: what it is about, independent of when it was appended."""
    if isinstance(event, (StepStarted, StepFailed)):
        return (type(event).__name__, event.step_id, event.attempt)
    if isinstance(event, StepCompleted):
        return ("StepCompleted", event.step_id)
    if isinstance(event, ActionRequested):
        return ("call", event.action_id)
    if isinstance(event, (ActionSucceeded, ActionFailed)):
        return ("outcome", event.action_id)
    if isinstance(event, InterruptRaised):
        return ("interrupt", event.interrupt_id)
    if isinstance(event, (RunCompleted, RunFailed, RunDiverged)):
        return ("end",)
    # Any other event of a step is identified by its type and its ids (a note or an artifact by
    # its position).
    return (type(event).__name__, *(getattr(event, f, None) for f in ("note_id", "action_id", "step_id")))


def step_of(event: Any) -> str | None:
    """The step an event belongs to (action and interrupt ids start with their step id)."""
    step = getattr(event, "step_id", None)
    if step is not None:
        return step
    ident = (getattr(event, "action_id", None) or getattr(event, "interrupt_id", None)
             or getattr(event, "note_id", None))
    return ident.split("#", 1)[0] if ident else None


def describe(event: Any) -> str:
    if isinstance(event, ActionRequested):
        return f"{event.kind} {event.name} {short(event.input, 80)}"
    if isinstance(event, InterruptRaised):
        return f"{event.kind} interrupt {event.title!r} {short(event.payload, 80)}"
    if isinstance(event, (StepStarted, StepCompleted, StepFailed)):
        return f"{type(event).__name__} of step {event.step_id}"
    if isinstance(event, (ActionSucceeded, ActionFailed)):
        return f"{type(event).__name__} of {event.action_id}"
    if isinstance(event, RunFailed):
        return f"RunFailed ({short(event.error, 80)})"
    return type(event).__name__


def _ident(event: Any) -> str:
    return (getattr(event, "action_id", None) or getattr(event, "interrupt_id", None)
            or getattr(event, "note_id", None) or getattr(event, "step_id", None) or "the run")


def _differs(recorded: Any, new: Any) -> str | None:
    """How `new` differs from the recorded event with the same identity, or None. Fields that
    are the clock's or a random draw's (a retry's time, a timer's due time, a child's run id)
    are not compared: the recording's own are kept."""
    if type(recorded) is not type(new):
        return f"the log has {describe(recorded)}, the code now appends {describe(new)}"
    if isinstance(new, ActionRequested):
        if (recorded.kind, recorded.name) != (new.kind, new.name) or \
                canonical_hash(recorded.input) != canonical_hash(new.input):
            return (f"{new.action_id}: the log has {describe(recorded)}, "
                    f"the code now calls {describe(new)}")
    elif isinstance(new, InterruptRaised):
        if (recorded.kind, recorded.title, recorded.payload_hash) != (new.kind, new.title, new.payload_hash):
            return (f"{new.interrupt_id}: the log has {describe(recorded)}, "
                    f"the code now raises {describe(new)}")
    elif isinstance(new, StepCompleted):
        if recorded.state_hash != new.state_hash:
            keys = _changed_keys(recorded.update, new.update)
            return (f"step {new.step_id}: the state after it differs (the log has "
                    f"{recorded.state_hash[:12]}, the code now makes {new.state_hash[:12]}"
                    f"{'; keys ' + ', '.join(keys) if keys else ''})")
        if tuple(recorded.next) != tuple(new.next):
            return (f"step {new.step_id}: the log goes on to {list(recorded.next)}, "
                    f"the code now goes to {list(new.next)}")
    elif isinstance(new, (StepStarted, StepFailed)):
        if recorded.node != new.node:
            return f"step {new.step_id}: the log runs node {recorded.node}, the code now {new.node}"
        if isinstance(new, StepFailed) and recorded.error != new.error:
            return (f"step {new.step_id} attempt {new.attempt}: the log failed with "
                    f"{short(recorded.error, 80)}, the code now with {short(new.error, 80)}")
    elif isinstance(new, RunFailed):
        if recorded.error != new.error:
            return f"the log failed with {short(recorded.error, 80)}, the code now with {short(new.error, 80)}"
    elif isinstance(new, RunDiverged):
        if recorded.error != new.error:
            return f"the log diverged ({short(recorded.error, 80)}), the code now {short(new.error, 120)}"
    elif isinstance(new, RunCompleted):
        if canonical_hash(recorded.output) != canonical_hash(new.output):
            return f"the run's output differs (the log has {short(recorded.output, 60)}, the code now {short(new.output, 60)})"
    elif isinstance(new, ActionFailed):
        if recorded.error != new.error:
            return f"{new.action_id}: the log failed with {short(recorded.error, 80)}, the code now with {short(new.error, 80)}"
    elif not isinstance(new, ActionSucceeded):
        # Any other kind of event (a note, say): all of it must be the same.
        if canonical_hash(to_builtins(recorded)) != canonical_hash(to_builtins(new)):
            return (f"{_ident(new)}: the log has {type(recorded).__name__} {_fields(recorded)}, "
                    f"the code now appends {_fields(new)}")
    return None


def _fields(event: Any) -> str:
    """An event's content without its type and ids, for a message."""
    data = to_builtins(event)
    return short({k: v for k, v in data.items() if k not in ("type", "note_id", "step_id")}, 80)


def _changed_keys(old: tuple, new: tuple) -> list[str]:
    before = {p.key: (p.op, canonical_hash(p.value)) for p in old}
    after = {p.key: (p.op, canonical_hash(p.value)) for p in new}
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class Recording:
    """One run's events as recorded, and which of them the replay has accounted for."""

    def __init__(self, records: list[tuple[int, Any]]) -> None:
        self.records = records
        self.used: set[int] = set()
        self.matched_driver = 0
        self._by_key: dict[tuple, list[int]] = {}
        self._event = dict(records)
        self._lo = 0  # records before this index are all used: scans start here
        # action id -> seqs of its requests, outcomes (an output's artifact first) and in-doubt
        # questions, in order
        self._about: dict[str, list[int]] = {}
        for seq, event in records:
            if is_driver(event):
                self._by_key.setdefault(key_of(event), []).append(seq)
            if isinstance(event, (ActionRequested, ActionSucceeded, ActionFailed, ArtifactStored)):
                self._about.setdefault(event.action_id, []).append(seq)
            elif isinstance(event, InterruptRaised) and event.kind == "in_doubt":
                self._about.setdefault(event.interrupt_id.split(".doubt", 1)[0], []).append(seq)

    @property
    def last_seq(self) -> int:
        return self.records[-1][0] if self.records else 0

    def records_at(self, seq: int) -> Any:
        return self._event.get(seq)

    def unreadable(self) -> tuple[int, str] | None:
        for seq, event in self.records:
            if isinstance(event, (Unknown, Corrupt)):
                return seq, f"{type(event).__name__.lower()} {event.type}"
        return None

    def unused(self, *, driver: bool | None = None, step: str | None = None, before: int | None = None):
        """Recorded events not accounted for yet, in seq order."""
        records, used = self.records, self.used
        while self._lo < len(records) and records[self._lo][0] in used:
            self._lo += 1
        for i in range(self._lo, len(records)):
            seq, event = records[i]
            if before is not None and seq >= before:
                return
            if seq in used:
                continue
            if driver is not None and is_driver(event) != driver:
                continue
            if step is not None and step_of(event) != step:
                continue
            yield seq, event

    def completes_after_another(self, step_id: str) -> bool:
        """Whether the recording completed another step of the same superstep before this one
        and the replay has not completed it yet. Completion order matters: each StepCompleted's
        state hash (and an edge function's view) is of the state with the completions before it."""
        mine = next((s for s in self._by_key.get(("StepCompleted", step_id), ()) if s not in self.used), None)
        if mine is None:
            return False
        superstep = step_id.split(".", 1)[0]
        return any(
            seq < mine and isinstance(event, StepCompleted) and event.step_id.split(".", 1)[0] == superstep
            for seq, event in self.unused(driver=True, before=mine)
        )

    def requested_at(self, action_id: str) -> int:
        """The seq of the occurrence of `action_id` the replay requested last (0: none)."""
        return max((s for s in self._by_key.get(("call", action_id), ()) if s in self.used), default=0)

    def has(self, key: tuple) -> bool:
        return bool(self._by_key.get(key))

    def match(self, new: Any) -> tuple[int, Any] | None:
        """The recorded event `new` is (its seq and the event as recorded, which the replay
        folds), or None when the recording has no such event left: the code went past the
        recording's end (the caller decides whether that is the frontier or a divergence).
        Raises Mismatch when the code disagrees with the recording."""
        key = key_of(new)
        seq = next((s for s in self._by_key.get(key, ()) if s not in self.used), None)
        if seq is None:
            return None
        recorded = self._event[seq]
        problem = _differs(recorded, new)
        if problem is not None:
            raise Mismatch(seq, problem)
        if isinstance(new, StepCompleted):
            # A step completes only after every call it recorded: one left is a call the code
            # no longer makes (what effects.py `unconsumed` says of a re-executed step).
            for s, left in self.unused(driver=True, step=new.step_id, before=seq):
                raise Mismatch(s, f"{_ident(left)}: the log has {describe(left)}, the code now ends the step without it")
        self.used.add(seq)
        self.matched_driver += 1
        return seq, recorded

    def extra(self, new: Any) -> Mismatch | None:
        """`new` has no recorded counterpart. A divergence when the recording goes on with
        something else (named at the first recorded event of the same step still unaccounted
        for, or else the first of the run); None when every driver event has been accounted for
        (the recording ends here: a run still in flight, or one cancelled at this point)."""
        step = step_of(new)
        left = next(self.unused(driver=True, step=step), None) if step else None
        left = left or next(self.unused(driver=True), None)
        if left is None:
            return None
        seq, recorded = left
        verb = {ActionRequested: "calls", InterruptRaised: "raises"}.get(type(new), "appends")
        return Mismatch(seq, f"{_ident(recorded)}: the log has {describe(recorded)}, the code now {verb} {describe(new)}")

    def outcome(self, action_id: str, after: int) -> Any:
        """The recorded outcome of the occurrence of `action_id` requested at `after`: None if
        the recording has none before the action is requested again or asked about (the
        process stopped while the effect ran, or the recording ends there)."""
        for seq in self._about.get(action_id, ()):
            if seq <= after:
                continue
            event = self._event[seq]
            if isinstance(event, ArtifactStored):
                continue  # an output stored as an artifact: its ActionSucceeded follows
            return (seq, event) if isinstance(event, (ActionSucceeded, ActionFailed)) else None
        return None

    def artifact_for(self, action_id: str, after: int) -> Any:
        """The ArtifactStored recorded for the outcome of `action_id` requested at `after` (an
        output over the threshold), or None."""
        for seq in self._about.get(action_id, ()):
            if seq > after:
                event = self._event[seq]
                if not isinstance(event, ArtifactStored):
                    return None
                return event
        return None

    def child_key(self, position: str) -> str | None:
        """The run id the recording gave the child run started at a call position."""
        for seq, event in self.records:
            if (seq not in self.used and isinstance(event, ActionRequested) and event.kind == "child"
                    and (event.action_id == position or event.action_id.startswith(position + "@"))):
                return event.idempotency_key
        return None

    def child_request(self, child_id: str) -> tuple[int, ActionRequested] | None:
        for seq, event in self.records:
            if isinstance(event, ActionRequested) and event.kind == "child" and event.idempotency_key == child_id:
                return seq, event
        return None

    def externals(self) -> list[tuple[int, Any]]:
        """The next decisions and commands from outside the code to feed the replay: the first
        one not fed yet and those right after it (a resolution and its 'approve for the run')."""
        out: list[tuple[int, Any]] = []
        for seq, event in self.records:
            if seq in self.used:
                continue
            if is_driver(event) or isinstance(event, (Unknown, Corrupt)):
                if out:
                    break
                continue
            out.append((seq, event))
        return out
