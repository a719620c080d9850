"""Append events to one run at a steady rate from its own process (the console's flood).

    python -m bench.flood DB RUN_ID EVENTS_PER_S SECONDS
"""

from __future__ import annotations

import asyncio
import sys
import time

from kernel.events import ActionSucceeded
from kernel.store import Store


async def flood(db: str, run_id: str, rate: int, seconds: float) -> None:
    async with await Store.open(db) as store:
        seq = await store.append(run_id, [ActionSucceeded(action_id="start")], expected_seq=0)
        print("started", flush=True)
        batch, start = (50 if rate >= 500 else 1), time.perf_counter()
        while time.perf_counter() - start < seconds:
            due = start + (seq + batch) / rate
            events = [ActionSucceeded(action_id=f"{seq + i}", output={"n": seq + i, "text": "tool output " * 8})
                      for i in range(batch)]
            seq = await store.append(run_id, events, expected_seq=seq)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        print(f"{seq / (time.perf_counter() - start):.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(flood(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
