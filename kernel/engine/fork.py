"""Forking a run: a new run whose log is the parent's up to a seq, so it goes on from exactly
where the parent was there."""

from __future__ import annotations

from typing import Any

import msgspec

from ..codec import Corrupt, Unknown
from ..errors import NotFound, VigilError
from ..events import (
    ActionFailed,
    ActionRequested,
    ActionSucceeded,
    ArtifactStored,
    InterruptRaised,
    RunStarted,
)
from ..ids import new_run_id
from .runview import ENDS

__all__ = ["fork_run"]

async def fork_run(store: Any, registry: Any, run_id: str, at_seq: int) -> str:
    """A new run (lineage: fork) that goes on from exactly where `run_id` was at `at_seq`.

    Its log starts as a copy of the parent's up to `at_seq` (as Temporal's reset does), so
    the frontier is the parent's to the event: completed and pending branches, joins
    half-met, effects recorded in a half-finished step (replayed, never re-run), questions
    still open. Two things are cut: an effect requested but not finished by `at_seq` (the
    fork decides afresh whether to run it) and an ending (the fork goes on)."""
    info = await store.run(run_id)
    registry.get(info.graph)  # refuse before copying if this process cannot drive it
    if not 1 <= at_seq <= info.last_seq:
        raise NotFound(f"run {run_id} has no seq {at_seq} (it has 1..{info.last_seq})")
    # action id -> seq of the last outcome or in-doubt question about it in the prefix: a
    # request followed by neither was in flight at the fork point; one a question was raised
    # about stays, so the fork asks the question it shows (or keeps the answer given).
    settled: dict[str, int] = {}
    async for record in store.iter_events(run_id, 1, at_seq):
        event = record.event
        if isinstance(event, (Unknown, Corrupt)):
            raise VigilError(f"run {run_id} cannot be forked past seq {record.seq}: it is {type(event).__name__.lower()}")
        if isinstance(event, (ActionSucceeded, ActionFailed)):
            settled[event.action_id] = record.seq
        elif isinstance(event, InterruptRaised) and event.kind == "in_doubt":
            settled[event.interrupt_id.split(".doubt", 1)[0]] = record.seq
    events: list[Any] = []
    cut: set[str] = set()
    async for record in store.iter_events(run_id, 1, at_seq):
        event = record.event
        if isinstance(event, RunStarted):
            event = msgspec.structs.replace(
                event, parent_run_id=run_id, parent_seq=at_seq, lineage="fork",
                labels={**event.labels, "fork_of": f"{run_id}@{at_seq}"},
            )
        elif isinstance(event, ActionRequested) and settled.get(event.action_id, 0) < record.seq:
            cut.add(event.action_id)
            continue  # in flight at the fork point
        elif isinstance(event, ArtifactStored) and event.action_id in cut:
            continue  # the output of an effect cut above: the fork runs it afresh
        elif isinstance(event, ENDS):
            continue
        events.append(event)
    new_id = new_run_id()
    await store.append(new_id, events, expected_seq=0)  # one transaction: all or nothing
    return new_id
