"""The writer's seq probe on a long run: the first append to an existing run after the store is
reopened (the writer has not yet seen the run, so it asks the table for the run's last seq).

    .venv/bin/python -m bench.pg_seqprobe [EVENTS]

Evidence for RESULTS.md: kernel/log/postgres/writer.py's _LAST_SEQS (`max(seq) ... GROUP BY
run_id`) reads every row of the run; `max(seq)` per run (a LATERAL subquery) is one index probe.
"""

from __future__ import annotations

import asyncio
import sys
import time

import psycopg

from kernel.events import RunStarted
from kernel.store import Store

from .common import tool_result
from .pg_cases import _migrate, pgserver

GROUPED = "SELECT run_id, max(seq) FROM vigil.events WHERE run_id = ANY(%s) GROUP BY run_id"
LATERAL = ("SELECT r, m FROM unnest(%s::text[]) AS r, "
           "LATERAL (SELECT max(seq) AS m FROM vigil.events WHERE run_id = r) s WHERE m IS NOT NULL")


async def main(n: int) -> None:
    server = pgserver.PgServer(durable=True).start()
    try:
        dsn = server.create_database()
        await _migrate(dsn)
        async with await Store.open(dsn, snapshot_every=0) as store:
            seq = await store.append("long", [RunStarted(graph="bench")], expected_seq=0)
            for k in range(0, n - 1, 5000):
                seq = await store.append("long", [tool_result(i) for i in range(k, min(n - 1, k + 5000))], expected_seq=seq)
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            await c.execute("ANALYZE vigil.events")
        for attempt in range(2):
            async with await Store.open(dsn, snapshot_every=0) as store:
                t0 = time.perf_counter()
                seq = await store.append("long", [tool_result(n)], expected_seq=seq)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                seq = await store.append("long", [tool_result(n + 1)], expected_seq=seq)
                second = time.perf_counter() - t0
            print(f"run of {seq - 2:,} events, store reopened: first append {first * 1e3:.1f} ms, "
                  f"the next {second * 1e3:.1f} ms")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            for name, q in (("GROUP BY (the writer's)", GROUPED), ("LATERAL max(seq) per run", LATERAL)):
                t0 = time.perf_counter()
                for _ in range(5):
                    rows = await (await c.execute(q, (["long", "new-run"],))).fetchall()
                print(f"  {name}: {(time.perf_counter() - t0) / 5 * 1e3:.2f} ms -> {rows}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
