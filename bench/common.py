"""Shared bits for the benchmarks: timing, a realistic event, the results table."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import sys
import time
from pathlib import Path

from kernel.events import ActionSucceeded, Patch, StepCompleted

WORK = Path(__file__).resolve().parent / ".work"


def fresh_db(name: str) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def tool_result(i: int) -> ActionSucceeded:
    """About the size of a small tool result (~200 bytes encoded)."""
    return ActionSucceeded(
        action_id=f"{i}.lookup#0",
        output={"order": f"A-{i:06d}", "amount": 89.0, "status": "shipped", "items": ["blender", "jar"],
                "note": "customer reported damage on arrival; photos attached"},
    )


def step_completed(i: int, hash_: str = "") -> StepCompleted:
    return StepCompleted(
        step_id=f"{i}.work", node="work",
        update=(Patch("set", "i", i), Patch("set", "status", f"step {i} ok"),
                Patch("merge", "counters", {f"k{i % 16}": i})),
        next=("work",), state_hash=hash_,
    )


def rss_mb() -> float:
    """This process's own peak RSS. Not ru_maxrss: Linux carries a parent's peak into a child
    started by fork, so a probe started from the benchmark runner would report the runner's."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.platform()}"
    )


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
