"""Appenders cancelled at random points never leave a transaction open or a run inconsistent."""

import asyncio
import random
import sqlite3
import subprocess
import sys

import pytest

from kernel.events import ActionSucceeded
from kernel.store import Store

WRITE_AT_ONCE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")  # fails at once with 'database is locked' if anyone holds it
conn.execute("INSERT INTO meta VALUES ('probe', 'written')")
conn.execute("COMMIT")
print("wrote")
"""


async def _appender(store, run_id, n):
    seq = 0
    for i in range(n):
        seq = await store.append(run_id, [ActionSucceeded(action_id=str(i))] * 3, expected_seq=seq)


@pytest.mark.parametrize("seed", range(10))
def test_cancel_appenders_at_random_points(db, seed):
    rng = random.Random(seed)

    async def body():
        async with await Store.open(db) as store:
            tasks = [asyncio.create_task(_appender(store, f"r{i}", 40)) for i in range(20)]
            for _ in range(12):
                await asyncio.sleep(rng.random() * 0.01)
                rng.choice(tasks).cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert any(t.cancelled() for t in tasks)

            # While this store is still open, another process takes the write lock at once.
            out = subprocess.run([sys.executable, "-c", WRITE_AT_ONCE, str(db)], capture_output=True, text=True)
            assert out.stdout.strip() == "wrote", out.stderr

            for i in range(20):
                run_id = f"r{i}"
                seqs = [r.seq for r in await store.events(run_id, limit=10_000)]
                assert seqs == list(range(1, len(seqs) + 1))
                assert len(seqs) % 3 == 0  # whole batches only
                assert await store.last_seq(run_id) == len(seqs)
            # and this process goes on writing
            last = await store.last_seq("r0")
            assert await store.append("r0", [ActionSucceeded(action_id="after")], expected_seq=last) == last + 1

    asyncio.run(body())
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
