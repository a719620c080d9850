"""The cost of the hash chain on appends: bench.log_cases.vigil_appends (100 concurrent runs, each
awaiting each commit) on SQLite and on a durable throwaway PostgreSQL, best of N rounds, plus the
chain's own CPU cost per event. Run before and after a change to the writers:

    .venv/bin/python -m bench.chain_probe [--events 20000] [--rounds 3] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from .common import fresh_db, tool_result
from .log_cases import vigil_appends


def _link_cost(n: int = 200_000) -> float | None:
    try:
        from kernel.chain import GENESIS, link
    except ImportError:  # before the chain existed
        return None
    from kernel.codec import encode

    body, _ = encode(tool_result(1))
    prev = GENESIS
    t0 = time.perf_counter()
    for i in range(n):
        prev = link(prev, "run001", i + 1, 1_700_000_000_000_000_000, "ActionSucceeded", body)
    return (time.perf_counter() - t0) / n * 1e9


def _backfill(n: int) -> None:
    """A log as the vigil before the chain left it (schema v3, N rows), then the open that
    migrates it: the backfill's time."""
    from kernel.codec import encode
    from kernel.log.sqlite import schema
    from kernel.store import Store

    path = fresh_db("chain-backfill.db")
    conn = schema.connect(path)
    schema.migrate(conn, upto=3)
    body, crc = encode(tool_result(1))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc) VALUES (?, ?, ?, 'ActionSucceeded', NULL, ?, ?)",
        ((f"run{i % 100:03d}", i // 100 + 1, i, body, crc) for i in range(n)),
    )
    conn.execute("COMMIT")
    conn.close()

    async def open_once() -> None:
        async with await Store.open(path):
            pass

    t0 = time.perf_counter()
    asyncio.run(open_once())
    took = time.perf_counter() - t0
    print(f"sqlite migration chaining {n:,} existing events: {took:.2f}s ({n / took:,.0f} events/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--backfill", type=int, metavar="N",
                    help="instead: time the migration that chains N existing events (100 runs, SQLite)")
    args = ap.parse_args()
    if args.backfill:
        _backfill(args.backfill)
        return
    cost = _link_cost()
    if cost is not None:
        print(f"chain link: {cost:,.0f} ns per event (~200 B body)")
    # CPU time per event beside the rate: on a shared, loaded machine the rate swings with the
    # neighbours; the process's CPU seconds (every thread) swing much less.
    rates, cpu = [], []
    for _ in range(args.rounds):
        c0 = time.process_time()
        rates.append(asyncio.run(vigil_appends(fresh_db("chain-probe.db"), args.events, 100))[0])
        cpu.append((time.process_time() - c0) / args.events * 1e6)
    print(f"sqlite appends: best {max(rates):,.0f}/s, rounds {', '.join(f'{r:,.0f}' for r in rates)}; "
          f"CPU per event: best {min(cpu):.1f} us, rounds {', '.join(f'{c:.1f}' for c in cpu)}")
    if args.no_pg:
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import pgserver

    server = pgserver.PgServer(durable=True)
    server.start()
    try:
        rates, cpu = [], []
        for _ in range(args.rounds):
            dsn = server.create_database()
            c0 = time.process_time()
            rates.append(asyncio.run(vigil_appends(dsn, args.events, 100))[0])
            cpu.append((time.process_time() - c0) / args.events * 1e6)  # vigil's side only
            server.drop_database(dsn)
        print(f"postgres appends: best {max(rates):,.0f}/s, rounds {', '.join(f'{r:,.0f}' for r in rates)}; "
              f"client CPU per event: best {min(cpu):.1f} us, rounds {', '.join(f'{c:.1f}' for c in cpu)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
