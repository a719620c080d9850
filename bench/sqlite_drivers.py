"""Why kernel/log/sqlite/sqlthread.py and not aiosqlite? Measured side by side, one run.

    .venv/bin/python -m bench.sqlite_drivers [--seconds 3]      (pip install -e '.[bench]')

Both drive one sqlite3 connection from one thread; they differ in what crosses the thread boundary.
aiosqlite sends each statement (execute, executemany, commit) as its own hop onto its thread;
SqlThread sends one whole function (BEGIN IMMEDIATE ... COMMIT) as one hop. Three measurements on a
real WAL file with synchronous=NORMAL, the log's settings:

1. group commit: BEGIN IMMEDIATE; INSERT 100 events (~200-byte bodies, 100 runs); upsert 5 `runs`
   rows; COMMIT -- rows/s and transactions/s for each driver;
2. point reads: 32 tasks each doing `SELECT ... WHERE run_id=? AND seq>?` in a loop -- reads/s;
3. the same group commit while the event loop is busy (200 ready tasks doing 0.1 ms of work per
   turn, as thousands of live runs make it): each hop back to the loop waits a whole turn, so
   four hops cost about four turns and one hop one;
4. cancellation: a task cancelled while its transaction is under way. Afterwards, can a second
   connection write? Is the first connection still inside a transaction? (aiosqlite: the statements
   already sent have run, the COMMIT was never sent: the write lock stays held until someone
   notices. SqlThread: the function runs to its end whatever happens to the awaiting task.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import aiosqlite

from kernel.log.sqlite.sqlthread import SqlThread

SCHEMA = """
CREATE TABLE events(pos INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL, type TEXT NOT NULL, step_id TEXT, body BLOB NOT NULL,
    crc INTEGER NOT NULL, UNIQUE(run_id, seq));
CREATE TABLE runs(run_id TEXT PRIMARY KEY, status TEXT NOT NULL, updated_ns INTEGER NOT NULL);
"""
INSERT = "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc) VALUES (?,?,?,?,?,?,?)"
UPSERT = ("INSERT INTO runs(run_id, status, updated_ns) VALUES (?,?,?) "
          "ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, updated_ns=excluded.updated_ns")
N_RUNS = 100
BODY = os.urandom(200)


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=0")
    return conn


def fresh(dir_: Path, name: str) -> Path:
    path = dir_ / f"{name}.db"
    conn = connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    return path


class Batches:
    """The next group of 100 events: one per run, each run's seq one higher than its last."""

    def __init__(self) -> None:
        self.seq = 0

    def next(self) -> tuple[list[tuple], list[tuple]]:
        self.seq += 1
        now = time.time_ns()
        rows = [(f"run-{r:04d}", self.seq, now, "StepCompleted", "s1", BODY, zlib.crc32(BODY))
                for r in range(N_RUNS)]
        runs = [(f"run-{r:04d}", "running", now) for r in range(5)]
        return rows, runs


def commit_group(conn: sqlite3.Connection, rows: list[tuple], runs: list[tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT, rows)
    conn.executemany(UPSERT, runs)
    conn.execute("COMMIT")


async def appends_sqlthread(path: Path, seconds: float) -> tuple[int, float]:
    thread = SqlThread(lambda: connect(path), "bench")
    await thread.start()
    batches, n, start = Batches(), 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await thread.call(commit_group, *batches.next())
        n += 1
    elapsed = time.perf_counter() - start
    await thread.close()
    return n, elapsed


async def appends_aiosqlite(path: Path, seconds: float) -> tuple[int, float]:
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute("PRAGMA synchronous=NORMAL")
        batches, n, start = Batches(), 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            rows, runs = batches.next()
            await db.execute("BEGIN IMMEDIATE")
            await db.executemany(INSERT, rows)
            await db.executemany(UPSERT, runs)
            await db.execute("COMMIT")
            n += 1
        return n, time.perf_counter() - start


def seed_reads(path: Path) -> None:
    conn = connect(path)
    batches = Batches()
    for _ in range(50):
        commit_group(conn, *batches.next())
    conn.close()


READ = "SELECT seq, type, body FROM events WHERE run_id=? AND seq>? ORDER BY seq LIMIT 20"


def read_one(conn: sqlite3.Connection, run_id: str, seq: int) -> list:
    return conn.execute(READ, (run_id, seq)).fetchall()


async def reads_sqlthread(path: Path, seconds: float, tasks: int = 32) -> float:
    thread = SqlThread(lambda: connect(path), "bench-read")
    await thread.start()
    count = 0
    deadline = time.perf_counter() + seconds

    async def reader(i: int) -> None:
        nonlocal count
        rnd = random.Random(i)
        while time.perf_counter() < deadline:
            await thread.call(read_one, f"run-{rnd.randrange(N_RUNS):04d}", rnd.randrange(40))
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(reader(i) for i in range(tasks)))
    elapsed = time.perf_counter() - start
    await thread.close()
    return count / elapsed


async def reads_aiosqlite(path: Path, seconds: float, tasks: int = 32) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    async with aiosqlite.connect(path, isolation_level=None) as db:

        async def reader(i: int) -> None:
            nonlocal count
            rnd = random.Random(i)
            while time.perf_counter() < deadline:
                cursor = await db.execute(READ, (f"run-{rnd.randrange(N_RUNS):04d}", rnd.randrange(40)))
                await cursor.fetchall()
                await cursor.close()
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(reader(i) for i in range(tasks)))
        return count / (time.perf_counter() - start)


async def busy_loop(tasks: int, work_s: float, stop: asyncio.Event) -> None:
    """`tasks` coroutines each burning `work_s` of CPU per turn of the event loop, the way many live
    runs folding, encoding and rendering do: every hop back to the loop waits behind them."""

    async def spin() -> None:
        while not stop.is_set():
            end = time.perf_counter() + work_s
            while time.perf_counter() < end:
                pass
            await asyncio.sleep(0)

    await asyncio.gather(*(spin() for _ in range(tasks)))


async def latency_busy(path: Path, driver: str, n: int = 20) -> float:
    """Median ms per group commit while the event loop is busy (200 tasks x 0.1 ms per turn)."""
    stop = asyncio.Event()
    load = asyncio.create_task(busy_loop(200, 0.0001, stop))
    await asyncio.sleep(0.05)
    batches, times = Batches(), []
    if driver == "sqlthread":
        thread = SqlThread(lambda: connect(path), "bench-busy")
        await thread.start()
        for _ in range(n):
            t0 = time.perf_counter()
            await thread.call(commit_group, *batches.next())
            times.append(time.perf_counter() - t0)
        await thread.close()
    else:
        async with aiosqlite.connect(path, isolation_level=None) as db:
            for _ in range(n):
                rows, runs = batches.next()
                t0 = time.perf_counter()
                await db.execute("BEGIN IMMEDIATE")
                await db.executemany(INSERT, rows)
                await db.executemany(UPSERT, runs)
                await db.execute("COMMIT")
                times.append(time.perf_counter() - t0)
    stop.set()
    await load
    return statistics.median(times) * 1e3


def other_writer_can_write(path: Path) -> bool:
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # database is locked
        return False
    finally:
        conn.close()


async def cancel_aiosqlite(path: Path) -> tuple[bool, bool]:
    """Cancel the transaction's task right after its INSERTs were sent."""
    async with aiosqlite.connect(path, isolation_level=None) as db:
        rows, runs = Batches().next()
        inserted = asyncio.Event()

        async def transaction() -> None:
            await db.execute("BEGIN IMMEDIATE")
            await db.executemany(INSERT, rows)
            inserted.set()
            await asyncio.sleep(0)  # the next statement's hop: where a cancel lands
            await db.executemany(UPSERT, runs)
            await db.execute("COMMIT")

        task = asyncio.create_task(transaction())
        await inserted.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return other_writer_can_write(path), db.in_transaction


async def cancel_sqlthread(path: Path) -> tuple[bool, bool]:
    thread = SqlThread(lambda: connect(path), "bench-cancel")
    await thread.start()
    task = asyncio.create_task(thread.call(commit_group, *Batches().next()))
    await asyncio.sleep(0)  # the function is on its way to the thread
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    in_tx = await thread.call(lambda conn: conn.in_transaction)
    free = other_writer_can_write(path)
    await thread.close()
    return free, in_tx


async def main(seconds: float, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dir_ = Path(tmp)
        print(f"# SQLite drivers: median of {rounds} alternating rounds of {seconds:.0f} s, WAL, "
              f"synchronous=NORMAL, load {os.getloadavg()[0]:.1f}")
        print("| measurement | aiosqlite | SqlThread | SqlThread / aiosqlite |")
        print("|---|---:|---:|---:|")
        # alternate the drivers, take the median of `rounds`: the machine is shared and noisy
        a_rates, s_rates, a_reads, s_reads = [], [], [], []
        reads = fresh(dir_, "r")
        seed_reads(reads)
        for i in range(rounds):
            a_n, a_t = await appends_aiosqlite(fresh(dir_, f"a{i}"), seconds)
            s_n, s_t = await appends_sqlthread(fresh(dir_, f"s{i}"), seconds)
            a_rates.append(a_n * N_RUNS / a_t)
            s_rates.append(s_n * N_RUNS / s_t)
            a_reads.append(await reads_aiosqlite(reads, seconds))
            s_reads.append(await reads_sqlthread(reads, seconds))
        a_rate, s_rate = statistics.median(a_rates), statistics.median(s_rates)
        a_r, s_r = statistics.median(a_reads), statistics.median(s_reads)
        print(f"| group commit, rows/s (100 per txn) | {a_rate:,.0f} | {s_rate:,.0f} | "
              f"{s_rate / a_rate:.2f}x |")
        print(f"| group commit, ms per txn | {N_RUNS / a_rate * 1e3:.2f} | "
              f"{N_RUNS / s_rate * 1e3:.2f} | |")
        print(f"| point reads/s, 32 tasks | {a_r:,.0f} | {s_r:,.0f} | {s_r / a_r:.2f}x |")
        a_busy = await latency_busy(fresh(dir_, "ba"), "aiosqlite")
        s_busy = await latency_busy(fresh(dir_, "bs"), "sqlthread")
        print(f"| group commit ms, event loop busy (200 tasks x 0.1 ms) | {a_busy:.1f} | "
              f"{s_busy:.1f} | {s_busy / a_busy:.2f}x (less is better) |")
        a_free, a_tx = await cancel_aiosqlite(fresh(dir_, "ca"))
        s_free, s_tx = await cancel_sqlthread(fresh(dir_, "cs"))
        word = {True: "yes", False: "no"}
        print(f"| cancelled mid-transaction: another writer can write | {word[a_free]} | "
              f"{word[s_free]} | |")
        print(f"| cancelled mid-transaction: connection left in a transaction | {word[a_tx]} | "
              f"{word[s_tx]} | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.rounds))
