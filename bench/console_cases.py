"""Console cases, measured in a fresh process on the 1,000,000-event run the log cases built."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from .bigstate import load_big_state
from .common import WORK

ROOT = Path(__file__).resolve().parent.parent


def _probe(db, run_id: str, *extra: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.console_probe", str(db), run_id, *extra], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def console(quick: bool) -> list[dict]:
    db = WORK / "vigil-long.db"
    n = "200,000" if quick else "1,000,000"
    r = _probe(db, "long")
    big_events = asyncio.run(load_big_state(db, "big"))
    big = _probe(db, "big", "moves")
    return [
        dict(case=f"console: open the scrubber on a {n}-event run", setup="headless run_test 120x40; until the last event and its state show",
             vigil=f"{r['open_s'] * 1000:,.0f} ms", peer="-", ratio=None, goal="< 1 s", ok=r["open_s"] < 1),
        dict(case="console: scrubber cursor moves", setup="300 moves: one event either way, every third a jump to a random seq; until the event and state show",
             vigil=f"p50 {r['move_p50_ms']:.0f} ms, p99 {r['move_p99_ms']:.0f} ms", peer="-", ratio=None,
             goal="p99 < 50 ms", ok=r["move_p99_ms"] < 50),
        dict(case="console: scrubber cursor moves on a run whose state is 1 MB",
             setup=f"{big_events:,} events, each step appending ~1 KB to a list; the same 300 moves; "
                   "the detail shows the state (first 5,000 lines) and its diff",
             vigil=f"p50 {big['move_p50_ms']:.0f} ms, p99 {big['move_p99_ms']:.0f} ms (open {big['open_s'] * 1000:,.0f} ms)",
             peer="-", ratio=None, goal="p99 < 50 ms", ok=big["move_p99_ms"] < 50),
        dict(case="console: process RSS", setup="after opening that run and 300 moves", vigil=f"{r['rss_mb']:.0f} MB",
             peer="-", ratio=None, goal="< 200 MB", ok=r["rss_mb"] < 200),
        dict(case="console: key press to screen while events arrive",
             setup=f"{r['flood_events_per_s']:,.0f} events/s appended to the scrubbed run; 120 presses",
             vigil=f"p50 {r['key_p50_ms']:.0f} ms, p99 {r['key_p99_ms']:.0f} ms; RSS {r['rss_after_flood_mb']:.0f} MB",
             peer="-", ratio=None, goal="p99 < 100 ms at 5,000 events/s", ok=r["key_p99_ms"] < 100),
    ]
