"""Where an append's time goes: `bench.log_cases.vigil_appends` with the SQLite writer's group
commit timed on its thread (wall and CPU) and the event loop's CPU, per group of appends.

    .venv/bin/python -m bench.append_probe [--events 50000] [--rounds 3] [--raw]

Per group: `thread` is the commit function on the writer's thread (wall; `cpu` its CPU), `plan`
the seq checks and hash chain inside it, `loop cpu` the event loop thread's CPU (waking the
callers, sealing and queueing their next events, the hand-off). `--raw` also measures raw
sqlite3's ceiling after each round (same rows, 100 a transaction), for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import kernel.log.sqlite.writer as writer

from .common import fresh_db
from .log_cases import raw_append_ceiling, vigil_appends


def one(events: int) -> dict:
    tot = {"thread": 0.0, "cpu": 0.0, "plan": 0.0, "groups": 0}
    commit, plan = writer._commit_group, writer.plan

    def timed_commit(*a):
        t, c = time.perf_counter(), time.thread_time()
        try:
            return commit(*a)
        finally:
            tot["thread"] += time.perf_counter() - t
            tot["cpu"] += time.thread_time() - c
            tot["groups"] += 1

    def timed_plan(*a):
        t = time.perf_counter()
        try:
            return plan(*a)
        finally:
            tot["plan"] += time.perf_counter() - t

    writer._commit_group, writer.plan = timed_commit, timed_plan
    try:
        c, t = time.thread_time(), time.perf_counter()
        rate = asyncio.run(vigil_appends(fresh_db("append-probe.db"), events, 100))[0]
        wall, loop_cpu = time.perf_counter() - t, time.thread_time() - c
    finally:
        writer._commit_group, writer.plan = commit, plan
    g = tot["groups"]
    return dict(rate=rate, groups=g, per_group=events / g, wall=wall / g * 1e3,
                thread=tot["thread"] / g * 1e3, cpu=tot["cpu"] / g * 1e3,
                plan=tot["plan"] / g * 1e3, loop_cpu=loop_cpu / g * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--raw", action="store_true")
    args = ap.parse_args()
    rows = []
    for _ in range(args.rounds):
        r = one(args.events)
        if args.raw:
            r["raw"] = raw_append_ceiling(args.events, 100, 100)
            r["ratio"] = r["rate"] / r["raw"]
        r["load"] = os.getloadavg()[0]
        rows.append(r)
        print(" ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    keys = [k for k in rows[0] if isinstance(rows[0][k], float)]
    print("median " + " ".join(f"{k}={statistics.median(r[k] for r in rows):,.3f}" for k in keys))


if __name__ == "__main__":
    main()
