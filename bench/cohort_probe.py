"""Why appends in two cohorts lose on CPython: `bench.log_cases.vigil_appends` (100 runs, each
awaiting each append) with the SQLite writer's group commit timed phase by phase on its thread
(wall and CPU), once as vigil runs it (one group in flight) and once with a prototype writer
that keeps two groups in flight, the first group of 100 split in two, so that 50 runs are woken
and append while the other 50 commit.

    .venv/bin/python -m bench.cohort_probe [--events 50000] [--switch 0.005]

The prototype is here only to be measured; nothing in kernel/ uses it. `--switch` sets
sys.setswitchinterval, how long a thread waiting for the GIL waits before it asks for it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import deque

import kernel.log.sqlite.writer as writer
from kernel.log.groupcommit import GroupWriter, plan

from .common import fresh_db
from .log_cases import vigil_appends

PHASES = ("begin", "plan", "insert", "commit")


class TwoCohorts(GroupWriter):
    """GroupWriter with two groups in flight; the first group of a burst is split in two. No
    retry path: a prototype to time, not to keep."""

    async def _run(self) -> None:
        inflight: deque = deque()
        while True:
            while self._queue and len(inflight) < 2:
                n = len(self._queue)
                take = (n + 1) // 2 if not inflight and n >= 32 else n
                group = [self._queue.popleft() for _ in range(take)]
                inflight.append((group, asyncio.ensure_future(self._commit_fn(group))))
            if not inflight:
                if not await self._idle():
                    return
                continue
            group, done = inflight[0]
            if len(inflight) < 2:  # room for another group: also wake for a new append
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait([done, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if not done.done():
                    continue
            else:
                await asyncio.wait([done])
            inflight.popleft()
            outcomes, committed = done.result()
            for a, outcome in zip(group, outcomes):
                a.future.set_result(outcome)
            self._on_commit(committed)
            await asyncio.sleep(0)


def one(events: int, cohorts: bool) -> dict:
    wall = dict.fromkeys(PHASES, 0.0)
    cpu = dict.fromkeys(PHASES, 0.0)
    rows = groups = 0

    def timed(conn, group, known, heads):
        nonlocal rows, groups
        marks = [(time.perf_counter(), time.thread_time())]
        conn.execute("BEGIN IMMEDIATE")
        marks.append((time.perf_counter(), time.thread_time()))
        p = plan(group, known, lambda r: conn.execute(writer._LAST_SEQ, (r,)).fetchone()[0] or 0,
                 heads, lambda r, s: writer._chain_at(conn, r, s))
        marks.append((time.perf_counter(), time.thread_time()))
        conn.executemany(writer._INSERT_EVENT, p.rows)
        marks.append((time.perf_counter(), time.thread_time()))
        conn.execute("COMMIT")
        marks.append((time.perf_counter(), time.thread_time()))
        known.update(p.last)
        heads.update(p.heads)
        for name, (w0, c0), (w1, c1) in zip(PHASES, marks, marks[1:]):
            wall[name] += w1 - w0
            cpu[name] += c1 - c0
        rows += len(p.rows)
        groups += 1
        return p.outcomes, p.committed()

    saved = writer._commit_group, writer.GroupWriter
    writer._commit_group = timed
    if cohorts:
        writer.GroupWriter = TwoCohorts
    try:
        rate = asyncio.run(vigil_appends(fresh_db("cohort-probe.db"), events, 100))[0]
    finally:
        writer._commit_group, writer.GroupWriter = saved
    return dict(rate=rate, group=rows / groups,
                **{f"{k} wall/cpu": f"{wall[k] / groups * 1e3:.3f}/{cpu[k] / groups * 1e3:.3f}" for k in PHASES})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--switch", type=float, default=sys.getswitchinterval())
    args = ap.parse_args()
    sys.setswitchinterval(args.switch)
    for cohorts in (False, True, False, True):
        r = one(args.events, cohorts)
        print(("two cohorts " if cohorts else "one group   ")
              + f"{r.pop('rate'):,.0f} events/s, {r.pop('group'):.0f} rows a group; ms a group: "
              + ", ".join(f"{k} {v}" for k, v in r.items()) + f"  (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
