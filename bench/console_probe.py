"""Measures the console headless in a fresh process (so RSS is the console's own), on a log
given on the command line. Prints one JSON object.

    python -m bench.console_probe DB RUN_ID [moves]    # moves: open and cursor moves only
"""

from __future__ import annotations

import asyncio
import json
import random

import subprocess
import sys
import time
from pathlib import Path

from console.app import VigilApp
from console.screens.runs import RunsScreen
from console.screens.scrubber import ScrubberScreen
from console.widgets.timeline import Timeline
from kernel.registry import Registry

from bench.common import rss_mb


async def _until(pilot, condition, timeout=30.0):
    start = time.perf_counter()
    while not condition():
        await asyncio.sleep(0.005)
        if time.perf_counter() - start > timeout:
            raise TimeoutError("console did not get there")


def _shows(app, seq: int) -> bool:
    screen = app.screen
    if not isinstance(screen, ScrubberScreen) or not screen.query("#doc"):
        return False
    return f"── state as of seq {seq} ──" in screen.query_one("#doc").lines


async def probe(db: Path, run_id: str, moves_only: bool = False) -> dict:
    app = VigilApp(db, Registry(), adopt=False)
    out: dict = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, RunsScreen))
        info = await app.store.run(run_id)
        t0 = time.perf_counter()
        app.open_scrubber(run_id)
        await _until(pilot, lambda: _shows(app, info.last_seq))
        out["open_s"] = time.perf_counter() - t0

        timeline = app.screen.query_one(Timeline)
        moves = []
        rng = random.Random(3)
        cpu = []  # process CPU per move: what the shared machine's load does not inflate
        for i in range(300):
            seq = timeline.seq_at(timeline.cursor)
            c0 = time.process_time()
            if i % 3 == 2:  # a jump somewhere far: a page that is not cached
                target = rng.randrange(1, info.last_seq)
                t0 = time.perf_counter()
                app.screen._go(target)
            else:
                target = seq - 1 if seq > 1 else seq + 1
                t0 = time.perf_counter()
                app.simulate_key("left" if target < seq else "right")  # no Pilot idle-waits: the real latency
            await _until(pilot, lambda: _shows(app, target))
            moves.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        moves.sort()
        out["move_p50_ms"] = moves[len(moves) // 2]
        out["move_p99_ms"] = moves[int(len(moves) * 0.99) - 1]
        cpu.sort()
        out["move_cpu_p50_ms"] = cpu[len(cpu) // 2]
        out["move_cpu_p99_ms"] = cpu[int(len(cpu) * 0.99) - 1]
        out["rss_mb"] = rss_mb()
        if moves_only:
            return out

        # key-press latency while 5,000 events/s arrive on a live run, written by another process
        flood_id = f"flood-{time.time_ns()}"
        writer = subprocess.Popen([sys.executable, "-m", "bench.flood", str(db), flood_id, "5000", "12"],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "started"
        app.pop_screen()
        await _until(pilot, lambda: isinstance(app.screen, RunsScreen))
        await asyncio.sleep(0.5)
        app.open_scrubber(flood_id)
        await _until(pilot, lambda: isinstance(app.screen, ScrubberScreen) and bool(app.screen.query(Timeline))
                     and app.screen.timeline.count > 0)
        timeline = app.screen.query_one(Timeline)
        keys = []
        for i in range(150):
            before = timeline.cursor
            t0 = time.perf_counter()
            app.simulate_key("up" if i % 2 == 0 else "down")
            await _until(pilot, lambda: timeline.cursor != before and timeline.item(timeline.cursor) is not None)
            keys.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.03)
        rate = float(writer.stdout.readline().strip() or 0)
        writer.wait()
        keys.sort()
        out["flood_events_per_s"] = rate
        out["key_p50_ms"] = keys[len(keys) // 2]
        out["key_p99_ms"] = keys[int(len(keys) * 0.99) - 1]
        out["rss_after_flood_mb"] = rss_mb()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(Path(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["moves"]))))
