"""Event-log cases: appends from 100 concurrent runs, replay, state_at on a 1,000,000-event run.

Each vigil figure is measured beside its ceiling (raw sqlite3 doing the same rows) in the same run.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import msgspec

from kernel.log.sqlite import schema
from kernel.codec import encode
from kernel.events import Event, RunStarted
from kernel.state import apply, state_hash
from kernel.store import Store

from .common import Timer, fresh_db, percentile, step_completed, tool_result


_CHAIN = bytes(range(32))


def raw_append_ceiling(events_total: int, runs: int, batch: int) -> float:
    """Raw sqlite3, synchronous=FULL, WAL, same table and rows, `batch` rows per transaction."""
    path = fresh_db("raw-append.db")
    conn = schema.connect(path)
    schema.migrate(conn)
    rows = []
    per_run = events_total // runs
    for i in range(per_run):
        body, crc = encode(tool_result(i))
        for r in range(runs):
            # The same 32 bytes of hash chain as vigil's rows (any 32 bytes: the ceiling stores,
            # it does not compute).
            rows.append((f"run{r:03d}", i + 1, time.time_ns(), "ActionSucceeded", None, body, crc, _CHAIN))
    sql = "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc, chain) VALUES (?,?,?,?,?,?,?,?)"
    with Timer() as t:
        for k in range(0, len(rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows[k : k + batch])
            conn.execute("COMMIT")
    conn.close()
    return len(rows) / t.seconds


async def vigil_appends(target, events_total: int, runs: int) -> tuple[float, float, float]:
    """`runs` runs appending at once, each awaiting each append's commit, on any log (a SQLite
    path or a PostgreSQL URL): (events/s, append p50 ms, p99 ms)."""
    latencies: list[float] = []
    async with await Store.open(target) as store:
        per_run = events_total // runs

        async def one_run(r: int) -> None:
            run_id = f"run{r:03d}"
            seq = await store.append(run_id, [RunStarted(graph="bench")], expected_seq=0)
            for i in range(per_run - 1):
                t0 = time.perf_counter()
                seq = await store.append(run_id, [tool_result(i)], expected_seq=seq)
                latencies.append(time.perf_counter() - t0)

        with Timer() as t:
            await asyncio.gather(*(one_run(r) for r in range(runs)))
    return events_total / t.seconds, percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000


async def asyncio_floor(events_total: int, runs: int, *, build: bool) -> float:
    """What any asyncio program gets that awaits each append's commit, with no vigil in it: `runs`
    tasks queue a row each and await a future; one task commits the queued rows through a
    one-thread executor (vigil's hop) into the same table, then wakes them. `build`: each row's
    event is made and msgpack-encoded first (msgspec and crc32 only: no secret check, no chain,
    no seq check). Events/s."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1)
    conn = await loop.run_in_executor(pool, schema.connect, fresh_db("floor-append.db"))
    await loop.run_in_executor(pool, schema.migrate, conn)
    sql = "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc, chain) VALUES (?,?,?,?,?,?,?,?)"

    def commit(rows: list[tuple]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")

    queue: list[tuple[tuple, asyncio.Future]] = []
    wake = asyncio.Event()

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0)
            group = queue[:]
            queue.clear()
            await loop.run_in_executor(pool, commit, [row for row, _ in group])
            for _, done in group:
                done.set_result(None)
            await asyncio.sleep(0)

    body, crc = encode(tool_result(0))
    per_run = events_total // runs

    async def one_run(r: int) -> None:
        run_id = f"run{r:03d}"
        for i in range(per_run):
            if build:
                b = msgspec.msgpack.encode(tool_result(i))
                row = (run_id, i + 1, time.time_ns(), "ActionSucceeded", None, b, zlib.crc32(b), _CHAIN)
            else:
                row = (run_id, i + 1, time.time_ns(), "ActionSucceeded", None, body, crc, _CHAIN)
            done = loop.create_future()
            queue.append((row, done))
            wake.set()
            await done

    task = asyncio.create_task(writer())
    with Timer() as t:
        await asyncio.gather(*(one_run(r) for r in range(runs)))
    task.cancel()
    await loop.run_in_executor(pool, conn.close)
    pool.shutdown()
    return events_total / t.seconds


def appends(quick: bool) -> list[dict]:
    total = 50_000 if quick else 200_000
    raw = raw_append_ceiling(total, 100, 100)
    floor = asyncio.run(asyncio_floor(total, 100, build=False))
    built = asyncio.run(asyncio_floor(total, 100, build=True))
    ours, _, p99 = asyncio.run(vigil_appends(fresh_db("vigil-append.db"), total, 100))
    return [dict(
        case="100 concurrent runs appending, synchronous=FULL (acknowledged events/s)",
        setup=f"{total:,} events of ~200 B; each run awaits each append's commit; "
              "ceiling: raw sqlite3 inserting the same rows 100 per transaction. "
              "Floors, no vigil in them (bench.log_cases.asyncio_floor): 100 asyncio tasks awaiting "
              "a thread's commits of pre-encoded rows, then the same with each event made and "
              "msgpack-encoded",
        vigil=f"{ours:,.0f}/s (append p99 {p99:.1f} ms)",
        peer=f"{raw:,.0f}/s raw sqlite3; floors {floor:,.0f}/s ({floor / raw:.2f}x), "
             f"{built:,.0f}/s with the event made ({built / raw:.2f}x)",
        ratio=ours / raw, goal=">= 40,000/s and >= 0.6x raw", ok=ours >= 40_000 and ours / raw >= 0.6,
    )]


def _long_run_events(n: int, chunk: int):
    """A long agent run, `chunk` events at a time: a tool result and a StepCompleted with a
    real state hash per step."""
    state: dict = {}
    events: list[Event] = [RunStarted(graph="bench")]
    i = made = 0
    while made < n:
        events.append(tool_result(i))
        step = step_completed(i)
        apply(state, step.update)
        events.append(msgspec.structs.replace(step, state_hash=state_hash(state)))
        i += 1
        if len(events) >= chunk or made + len(events) >= n:
            batch = events[: n - made]
            made += len(batch)
            yield batch
            events = []


async def _load(path, run_id: str, n: int) -> None:
    async with await Store.open(path) as store:
        seq = 0
        for batch in _long_run_events(n, 20_000):
            seq = await store.append(run_id, batch, expected_seq=seq)
        await store.flush_snapshots()


def raw_replay_ceiling(path) -> float:
    """Raw sqlite3 scan of the bodies plus msgspec decode into the event union (no fold)."""
    decoder = msgspec.msgpack.Decoder(Event)
    conn = sqlite3.connect(path)
    with Timer() as t:
        n = 0
        cur = conn.execute("SELECT body FROM events WHERE run_id='long' ORDER BY seq")
        while rows := cur.fetchmany(2048):
            for (body,) in rows:
                decoder.decode(body)
            n += len(rows)
    return n / t.seconds


async def _replay_and_state_at(path, n: int, probes: int) -> tuple[float, float, list[float]]:
    async with await Store.open(path, readonly=True) as store:
        with Timer() as t:
            view = await store.replay("long")  # read + decode + fold every state event
        assert view.seq == n and not view.problems
        with Timer() as pages:
            count = 0
            async for _ in store.iter_events("long", page=2000):
                count += 1
        assert count == n
        # replay folds only state-changing rows; the rate counts every event of the run
        rng = random.Random(7)
        times = []
        for _ in range(probes):
            seq = rng.randrange(1, n + 1)
            t0 = time.perf_counter()
            await store.state_at("long", seq)
            times.append((time.perf_counter() - t0) * 1000)
    return n / t.seconds, n / pages.seconds, times


def replay_and_state_at(quick: bool) -> list[dict]:
    n = 200_000 if quick else 1_000_000
    path = fresh_db("vigil-long.db")
    asyncio.run(_load(path, "long", n))
    raw = raw_replay_ceiling(path)
    rate, paged, times = asyncio.run(_replay_and_state_at(path, n, 200))
    p50, p99 = percentile(times, 50), percentile(times, 99)
    return [
        dict(
            case="replay: read + decode + fold a whole run (events/s)",
            setup=f"a {n:,}-event run (tool result + StepCompleted per step); from the database, no snapshots; "
                  "ceiling: raw sqlite3 scan + msgspec decode of every body, no fold",
            vigil=f"{rate:,.0f}/s", peer=f"{raw:,.0f}/s raw scan+decode",
            ratio=rate / raw, goal=">= 400,000/s and >= 0.8x raw", ok=rate >= 400_000 and rate / raw >= 0.8,
        ),
        dict(
            case="read a whole run as decoded records, page by page (events/s)",
            setup=f"the same {n:,}-event run through Store.iter_events (2,000 a page, every body "
                  "checked and decoded); ceiling as above",
            vigil=f"{paged:,.0f}/s", peer=f"{raw:,.0f}/s raw scan+decode",
            ratio=paged / raw, goal="(no goal; the scrubber's read path)", ok=None,
        ),
        dict(
            case=f"state_at a random seq of a {n:,}-event run",
            setup="200 random seqs; nearest snapshot (every 1,000 events) plus a short fold",
            vigil=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", peer="-", ratio=None,
            goal="p99 < 50 ms", ok=p99 < 50,
        ),
    ]
