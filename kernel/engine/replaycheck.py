"""`vigil replay`: re-execute the current graph code against recorded runs, in memory.

What an operator runs before deploying a new version of a graph with runs in flight: every
recorded step runs again, from the first, with the real driver (supersteps, effects, scopes,
interrupts, retries), and everything it would append is matched against the recording
(recording.py). Nothing touches the world: a tool, a model, a timer or a child run is never
run; its outcome is the recorded one. Nothing is appended: the driver writes to a store that
lives in memory and is thrown away.

Decisions, pauses, cancels and adoptions are not the code's: they are fed to the replay as
recorded, when the replay has got to where they were made (its branches all wait or stop).
The end of a recording is not a divergence: a run still in flight replays up to its frontier.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, AsyncIterator, Iterable

import msgspec

from . import scopes
from ..errors import ActionError, NotFound, Suspended
from ..events import (
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    InterruptRaised,
    RunDiverged,
    RunFailed,
    RunStarted,
    StepFailed,
)
from ..graph import Graph
from ..artifacts import ArtifactInfo, ArtifactMissing, artifact_id
from .artifacts import replayed_output
from .driver import RunDriver
from .effects import error_text
from .recording import Mismatch, Recording, describe, is_driver
from .runview import ENDS, RunView

__all__ = ["Verdict", "replay_run", "replay_records", "replay_all"]


@dataclass
class Verdict:
    """One run's replay: status `ok`, `diverged`, `unreadable` or `skipped` (graph not here)."""

    run_id: str
    graph: str
    status: str
    seq: int | None = None  # the recorded event the code disagreed with
    reason: str = ""
    last_seq: int = 0
    in_flight: bool = False  # the recording has no end: replayed up to its frontier

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Halt(BaseException):
    """Unwinds a replay's driver at once: a divergence, or the recording's end. A BaseException,
    like Suspended, so a node's `except Exception` cannot swallow it."""


class _Later(BaseException):
    """A branch whose completion the recording has after a sibling's that is not replayed yet."""


class _MemoryStore:
    """Where a replay's driver appends: nowhere. Each append 'commits' at once. Artifacts are
    read from the recorded log (`source`) and never stored."""

    readonly = False

    def __init__(self, source: Any = None) -> None:
        self.source = source

    async def put_artifact(self, data: bytes, kind: str, **_: Any) -> ArtifactInfo:
        return ArtifactInfo(artifact_id=artifact_id(data), kind=kind, size=len(data), created_ns=0)

    async def get_artifact(self, aid: str) -> bytes:
        if self.source is None:
            raise ArtifactMissing(f"no log to read artifact {aid} from")
        return await self.source.get_artifact(aid)

    def submit(self, run_id: str, events: Any, *, expected_seq: int, **_: Any) -> asyncio.Future[int]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(expected_seq + len(events))
        return future


class _Host:
    """The Host a replay's driver sees (host.py): it starts nothing and tells no one."""

    approvals = "ask"  # whether a call asked is the recording's to say (ReplayDriver.approve)
    draining = False

    def __init__(self, recording: Recording, source: Any = None) -> None:
        self.store = _MemoryStore(source)
        self.recording = recording
        self.child_at: str | None = None

    def may_drive(self, driver: Any) -> bool:
        return True

    def slot_freed(self, task: Any) -> None:
        pass

    def stream(self, run_id: str, action_id: str, token: str) -> None:
        pass

    def raised(self, run_id: str, raised: InterruptRaised) -> None:
        pass

    def lost(self, run_id: str, why: str) -> None:
        pass

    def finished(self, driver: Any) -> None:
        pass

    def auto_resolve(self, raised: InterruptRaised) -> None:
        return None  # a decision, automatic or not, is fed from the recording

    async def new_child_id(self, parent_run_id: str) -> str:
        # The recorded child's id, so the parent's code sees what it saw live.
        return self.recording.child_key(self.child_at or "") or "unrecorded-child"

    async def start(self, graph_name: str, input: Any = None, **kw: Any) -> str:
        return kw.get("run_id") or ""  # a child run is never started: its outcome is recorded

    async def child_status(self, run_id: str) -> Any:
        found = self.recording.child_request(run_id)
        outcome = self.recording.outcome(found[1].action_id, found[0]) if found else None
        if outcome is None:
            return SimpleNamespace(status="running", error=None)  # still running at the frontier
        event = outcome[1]
        if isinstance(event, ActionSucceeded):
            return SimpleNamespace(status="completed", error=None, output=event.output)
        # The parent recorded "child run ID STATUS: ERROR": give the same parts back.
        rest = event.error.removeprefix(f"child run {run_id} ")
        status, _, error = rest.partition(":")
        return SimpleNamespace(status=status, error=error.strip() or None)

    async def child_output(self, run_id: str) -> Any:
        return (await self.child_status(run_id)).output


class _Checker:
    """Matches every append of the replay's drivers against the recording; remembers why a
    replay stopped."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.divergence: Mismatch | None = None
        self.halted = False

    def accept(self, event: Any) -> Any:
        """The recorded event to fold in place of `event`, or raises _Halt."""
        if self.halted:
            raise _Halt()  # a node swallowed the first _Halt: it stops at its next append
        self.halted = True  # until this event is found in the recording
        rec = self.recording
        try:
            found = rec.match(event)
        except Mismatch as m:
            if isinstance(event, RunDiverged) and not isinstance(rec.records_at(m.seq), RunDiverged):
                m = Mismatch(self._seq_of(event), event.error)  # the engine's matcher: its words
            self.divergence = m
            raise _Halt() from None
        if found is not None:
            self.halted = False
            if isinstance(found[1], StepFailed):
                # A replay never waits for a durable timer: a retry the recording made is
                # replayed at once, and one it has not reached is its frontier anyway.
                return msgspec.structs.replace(found[1], retry_at_ns=0)
            return found[1]
        if isinstance(event, RunDiverged):  # the engine's own matcher found it: its words
            self.divergence = Mismatch(self._seq_of(event), event.error)
            raise _Halt()
        self.divergence = rec.extra(event)
        raise _Halt()  # no divergence: the recording ends here (the frontier)

    def _seq_of(self, event: RunDiverged) -> int:
        position = event.error.split(":", 1)[0]
        rec = self.recording
        for seq, recorded in rec.records:
            ident = getattr(recorded, "action_id", None) or getattr(recorded, "interrupt_id", None)
            if isinstance(recorded, (ActionRequested, InterruptRaised)) and ident in (position, f"{position}.approval"):
                return seq
        left = next(rec.unused(driver=True, step=event.step_id), None) or next(rec.unused(driver=True), None)
        return left[0] if left else rec.last_seq


class ReplayDriver(RunDriver):
    """The real driver, with the three doors to the world closed: an effect's outcome, a child
    run and an approval policy come from the recording; every append is checked by `_Checker`."""

    def __init__(self, host: _Host, graph: Graph, view: RunView, checker: _Checker) -> None:
        super().__init__(host, graph, view)
        self.checker = checker
        self._running: dict[int, int] = {}  # superstep -> its branches still running
        self._changed = asyncio.Event()

    def post(self, *events: Any) -> asyncio.Future[int]:
        future = super().post(*(self.checker.accept(e) for e in events))
        self._poke()
        return future

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _superstep(self, n: int, nodes: list[str]) -> bool:
        self._running[n] = len(nodes)  # counted before any starts: the first may finish at once
        return await super()._superstep(n, nodes)

    async def _branch(self, n: int, node: str, outcome: dict[str, str], *more: Any) -> None:
        try:
            await super()._branch(n, node, outcome, *more)
        except _Later:
            outcome[node] = "suspended"  # completed again, in its turn, by a later activation
        finally:
            self._running[n] -= 1
            self._poke()

    async def _complete(self, step_id: str, node: str, patches: tuple) -> None:
        # Branches complete in the recorded order (live, it was whichever finished first): the
        # state a completion hashes holds the completions before it. If the sibling recorded
        # first now waits (live it was driven on first, after a decision or a restart), this one
        # waits too and completes in a later activation, after it.
        n = int(step_id.split(".", 1)[0])
        while self.checker.recording.completes_after_another(step_id):
            if self._running.get(n, 0) <= 1:
                raise _Later()
            await self._changed.wait()
        await super()._complete(step_id, node, patches)

    async def effect(self, *args: Any, limit: Any = None, **kw: Any) -> Any:
        # No slot of a tool's or a model's process-wide limit: nothing runs here, and a replay
        # in a process that also drives runs must not queue behind them (or hold them up).
        return await super().effect(*args, limit=None, **kw)

    async def _run_effect(self, action_id: str, run: Any, due_ns: Any, idempotent: bool) -> Any:
        rec = self.checker.recording
        outcome = rec.outcome(action_id, rec.requested_at(action_id))
        if outcome is None:
            # Still running when the recording ends, or when its process stopped: this branch
            # waits here (as live it would wait for the effect), the others go on.
            raise Suspended(action_id)
        event = outcome[1]
        stored = rec.artifact_for(action_id, rec.requested_at(action_id))
        if stored is not None:
            self.post(stored)  # the output went to an artifact first, as live
        self.post(event)  # the recorded outcome, as the effect would have appended it
        if isinstance(event, ActionFailed):
            # What effect() raises from a record (with the error's details where events carry them).
            details = getattr(event, "error_info", None)
            raise ActionError(event.error, event.retryable, *(() if details is None else (details,)))
        return await replayed_output(self, action_id, event.output, stored)  # read back from its artifact

    async def approve(self, ctx: Any, action_id: str, spec: Any, args: dict) -> dict:
        rec = self.checker.recording
        asked = f"{action_id}.approval"
        if asked not in self.view.interrupts and not rec.has(("interrupt", asked)) and rec.has(("call", action_id)):
            return args  # it ran without asking (an automatic policy): the recording decides
        return await super().approve(ctx, action_id, spec, args)

    async def child(self, ctx: Any, action_id: str, graph: str, input: Any, labels: dict) -> Any:
        self.host.child_at = action_id  # read by new_child_id, with no await in between
        return await super().child(ctx, action_id, graph, input, labels)

    async def activation(self) -> None:
        """One stretch of driving, as `_drive` does it (a driver that breaks records why)."""
        self.checker.halted = False
        try:
            await self._steps()
        except BaseException as exc:
            # A halt may come out bare or inside a task group's exception group.
            if self.checker.halted:
                return
            if not isinstance(exc, Exception):
                raise
            try:
                if self.view.terminal is None:
                    self.post(RunFailed(error=f"the driver stopped: {error_text(exc)}"))
            except _Halt:
                return


async def replay_records(graph: Graph, run_id: str, records: list[tuple[int, Any]], source: Any = None) -> Verdict:
    """Replay one run's recorded (seq, event) pairs with `graph` (the current code); artifacts
    are read from `source`, the log the records come from (read only)."""
    rec = Recording(records)
    verdict = Verdict(run_id, graph.name, "ok", last_seq=rec.last_seq)
    bad = rec.unreadable()
    if bad is None and (not records or not isinstance(records[0][1], RunStarted)):
        bad = (records[0][0] if records else 0, "not a RunStarted")
    if bad is not None:
        verdict.status, verdict.seq, verdict.reason = "unreadable", bad[0], f"seq {bad[0]} is {bad[1]}"
        return verdict
    verdict.in_flight = not any(isinstance(e, ENDS) for _, e in records)
    view = RunView(run_id)
    view.feed(1, records[0][1])
    rec.used.add(records[0][0])
    checker = _Checker(rec)
    host = _Host(rec, source)
    scopes.install()
    while True:
        before = len(rec.used)
        driver = ReplayDriver(host, graph, view, checker)
        # Detached, as the runtime starts a driver: its tasks take no call position of ours.
        await asyncio.create_task(driver.activation(), context=scopes.detached())
        if checker.divergence is not None:
            return _diverged(verdict, checker.divergence)
        left = next(rec.unused(), None)
        if view.terminal is not None or left is None:
            driver_left = next(rec.unused(driver=True), None)
            if driver_left is not None:
                seq, event = driver_left
                return _diverged(verdict, Mismatch(seq, f"the log has {describe(event)}, the code "
                                                   f"now ends the run ({type(view.terminal).__name__}) before it"))
            return verdict
        if len(rec.used) > before and is_driver(left[1]):
            continue  # it got further: drive again, as a wake would (a child's end, a restart)
        fed = rec.externals()
        if not fed:
            seq, event = left
            waits = ", ".join(r.interrupt_id for r in view.pending_interrupts()) or "nothing it can go on with"
            return _diverged(verdict, Mismatch(seq, f"the log goes on with {describe(event)}, "
                                                    f"the code now stops here (waiting on {waits})"))
        for seq, event in fed:
            problems = len(view.problems)
            view.feed(view.seq + 1, event)
            rec.used.add(seq)
            if len(view.problems) > problems:
                return _diverged(verdict, Mismatch(seq, f"the code never got to where the log has {view.problems[-1][1]}"))


def _diverged(verdict: Verdict, m: Mismatch) -> Verdict:
    verdict.status, verdict.seq, verdict.reason = "diverged", m.seq, m.reason
    return verdict


async def replay_run(store: Any, registry: Any, run_id: str) -> Verdict:
    """Replay one run of `store` with its graph as registered in `registry` now. Reads only;
    raises NotFound if its graph is not registered."""
    info = await store.run(run_id)
    graph = registry.get(info.graph)
    records = [(r.seq, r.event) async for r in store.iter_events(run_id)]
    return await replay_records(graph, run_id, records, store)


async def replay_all(store: Any, registry: Any, run_ids: Iterable[str] | None = None) -> AsyncIterator[Verdict]:
    """Replay runs one at a time (one run's events in memory at once), oldest first: every
    run of the log, or `run_ids`. A run whose graph is not registered is `skipped`."""
    async for run_id, graph in _runs(store, run_ids):
        if graph not in registry:
            yield Verdict(run_id, graph, "skipped", reason=f"graph {graph!r} is not registered here (--workflows)")
            continue
        try:
            yield await replay_run(store, registry, run_id)
        except NotFound as exc:  # deleted meanwhile
            yield Verdict(run_id, graph, "skipped", reason=str(exc))


async def _runs(store: Any, run_ids: Iterable[str] | None) -> AsyncIterator[tuple[str, str]]:
    if run_ids is not None:
        for run_id in run_ids:
            yield run_id, (await store.run(run_id)).graph
        return
    offset = 0
    while batch := await store.runs(limit=500, offset=offset, order="oldest"):
        offset += len(batch)
        for info in batch:
            yield info.run_id, info.graph
