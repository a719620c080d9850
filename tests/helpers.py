"""Small builders shared by the tests."""

from __future__ import annotations

from kernel.events import Patch, RunStarted, StepCompleted, StepStarted
from kernel.state import apply, state_hash
from kernel.store import Store


async def record_steps(store: Store, run_id: str, patches: list[tuple], *, graph: str = "g") -> dict:
    """A run whose steps apply `patches` (one tuple of Patch per step), with real state hashes."""
    state: dict = {}
    seq = await store.append(run_id, [RunStarted(graph=graph)], expected_seq=0)
    for i, update in enumerate(patches, 1):
        apply(state, update)
        seq = await store.append(
            run_id,
            [
                StepStarted(step_id=f"s{i}", node="n"),
                StepCompleted(step_id=f"s{i}", node="n", update=update, state_hash=state_hash(state)),
            ],
            expected_seq=seq,
        )
    return state


def counter_steps(n: int) -> list[tuple]:
    return [(Patch("set", "i", i), Patch("append", "log", f"step {i}")) for i in range(n)]
