"""Start-up: the CLI must not pay for the UI it does not open."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kernel.events import RunStarted
from kernel.store import Store

from .common import fresh_db

ROOT = Path(__file__).resolve().parent.parent


async def _runs(path: Path, n: int) -> None:
    async with await Store.open(path) as store:
        for k in range(0, n, 500):
            await asyncio.gather(*(store.append(f"run{i:06d}", [RunStarted(graph="g")], expected_seq=0)
                                   for i in range(k, min(n, k + 500))))


def _median_s(cmd: list[str], env: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def startup(quick: bool) -> list[dict]:
    db = fresh_db("startup.db")
    asyncio.run(_runs(db, 10_000))
    env = {**os.environ, "VIGIL_DB": str(db)}
    repeat = 5 if quick else 15
    base = _median_s([sys.executable, "-c", "pass"], env, repeat)
    helped = _median_s([sys.executable, "-m", "console.cli", "--help"], env, repeat)
    listed = _median_s([sys.executable, "-m", "console.cli", "runs"], env, repeat)
    return [
        dict(case="start-up: `vigil --help`", setup=f"median of {repeat}; the ceiling is `python -c pass`",
             vigil=f"{helped * 1000:.0f} ms", peer=f"{base * 1000:.0f} ms python -c pass", ratio=helped / base,
             goal="< 0.3 s", ok=helped < 0.3),
        dict(case="start-up: `vigil runs` on a 10,000-run database", setup=f"median of {repeat}; prints the newest 50",
             vigil=f"{listed * 1000:.0f} ms", peer=f"{base * 1000:.0f} ms python -c pass", ratio=listed / base,
             goal="< 0.5 s", ok=listed < 0.5),
    ]
