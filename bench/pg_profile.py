"""Where an acked append's time goes on PostgreSQL (evidence for RESULTS.md's "why it misses").

    .venv/bin/python -m bench.pg_profile [EVENTS] [--cprofile]
    .venv/bin/python -m bench.pg_profile chain [RUNS]      # the 3-node chain, timed the same way
    .venv/bin/python -m bench.pg_profile nodb [EVENTS]     # the append case with a no-op transaction

On one durable throwaway server: the 100-run append case of pg_cases, with the writer's
transaction (kernel.log.postgres.writer._commit_group) timed from outside, statement by
statement (psycopg's AsyncConnection.execute and the COPY block are wrapped; nothing in kernel/
is changed), and the event loop's time between two commits. Then raw psycopg async COPY of the
same rows with and without vigil's extra statement (advisory lock + pg_notify), to split the
gap between vigil and the ceiling into the server's share and Python's.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
from collections import defaultdict

import psycopg

from kernel.log.postgres import writer as pg_writer
from kernel.log.postgres.schema import APPEND_LOCK, LOG_CHANNEL

from .log_cases import vigil_appends
from .pg_cases import _COPY, _TYPES, _migrate, _rows, pgserver

T: dict[str, list[float]] = defaultdict(list)


def _instrument() -> None:
    commit_group = pg_writer._commit_group
    last_end = [None]

    async def timed_commit_group(conn, group, known, *caches):  # caches: the chain heads
        t0 = time.perf_counter()
        if last_end[0] is not None:
            T["loop between commits"].append(t0 - last_end[0])
        T["group size"].append(len(group))
        try:
            return await commit_group(conn, group, known, *caches)
        finally:
            last_end[0] = time.perf_counter()
            T["whole commit (BEGIN..COMMIT)"].append(last_end[0] - t0)

    pg_writer._commit_group = timed_commit_group

    execute = psycopg.AsyncConnection.execute

    async def timed_execute(self, query, *a, **kw):
        t0 = time.perf_counter()
        try:
            return await execute(self, query, *a, **kw)
        finally:
            q = query if isinstance(query, str) else str(query)
            key = "lock+notify" if "advisory" in q else " ".join(q.split())[:40]
            T["execute: " + key].append(time.perf_counter() - t0)

    psycopg.AsyncConnection.execute = timed_execute

    from psycopg import AsyncCursor

    executemany = AsyncCursor.executemany

    async def timed_executemany(self, query, params_seq, **kw):
        t0 = time.perf_counter()
        try:
            return await executemany(self, query, params_seq, **kw)
        finally:
            T["executemany: " + " ".join(str(query).split())[:32]].append(time.perf_counter() - t0)

    AsyncCursor.executemany = timed_executemany

    # the COPY: time from entering the block to its end (rows written + COPY finished on the server)
    from psycopg import AsyncCursor

    copy = AsyncCursor.copy

    def timed_copy(self, statement, *a, **kw):
        cm = copy(self, statement, *a, **kw)

        class Wrapped:
            async def __aenter__(w):
                w.t0 = time.perf_counter()
                return await cm.__aenter__()

            async def __aexit__(w, *exc):
                try:
                    return await cm.__aexit__(*exc)
                finally:
                    T["COPY 100 rows (write_row + end)"].append(time.perf_counter() - w.t0)

        return Wrapped()

    AsyncCursor.copy = timed_copy


async def _raw(dsn: str, rows: list[tuple], batch: int, extra: str) -> tuple[float, float]:
    """Raw async COPY; extra="lock": vigil's additional statement in each transaction, as vigil
    sends it (BEGIN, then the statement: two round trips); extra="folded": the same statement sent
    with BEGIN in one simple-query round trip."""
    lat = []
    folded = f"BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK}), pg_notify('{LOG_CHANNEL}', '')"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        t_all = time.perf_counter()
        for k in range(0, len(rows), batch):
            t0 = time.perf_counter()
            if extra == "folded":
                await conn.execute(folded)
            else:
                await conn.execute("BEGIN")
                if extra == "lock":
                    await conn.execute("SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '')", (APPEND_LOCK, LOG_CHANNEL))
            async with conn.cursor().copy(_COPY) as copy:
                copy.set_types(_TYPES)
                for r in rows[k : k + batch]:
                    await copy.write_row(r)
            await conn.execute("COMMIT")
            lat.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - t_all
    return len(rows) / elapsed, sum(lat) / len(lat)


def _report(n_units: int, unit: str, wall: float) -> None:
    n = len(T["whole commit (BEGIN..COMMIT)"])
    print(f"  wall {wall * 1e3 / n_units:.3f} ms a {unit}; {n / n_units:.2f} commits a {unit}")
    for key, vals in sorted(T.items(), key=lambda kv: -sum(kv[1])):
        if key == "group size":
            print(f"  {key:45} mean {sum(vals) / len(vals):6.1f}  (commits {len(vals)})")
        else:
            print(f"  {key:45} {len(vals) / n:5.2f}/commit  mean {sum(vals) / len(vals) * 1e3:6.3f} ms  "
                  f"total {sum(vals) * 1e3 / n_units:6.3f} ms a {unit}")


async def _one_row_commit(dsn: str, n: int) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("CREATE TABLE floor(i int)")
        t0 = time.perf_counter()
        for i in range(n):
            async with conn.transaction():
                await conn.execute("INSERT INTO floor VALUES (%s)", (i,))
        return (time.perf_counter() - t0) / n


def chain(runs: int) -> None:
    from .pg_cases import _chain

    server = pgserver.PgServer(durable=True).start()
    try:
        dsn = server.create_database()
        asyncio.run(_chain(dsn, 50))  # warm (imports, schema)
        server.drop_database(dsn)
        dsn = server.create_database()
        asyncio.run(_migrate(dsn))
        _instrument()
        T.clear()
        t0 = time.perf_counter()
        rate = asyncio.run(_chain(dsn, runs))
        wall = time.perf_counter() - t0
        print(f"vigil chain: {rate:,.0f} node steps/s ({runs} runs)")
        T.pop("loop between commits", None)
        _report(runs, "run", wall)
        floor = asyncio.run(_one_row_commit(dsn, 500))
        print(f"  floor: BEGIN + INSERT one row + COMMIT on this server: {floor * 1e3:.3f} ms")
        server.drop_database(dsn)
        if "--cprofile" in sys.argv:
            dsn = server.create_database()
            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(_chain(dsn, runs))
            prof.disable()
            pstats.Stats(prof).sort_stats("cumtime").print_stats(40)
    finally:
        server.stop()


def nodb(total: int) -> None:
    """The append case with the writer's transaction replaced by a no-op that returns the same
    outcomes: the rate is what the event loop alone allows (callers woken, next event sealed and
    queued, group formed), with nothing sent to the server."""

    async def no_commit(conn, group, known, *caches):
        await asyncio.sleep(0)
        return [a.rows[-1][1] for a in group], [(a.run_id, a.expected_seq, a.rows[-1][1]) for a in group]

    server = pgserver.PgServer(durable=True).start()
    try:
        dsn = server.create_database()
        pg_writer._commit_group = no_commit
        rate, p50, p99 = asyncio.run(vigil_appends(dsn, total, 100))
        print(f"vigil appends, no-op transaction: {rate:,.0f}/s ({1e5 / rate:.3f} ms per 100 events)")
    finally:
        server.stop()


def commits(runs: int) -> None:
    """WAL flushes (pg_stat_wal.wal_sync, the cluster's fsyncs) and committed transactions per
    chain run, vigil beside DBOS, one after the other on one server."""
    from .pg_cases import _chain, _dbos

    server = pgserver.PgServer(durable=True).start()
    try:
        def stats(dsn):
            with psycopg.connect(server.dsn(), autocommit=True) as c:
                time.sleep(1.2)  # backends publish their counters at most once a second
                c.execute("SELECT pg_stat_force_next_flush()")
                wal = c.execute("SELECT wal_sync, wal_records, wal_bytes FROM pg_stat_wal").fetchone()
                xact = c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                                 (dsn.rsplit("/", 1)[-1],)).fetchone()[0]
            return (*wal, xact)

        for name in ("vigil", "DBOS"):
            dsn = server.create_database()
            if name == "vigil":
                asyncio.run(_migrate(dsn))
            else:
                _dbos(dsn, 5)  # DBOS makes its tables
            before = stats(dsn)
            t0 = time.perf_counter()
            asyncio.run(_chain(dsn, runs)) if name == "vigil" else _dbos(dsn, runs)
            wall = time.perf_counter() - t0
            after = stats(dsn)
            d = [a - b for a, b in zip(after, before)]
            print(f"{name:5}: per run (3 steps): {d[0] / runs:5.2f} WAL fsyncs, {d[3] / runs:5.2f} committed transactions, "
                  f"{d[1] / runs:6.1f} WAL records, {float(d[2]) / runs:8.0f} WAL bytes; wall {wall / runs * 1e3:.2f} ms a run"
                  + (" (including DBOS's start-up)" if name == "DBOS" else ""))
    finally:
        server.stop()


def main() -> None:
    if sys.argv[1:2] == ["commits"]:
        return commits(int(sys.argv[2]) if len(sys.argv) > 2 else 300)
    if sys.argv[1:2] == ["nodb"]:
        return nodb(int(sys.argv[2]) if len(sys.argv) > 2 else 50_000)
    if sys.argv[1:2] == ["chain"]:
        return chain(int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 500)
    total = int(next((a for a in sys.argv[1:] if a.isdigit()), "50000"))
    server = pgserver.PgServer(durable=True).start()
    try:
        rows = _rows(total, 100)
        labels = {"": "", "lock": " + lock/notify statement (own round trip)",
                  "folded": " + lock/notify folded into BEGIN's round trip"}
        for extra, label in labels.items():
            dsn = server.create_database()
            asyncio.run(_migrate(dsn))
            rate, per_txn = asyncio.run(_raw(dsn, rows, 100, extra))
            server.drop_database(dsn)
            print(f"raw async COPY{label}: {rate:,.0f}/s, {per_txn * 1e3:.2f} ms a transaction of 100")
        dsn = server.create_database()
        if "--cprofile" in sys.argv:
            prof = cProfile.Profile()
            prof.enable()
            rate, p50, p99 = asyncio.run(vigil_appends(dsn, total, 100))
            prof.disable()
            print(f"vigil (under cProfile): {rate:,.0f}/s")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            _instrument()
            rate, p50, p99 = asyncio.run(vigil_appends(dsn, total, 100))
            print(f"vigil: {rate:,.0f}/s, append p50 {p50:.2f} ms p99 {p99:.2f} ms")
            n = len(T["whole commit (BEGIN..COMMIT)"])
            for key, vals in sorted(T.items(), key=lambda kv: -sum(kv[1])):
                if key == "group size":
                    print(f"  {key:45} mean {sum(vals) / len(vals):6.1f}  (commits {len(vals)})")
                else:
                    print(f"  {key:45} {len(vals) / n:5.2f}/commit  mean {sum(vals) / len(vals) * 1e3:6.3f} ms  "
                          f"total {sum(vals):6.2f} s")
        server.drop_database(dsn)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
