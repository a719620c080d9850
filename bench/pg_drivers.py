"""Which PostgreSQL driver for the event log? Measured, on one durable throwaway server.

    .venv/bin/python bench/pg_drivers.py [--seconds 5]

The append pattern of the log with group commit: one writer connection; each transaction is
BEGIN; INSERT 100 events (~200-byte bodies, 100 different runs, seq increasing per run);
upsert 5 rows of `runs`; SELECT pg_notify('vigil_events', ...); COMMIT. Rows/s over a few
seconds for psycopg 3 async (executemany = pipeline mode, text or %b binary parameters; COPY FROM STDIN binary; one INSERT
... SELECT FROM unnest(...) RETURNING pos) and asyncpg (executemany; copy_records_to_table).
Then LISTEN/NOTIFY latency: notify in one transaction, a listener in another *process*
receives it; p50/p99 over 500 notifies, measured from the moment COMMIT is sent.

The server is durable (fsync, synchronous_commit, full_page_writes at their defaults): every
COMMIT waits for a WAL flush, as the log's would. asyncpg is not a dependency of vigil
(pip install asyncpg to include it; it is skipped otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("pgserver", HERE.parent / "tests" / "pgserver.py")
pgserver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pgserver)

try:
    import asyncpg
except ImportError:  # optional: measured only when installed
    asyncpg = None

N_ROWS = 100       # events per transaction
N_RUNS_TOUCHED = 5  # runs rows upserted per transaction
N_RUNS = 1000      # each transaction takes 100 different runs from a pool of 1000
COLS = ["run_id", "seq", "ts_ns", "type", "step_id", "body", "crc"]

SCHEMA = """
CREATE TABLE events (
    pos bigserial PRIMARY KEY, run_id text NOT NULL, seq bigint NOT NULL, ts_ns bigint NOT NULL,
    type text NOT NULL, step_id text, body bytea NOT NULL, crc bigint NOT NULL,
    UNIQUE (run_id, seq));
CREATE TABLE runs (run_id text PRIMARY KEY, status text NOT NULL, last_seq bigint NOT NULL,
                   updated_ns bigint NOT NULL);
"""
INSERT = ("INSERT INTO events (run_id, seq, ts_ns, type, step_id, body, crc) "
          "VALUES (%s, %s, %s, %s, %s, %s, %s)")
INSERT_B = INSERT.replace("%s", "%b")  # psycopg: parameters sent in binary (bytea not hex-escaped)
UPSERT = ("INSERT INTO runs (run_id, status, last_seq, updated_ns) VALUES (%s, %s, %s, %s) "
          "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, last_seq = excluded.last_seq, "
          "updated_ns = excluded.updated_ns")
UNNEST = ("INSERT INTO events (run_id, seq, ts_ns, type, step_id, body, crc) "
          "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], "
          "%s::bytea[], %s::bigint[]) RETURNING pos")
COPY = f"COPY events ({', '.join(COLS)}) FROM STDIN (FORMAT BINARY)"
NOTIFY = "SELECT pg_notify('vigil_events', %s)"


def _pg_to_asyncpg(sql: str) -> str:
    i = 0
    out = []
    for part in sql.split("%s"):
        out.append(part)
        i += 1
        out.append(f"${i}")
    return "".join(out[:-1])


class Batches:
    """Transaction after transaction: 100 events from 100 runs (seq per run), 5 run upserts."""

    def __init__(self) -> None:
        self.seq = [0] * N_RUNS
        self.n = 0
        self.bodies = [os.urandom(200) for _ in range(997)]

    def next(self) -> tuple[list[tuple], list[tuple], str]:
        start = (self.n * N_ROWS) % N_RUNS
        self.n += 1
        now = time.time_ns()
        rows = []
        for k in range(N_ROWS):
            r = (start + k) % N_RUNS
            self.seq[r] += 1
            body = self.bodies[(self.n * N_ROWS + k) % len(self.bodies)]
            rows.append((f"run-{r:05d}", self.seq[r], now + k, "ActionSucceeded", f"{self.seq[r]}.lookup",
                         body, zlib.crc32(body)))
        runs = [(rows[k][0], "running", rows[k][1], now) for k in range(0, N_ROWS, N_ROWS // N_RUNS_TOUCHED)]
        return rows, runs, f"{self.n}"


# -- the writers: one transaction each ------------------------------------------------------------

async def psycopg_executemany(conn, rows, runs, payload):
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(INSERT, rows)
        await cur.executemany(UPSERT, runs)
        await cur.execute(NOTIFY, (payload,))


async def psycopg_executemany_binary(conn, rows, runs, payload):
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(INSERT_B, rows)
        await cur.executemany(UPSERT, runs)
        await cur.execute(NOTIFY, (payload,))


async def psycopg_copy(conn, rows, runs, payload):
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(COPY) as copy:
            copy.set_types(["text", "int8", "int8", "text", "text", "bytea", "int8"])
            for r in rows:
                await copy.write_row(r)
        await cur.executemany(UPSERT, runs)
        await cur.execute(NOTIFY, (payload,))


async def psycopg_unnest(conn, rows, runs, payload):
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(UNNEST, [list(c) for c in zip(*rows)])
        positions = await cur.fetchall()
        assert len(positions) == len(rows)
        await cur.executemany(UPSERT, runs)
        await cur.execute(NOTIFY, (payload,))


async def asyncpg_executemany(conn, rows, runs, payload):
    async with conn.transaction():
        await conn.executemany(_pg_to_asyncpg(INSERT), rows)
        await conn.executemany(_pg_to_asyncpg(UPSERT), runs)
        await conn.execute(_pg_to_asyncpg(NOTIFY), payload)


async def asyncpg_copy(conn, rows, runs, payload):
    async with conn.transaction():
        await conn.copy_records_to_table("events", records=rows, columns=COLS)
        await conn.executemany(_pg_to_asyncpg(UPSERT), runs)
        await conn.execute(_pg_to_asyncpg(NOTIFY), payload)


async def asyncpg_unnest(conn, rows, runs, payload):
    async with conn.transaction():
        positions = await conn.fetch(_pg_to_asyncpg(UNNEST), *[list(c) for c in zip(*rows)])
        assert len(positions) == len(rows)
        await conn.executemany(_pg_to_asyncpg(UPSERT), runs)
        await conn.execute(_pg_to_asyncpg(NOTIFY), payload)


async def connect(driver: str, dsn: str):
    if driver == "psycopg":
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    return await asyncpg.connect(dsn)


async def measure(server, name: str, driver: str, fn, seconds: float) -> dict:
    dsn = server.create_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SCHEMA)
    conn = await connect(driver, dsn)
    batches = Batches()
    try:
        warm = time.perf_counter() + min(1.0, seconds / 5)
        while time.perf_counter() < warm:
            await fn(conn, *batches.next())
        done0 = batches.n
        lat = []
        t0 = time.perf_counter()
        while (now := time.perf_counter()) - t0 < seconds:
            await fn(conn, *batches.next())
            lat.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - t0
        txns = batches.n - done0
    finally:
        await conn.close()
    with psycopg.connect(dsn) as c:
        n_events = c.execute("SELECT count(*) FROM events").fetchone()[0]
        n_runs = c.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert n_events == batches.n * N_ROWS, (name, n_events, batches.n)
    server.drop_database(dsn)
    lat.sort()
    return dict(name=name, rows_s=txns * N_ROWS / elapsed, txn_s=txns / elapsed,
                p50_ms=statistics.median(lat) * 1e3, p99_ms=lat[int(len(lat) * 0.99)] * 1e3, runs=n_runs)


async def copy_in_txn_is_atomic(server) -> str:
    """COPY inside the transaction with other statements: a duplicate (run_id, seq) in the COPY
    must abort the whole transaction (the runs upsert too), and the connection must be usable."""
    dsn = server.create_database()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(SCHEMA)
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        b = Batches()
        rows, runs, p = b.next()
        await psycopg_copy(conn, rows, runs, p)
        rows2, runs2, p2 = b.next()
        try:
            await psycopg_copy(conn, rows2 + rows[:1], [("run-new", "x", 1, 1)], p2)
            return "NOT atomic: duplicate accepted"
        except psycopg.errors.UniqueViolation:
            pass
        n = (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0]
        r = (await (await conn.execute("SELECT count(*) FROM runs WHERE run_id = 'run-new'")).fetchone())[0]
        await psycopg_copy(conn, rows2, runs2, p2)  # the connection is still usable
        n2 = (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0]
        ok = n == N_ROWS and r == 0 and n2 == 2 * N_ROWS
        return "atomic, connection reusable" if ok else f"NOT atomic: events={n} runs-new={r} after={n2}"
    finally:
        await conn.close()
        server.drop_database(dsn)


# -- LISTEN/NOTIFY latency ----------------------------------------------------------------------

LISTENER = r"""
import asyncio, json, sys, time
dsn, driver, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = {}
async def main():
    if driver == "psycopg":
        import psycopg
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute("LISTEN vigil_events")
        print("ready", flush=True)
        async for note in conn.notifies(timeout=60, stop_after=n):
            got[note.payload] = time.monotonic_ns()
        await conn.close()
    else:
        import asyncpg
        conn = await asyncpg.connect(dsn)
        done = asyncio.Event()
        def on(_c, _pid, _chan, payload):
            got[payload] = time.monotonic_ns()
            if len(got) >= n:
                done.set()
        await conn.add_listener("vigil_events", on)
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 60)
        await conn.close()
asyncio.run(main())
print(json.dumps(got), flush=True)
"""


async def notify_latency(server, driver: str, n: int = 500) -> dict:
    dsn = server.create_database()
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, dsn, driver, str(n)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        conn = await psycopg.AsyncConnection.connect(dsn)  # not autocommit: the notify is in a txn
        sent, committed = {}, []
        for i in range(n):
            await conn.execute(NOTIFY, (str(i),))
            sent[str(i)] = time.monotonic_ns()
            await conn.commit()
            committed.append(time.monotonic_ns() - sent[str(i)])
            await asyncio.sleep(0.002)  # one at a time: latency, not queueing
        await conn.close()
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    got = json.loads(out.strip().splitlines()[-1])
    server.drop_database(dsn)
    lat = sorted((got[k] - sent[k]) / 1e6 for k in sent if k in got)
    committed.sort()
    return dict(name=f"NOTIFY -> {driver} listener (other process)", received=len(lat), n=n,
                p50_ms=lat[len(lat) // 2], p99_ms=lat[int(len(lat) * 0.99)],
                commit_p50_ms=committed[len(committed) // 2] / 1e6)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--notifies", type=int, default=500)
    args = ap.parse_args()

    server = pgserver.PgServer(durable=True).start()
    try:
        with psycopg.connect(server.dsn()) as c:
            version = c.execute("SHOW server_version").fetchone()[0]
            durab = ", ".join(f"{k}={c.execute(f'SHOW {k}').fetchone()[0]}"
                              for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"))
        print(f"PostgreSQL {version} on 127.0.0.1:{server.port} ({durab}); {os.cpu_count()} CPUs; "
              f"psycopg {psycopg.__version__} (impl {psycopg.pq.__impl__}, pipeline={psycopg.Pipeline.is_supported()})"
              + (f", asyncpg {asyncpg.__version__}" if asyncpg else ", asyncpg not installed"))
        print(f"each txn: INSERT {N_ROWS} events (~200 B bodies, {N_ROWS} runs) + upsert {N_RUNS_TOUCHED} runs "
              f"+ pg_notify; one writer; {args.seconds:.0f} s each\n")
        cases = [("psycopg async executemany (pipeline)", "psycopg", psycopg_executemany),
                 ("psycopg async executemany, %b binary params", "psycopg", psycopg_executemany_binary),
                 ("psycopg async COPY binary", "psycopg", psycopg_copy),
                 ("psycopg async INSERT..unnest RETURNING pos", "psycopg", psycopg_unnest)]
        if asyncpg:
            cases += [("asyncpg executemany", "asyncpg", asyncpg_executemany),
                      ("asyncpg copy_records_to_table", "asyncpg", asyncpg_copy),
                      ("asyncpg INSERT..unnest RETURNING pos", "asyncpg", asyncpg_unnest)]
        print(f"{'append (one txn = 100 events)':45} {'rows/s':>9} {'txn/s':>7} {'txn p50':>9} {'txn p99':>9}")
        for name, driver, fn in cases:
            r = await measure(server, name, driver, fn, args.seconds)
            print(f"{name:45} {r['rows_s']:9,.0f} {r['txn_s']:7,.0f} {r['p50_ms']:7.2f}ms {r['p99_ms']:7.2f}ms", flush=True)
        print(f"\nCOPY inside a txn with other statements (psycopg async): {await copy_in_txn_is_atomic(server)}\n")
        print(f"{'LISTEN/NOTIFY (from COMMIT sent)':45} {'recv':>9} {'p50':>9} {'p99':>9} {'commit p50':>11}")
        for driver in ["psycopg"] + (["asyncpg"] if asyncpg else []):
            r = await notify_latency(server, driver, args.notifies)
            print(f"{r['name']:45} {r['received']:>4}/{r['n']:<4} {r['p50_ms']:7.2f}ms {r['p99_ms']:7.2f}ms "
                  f"{r['commit_p50_ms']:9.2f}ms", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
