"""PostgreSQL cases, on one durable throwaway server (tests/pgserver.py, durable=True: fsync,
synchronous_commit and full_page_writes on), a fresh database for each measurement:

- acked appends/s from 100 concurrent runs, beside raw psycopg COPYing the same rows in the same
  batches (100 rows a transaction, one connection);
- the 3-node chain (runtime_cases' registry) beside DBOS on the same server, its own database;
- commit to visible in another process through LISTEN/NOTIFY (bench.flood + bench.tail_probe,
  both given the database URL), at 5,000 and at 10 events/s.

Skipped, with a row saying so, when PostgreSQL is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from kernel.codec import encode
from kernel.log.postgres import schema as pg_schema
from kernel.engine.runtime import Runtime
from kernel.store import Store

from .common import Timer, tool_result
from .log_cases import vigil_appends
from .runtime_cases import _registry

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("vigil_pgserver", ROOT / "tests" / "pgserver.py")
pgserver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pgserver)

# Filled in by postgres(): the server's version and durability settings, for the Machine line.
INFO: dict[str, str] = {}

_COPY = "COPY vigil.events (run_id, seq, ts_ns, type, step_id, body, crc, chain) FROM STDIN (FORMAT BINARY)"
_TYPES = ["text", "int8", "int8", "text", "text", "bytea", "int8", "bytea"]
_CHAIN = bytes(range(32))  # the 32 bytes of hash chain vigil's rows carry (stored, not computed)


async def _migrate(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await pg_schema.migrate(conn)


# -- 1. appends -----------------------------------------------------------------------------

def _rows(events_total: int, runs: int) -> list[tuple]:
    """The rows the vigil case writes, in the order its group commits carry them: one event of
    each of the 100 runs, then the next of each."""
    rows = []
    for i in range(events_total // runs):
        body, crc = encode(tool_result(i))
        for r in range(runs):
            rows.append((f"run{r:03d}", i + 1, time.time_ns(), "ActionSucceeded", None, body, crc, _CHAIN))
    return rows


async def _raw_copy_async(dsn: str, rows: list[tuple], batch: int) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        with Timer() as t:
            for k in range(0, len(rows), batch):
                async with conn.transaction():
                    async with conn.cursor().copy(_COPY) as copy:
                        copy.set_types(_TYPES)
                        for r in rows[k : k + batch]:
                            await copy.write_row(r)
    return len(rows) / t.seconds


def _raw_copy_sync(dsn: str, rows: list[tuple], batch: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        with Timer() as t:
            for k in range(0, len(rows), batch):
                with conn.transaction(), conn.cursor().copy(_COPY) as copy:
                    copy.set_types(_TYPES)
                    for r in rows[k : k + batch]:
                        copy.write_row(r)
    return len(rows) / t.seconds


def raw_append_ceiling(server, events_total: int, runs: int, batch: int) -> tuple[float, str]:
    """The best of psycopg's binary COPY, async and sync (bench/pg_drivers.py: COPY is the fastest
    psycopg method), each in a fresh database with vigil's schema; the rows of the vigil case."""
    rows = _rows(events_total, runs)
    results = {}
    for name, fn in (("async", _raw_copy_async), ("sync", _raw_copy_sync)):
        dsn = server.create_database()
        asyncio.run(_migrate(dsn))
        rate = asyncio.run(fn(dsn, rows, batch)) if name == "async" else fn(dsn, rows, batch)
        with psycopg.connect(dsn) as c:
            assert c.execute("SELECT count(*) FROM vigil.events").fetchone()[0] == len(rows)
        server.drop_database(dsn)
        results[name] = rate
    best = max(results, key=results.get)
    other = "sync" if best == "async" else "async"
    return results[best], f"psycopg {best} binary COPY ({other} COPY: {results[other]:,.0f}/s)"


def _appends(server, quick: bool) -> dict:
    total = 50_000 if quick else 200_000
    raw, how = raw_append_ceiling(server, total, 100, 100)
    dsn = server.create_database()
    ours, p50, p99 = asyncio.run(vigil_appends(dsn, total, 100))
    server.drop_database(dsn)
    return dict(
        case="PostgreSQL: 100 concurrent runs appending (acknowledged events/s)",
        setup=f"{total:,} events of ~200 B; each run awaits each append's commit; durable server; "
              f"ceiling: raw {how}, the same rows 100 per transaction, one connection",
        vigil=f"{ours:,.0f}/s (append p50 {p50:.1f} ms, p99 {p99:.1f} ms)", peer=f"{raw:,.0f}/s raw psycopg COPY",
        ratio=ours / raw, goal=">= 0.6x raw", ok=ours / raw >= 0.6,
    )


# -- 2. the chain beside DBOS -----------------------------------------------------------------

async def _chain(dsn: str, runs: int) -> float:
    async with await Store.open(dsn) as store:
        async with Runtime(store, _registry()) as rt:
            with Timer() as t:
                for i in range(runs):
                    await rt.start("chain", {"x": i})
                    await rt.settle()
    return runs * 3 / t.seconds


def _dbos(dsn: str, runs: int) -> float:
    out = subprocess.run([sys.executable, "-m", "bench.peers_dbos", dsn, str(runs)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"DBOS on PostgreSQL failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def _chain_vs_dbos(server, quick: bool) -> dict:
    from importlib.metadata import version

    runs = 200 if quick else 1000
    dsn = server.create_database()
    ours = asyncio.run(_chain(dsn, runs))
    server.drop_database(dsn)
    dsn = server.create_database()
    theirs = _dbos(dsn, runs // 2)
    server.drop_database(dsn)
    return dict(
        case="PostgreSQL: 3-node chain, durable, sequential runs (node steps/s), against DBOS",
        setup=f"{runs} vigil runs one after another; DBOS {version('dbos')} on the same server "
              f"(system_database_url, its own database), {runs // 2} workflows of three steps, in its own process",
        vigil=f"{ours:,.0f}/s", peer=f"{theirs:,.0f}/s DBOS", ratio=ours / theirs,
        goal=">= 5x DBOS", ok=ours / theirs >= 5,
    )


# -- 3. commit to visible in another process ---------------------------------------------------

def _tail_one(server, rate: int, seconds: float) -> dict:
    dsn = server.create_database()
    asyncio.run(_migrate(dsn))
    count = int(rate * seconds * 0.9)
    reader = subprocess.Popen([sys.executable, "-m", "bench.tail_probe", dsn, "tail", str(count)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        writer = subprocess.run([sys.executable, "-m", "bench.flood", dsn, f"tail-{rate}", str(rate), str(seconds)],
                                cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
        out = json.loads(reader.communicate(timeout=60)[0].strip().splitlines()[-1])
    finally:
        reader.kill()
    out["rate"] = float(writer.stdout.strip().splitlines()[-1])
    server.drop_database(dsn)
    return out


def _tails(server, quick: bool) -> list[dict]:
    rows = []
    for rate, seconds in ((10, 10 if quick else 20), (5000, 5 if quick else 10)):
        r = _tail_one(server, rate, seconds)
        rows.append(dict(
            case=f"PostgreSQL: commit to visible in another process at {rate:,} events/s",
            setup=f"one process appends (50 a batch at 5,000/s, 1 at a time at 10/s) for {seconds} s, another "
                  f"tails (store.tail: LISTEN/NOTIFY, then a read after the last pos); {r['n']:,} events, "
                  f"achieved {r['rate']:,.0f}/s; from the event's timestamp (taken before its append) to the tailer",
            vigil=f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms", peer="-", ratio=None,
            goal="p99 <= 50 ms", ok=r["p99_ms"] <= 50,
        ))
    return rows


# -- the section ------------------------------------------------------------------------------

def postgres(quick: bool) -> list[dict]:
    try:
        pgserver.find_bindir()
    except pgserver.PgNotInstalled as exc:
        print(f"  PostgreSQL cases skipped: {exc}", flush=True)
        return [dict(case="PostgreSQL cases", setup=f"skipped: {exc}", vigil="-", peer="-",
                     ratio=None, goal="-", ok=None)]
    server = pgserver.PgServer(durable=True).start()
    try:
        with psycopg.connect(server.dsn()) as c:
            ver = c.execute("SHOW server_version").fetchone()[0].split()[0]
            settings = ", ".join(f"{k}={c.execute(f'SHOW {k}').fetchone()[0]}"
                                 for k in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method"))
        INFO["version"] = f"PostgreSQL {ver} (local, TCP 127.0.0.1; {settings}), psycopg {psycopg.__version__}"
        return [_appends(server, quick), _chain_vs_dbos(server, quick), *_tails(server, quick)]
    finally:
        server.stop()
