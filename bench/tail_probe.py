"""Tail a log from another process and measure commit-to-visible latency per event.

    python -m bench.tail_probe DB RUN_PREFIX COUNT
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from kernel.store import Store


async def probe(db: str, prefix: str, count: int) -> dict:
    async with await Store.open(db, readonly=True) as store:
        head = await store.head()
        print("ready", flush=True)
        lags: list[float] = []
        async for batch in store.tail(head):
            now = time.time_ns()
            lags += [(now - r.ts_ns) / 1e6 for r in batch if r.run_id.startswith(prefix)]
            if len(lags) >= count:
                break
    lags.sort()
    return {"n": len(lags), "p50_ms": lags[len(lags) // 2], "p99_ms": lags[int(len(lags) * 0.99) - 1]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(sys.argv[1], sys.argv[2], int(sys.argv[3])))), flush=True)
