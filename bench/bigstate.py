"""A run whose state grows to about 1 MB: what the scrubber must stay quick on (the detail pane
shows the whole state, capped at 5,000 lines, and diffs it at every move)."""

from __future__ import annotations

import msgspec

from kernel.events import Event, Patch, RunStarted, StepCompleted
from kernel.state import apply, state_hash
from kernel.store import Store

from .common import tool_result

__all__ = ["load_big_state"]


def _entry(i: int) -> dict:
    # ~1 KB once encoded: a tool's answer an agent keeps in its state (a list that only grows)
    return {"step": i, "source": f"https://example.com/docs/{i}", "summary": ("lorem ipsum dolor " * 50)[:900]}


async def load_big_state(path, run_id: str, state_bytes: int = 1_000_000) -> int:
    """Append the run (a tool result and a StepCompleted per step, each step adding ~1 KB to
    `notes`) until its state is `state_bytes`; returns its last seq."""
    state: dict = {}
    events: list[Event] = [RunStarted(graph="bench")]
    i = size = 0
    while size < state_bytes:
        events.append(tool_result(i))
        step = StepCompleted(step_id=f"{i}.work", node="work",
                             update=(Patch("append", "notes", _entry(i)), Patch("set", "i", i)), next=("work",))
        apply(state, step.update)
        events.append(msgspec.structs.replace(step, state_hash=state_hash(state)))
        size += len(msgspec.json.encode(_entry(i)))
        i += 1
    async with await Store.open(path) as store:
        seq = 0
        for k in range(0, len(events), 500):
            seq = await store.append(run_id, events[k : k + 500], expected_seq=seq)
        await store.flush_snapshots()
    return seq
