"""The garbage collector's settings for a process that drives many runs at once (a worker).

With thousands of live runs the heap holds millions of objects (each run's task, view, state and
conversation, its connection), and many short-lived containers (events, model chunks, messages)
survive two young collections and are promoted to the oldest generation, where they die soon
after. CPython's default thresholds (700, 10, 10) then run a full collection every couple of
seconds, each walking the whole heap: at 10,000 runs 36 full passes of 2.7 s of CPU each, 65% of
the process's CPU (bench/NOTES.md, "The model client and 10,000 runs"). Nearly everything is freed
by reference counting anyway; the collector is only for cycles, so it can run far less often.

Measured with `BENCH_GC=freeze+10000,50,100 python -m bench.many_runs_probe vigil URL 10000`:
CPU a run 18.6 -> 8.5 ms, runs/s 47 -> 97 on the same machine in the same minutes, peak RSS
902 -> 1,027 MB (cycles wait longer to be freed).

Process-wide, so it is called by the program that owns the process (a worker, `vigil run`), never
by the library on its own; the console has its own settings (console/gctune.py).
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc_for_runs", "THRESHOLDS"]

# young collections every 10,000 net allocations (not 700); middle ones 50x rarer; full ones are
# then due only after 100 middle ones *and* a quarter of the old generation's size in new objects
THRESHOLDS = (10_000, 50, 100)


def tune_gc_for_runs() -> None:
    """Call once start-up is done (imports, registry, store open): what exists by then lives as
    long as the process, and gc.freeze() keeps every later collection from walking it again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
