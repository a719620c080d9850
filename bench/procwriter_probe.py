"""What a writer in its own process would give the appends benchmark: a prototype, measured,
not used by vigil (bench/NOTES.md, "Appends: the floor, the GIL, and what 0.6x would take").

    .venv/bin/python -m bench.procwriter_probe [--events 50000] [--rounds 2]

100 asyncio tasks each make an event, seal it with vigil's codec (secret check, msgpack, crc),
queue the row and await its commit. The rows go to a child process over a pipe (msgpack), which
chains them (sha256, as kernel/chain.py does) and commits them 100 or 50 at a time; with
`cohorts`, two groups are in flight, so 50 tasks make their next events while the other 50's rows
commit, and neither side waits for the other's GIL. Left out, against vigil: the seq checks, the
projections, the retries. Raw sqlite3 is measured after each round, as in bench.log_cases.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time

import msgspec

from kernel.chain import GENESIS, link
from kernel.codec import seal
from kernel.log.sqlite import schema

from .common import fresh_db, tool_result
from .log_cases import raw_append_ceiling

_INSERT = "INSERT INTO events(run_id, seq, ts_ns, type, step_id, body, crc, chain) VALUES (?,?,?,?,?,?,?,?)"


def _writer(conn, path: str) -> None:
    db = schema.connect(path)
    schema.migrate(db)
    heads: dict[str, bytes] = {}
    decode = msgspec.msgpack.Decoder(list[tuple[str, int, int, str, None, bytes, int]]).decode
    conn.send_bytes(b"ready")
    while (message := conn.recv_bytes()) != b"stop":
        rows = decode(message)
        out = []
        for r in rows:
            chain = heads[r[0]] = link(heads.get(r[0], GENESIS), r[0], r[1], r[2], r[3], r[5])
            out.append((*r, chain))
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_INSERT, out)
        db.execute("COMMIT")
        conn.send_bytes(b"ok")


async def _appends(events: int, cohorts: bool) -> float:
    loop = asyncio.get_running_loop()
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("fork").Process(target=_writer, args=(child, str(fresh_db("procwriter.db"))))
    proc.start()
    assert parent.recv_bytes() == b"ready"
    encode = msgspec.msgpack.Encoder().encode
    queue: list[tuple[tuple, asyncio.Future]] = []
    inflight: list[list[asyncio.Future]] = []
    wake = asyncio.Event()

    def replied() -> None:
        parent.recv_bytes()
        for done in inflight.pop(0):
            done.set_result(None)
        wake.set()

    loop.add_reader(parent.fileno(), replied)

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0)
            while queue and len(inflight) < (2 if cohorts else 1):
                take = (len(queue) + 1) // 2 if cohorts and not inflight and len(queue) >= 32 else len(queue)
                group, queue[:take] = queue[:take], []
                inflight.append([done for _, done in group])
                parent.send_bytes(encode([row for row, _ in group]))

    async def one_run(r: int) -> None:
        run_id = f"run{r:03d}"
        for i in range(events // 100):
            event, body, crc = seal(tool_result(i))
            done = loop.create_future()
            queue.append(((run_id, i + 1, time.time_ns(), type(event).__name__, None, body, crc), done))
            wake.set()
            await done

    task = asyncio.create_task(writer())
    t = time.perf_counter()
    await asyncio.gather(*(one_run(r) for r in range(100)))
    rate = events / (time.perf_counter() - t)
    task.cancel()
    loop.remove_reader(parent.fileno())
    parent.send_bytes(b"stop")
    parent.close()
    proc.join()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.rounds):
        for cohorts in (False, True):
            rate = asyncio.run(_appends(args.events, cohorts))
            raw = raw_append_ceiling(args.events, 100, 100)
            print(f"{'two cohorts' if cohorts else 'one group  '} {rate:,.0f} events/s, raw {raw:,.0f}/s, "
                  f"{rate / raw:.2f}x (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
