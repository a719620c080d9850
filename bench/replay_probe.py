"""Replay against its raw ceiling, alternating, on one database: wall and CPU (process_time)
of `Store.replay` (read + decode + fold) and of raw sqlite3 scan + msgspec decode.

    .venv/bin/python -m bench.replay_probe [--events 200000] [--rounds 5] [--profile]

The database is built once (bench/.work/replay-probe-N.db) and reused by later calls.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time

import msgspec

from kernel.events import Event
from kernel.log.sqlite import reads
from kernel.log.sqlite.schema import connect
from kernel.store import Store

from .common import WORK
from .log_cases import _load


def raw(path) -> tuple[float, float]:
    decoder = msgspec.msgpack.Decoder(Event)
    conn = connect(path, readonly=True)
    c, t = time.process_time(), time.perf_counter()
    cur = conn.execute("SELECT body FROM events WHERE run_id='long' ORDER BY seq")
    while rows := cur.fetchmany(2048):
        for (body,) in rows:
            decoder.decode(body)
    out = time.perf_counter() - t, time.process_time() - c
    conn.close()
    return out


def ours(path, n: int) -> tuple[float, float]:
    conn = connect(path, readonly=True)
    c, t = time.process_time(), time.perf_counter()
    view = reads.state_at(conn, "long", None, False)  # what Store.replay runs on its reader
    out = time.perf_counter() - t, time.process_time() - c
    assert view.seq == n and not view.problems, view.problems[:3]
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    path = WORK / f"replay-probe-{args.events}.db"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        asyncio.run(_load(path, "long", args.events))
    if args.profile:
        pr = cProfile.Profile()
        pr.enable()
        ours(path, args.events)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(12)
        return
    wall, cpu = [], []
    for _ in range(args.rounds):
        rw, rc = raw(path)
        vw, vc = ours(path, args.events)
        wall.append(rw / vw)
        cpu.append(rc / vc)
        print(f"raw {args.events / rw:,.0f}/s (cpu {rc:.3f}s)  vigil {args.events / vw:,.0f}/s "
              f"(cpu {vc:.3f}s)  ratio wall {rw / vw:.3f} cpu {rc / vc:.3f}  load {os.getloadavg()[0]:.2f}",
              flush=True)
    print(f"median ratio wall {statistics.median(wall):.3f} cpu {statistics.median(cpu):.3f}")


if __name__ == "__main__":
    main()
