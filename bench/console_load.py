"""The console under load: open on a log where another process (a vigil Runtime) drives 10,000
agent runs live against the loopback model server, and on a 100,000-run log.

    python -m bench.run --only console_load [--quick]     # quick: 1,000 live runs, 20,000-run log

Three processes besides the runner: the model server (bench/openai_stream_server.py, one core at
most), the driver (bench/many_runs_probe.py live: vigil's Runtime with every run) and the console
(bench/console_load_probe.py, App.run_test at 120x40), each measured on its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

from kernel.events import RunCompleted, RunStarted, StepCompleted, StepStarted
from kernel.store import Store

from .common import fresh_db
from .many_runs import ROOT, TOKENS, ModelServer, load

LONG_TURNS = 1000  # runs that outlast the measurement: every run stays live throughout


async def build_runs(path, runs: int) -> float:
    """`runs` short finished runs (4 events each) through the store's own append path, many
    runs per commit; returns the seconds it took."""
    t0 = time.perf_counter()
    async with await Store.open(path) as store:
        async def one(i: int) -> None:
            await store.append(f"r{i:07d}", [
                RunStarted(graph="many", input={"messages": [{"role": "user", "content": f"customer {i}"}]}),
                StepStarted(step_id="1.think", node="think", attempt=1),
                StepCompleted(step_id="1.think", node="think", update=(), next=(), state_hash=""),
                RunCompleted(output={"answer": "shipped"}),
            ], expected_seq=0)

        batch = 2000
        for start in range(0, runs, batch):
            await asyncio.gather(*(one(i) for i in range(start, min(runs, start + batch))))
    return time.perf_counter() - t0


def _probe(what: str, db) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.console_load_probe", what, str(db)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"console probe failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _live(n: int) -> dict:
    db = fresh_db(f"vigil-live-{n}.db")
    with ModelServer(LONG_TURNS) as server:
        driver = subprocess.Popen(
            [sys.executable, "-m", "bench.many_runs_probe", "live", server.url, str(n), str(db), "600"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            t0 = time.perf_counter()
            if driver.stdout.readline().strip() != "started":
                raise RuntimeError("the driver did not start its runs")
            r = _probe("live", db)
            r["start_s"] = time.perf_counter() - t0
            r["load"] = load()
        finally:
            driver.terminate()
            driver.wait()
    return r


def console_load(quick: bool) -> list[dict]:
    live_n = 1000 if quick else 10_000
    big = 20_000 if quick else 100_000
    r = _live(live_n)
    setup = (f"{live_n:,} agent runs live, driven by vigil's Runtime in another process as a `vigil worker` drives them (tokens published, collector tuned) against the loopback model "
             f"server (first token 300 ms, 30 tokens/s, {TOKENS} tokens a turn, a tool call a turn); headless run_test "
             f"120x40; load {r['load']}")
    db = fresh_db(f"vigil-runs-{big}.db")
    built = asyncio.run(build_runs(db, big))
    p = _probe("paint", db)
    first = p["first_paint_ms"]
    return [dict(
        case=f"console under load: runs list, key to screen ({live_n:,} live runs)",
        setup=setup + "; 150 presses of j/k, 30 ms apart; from the key to the first rendered frame showing the cursor moved",
        vigil=f"p50 {r['list_key_p50_ms']:.0f} ms, p99 {r['list_key_p99_ms']:.0f} ms", peer="-", ratio=None,
        goal="p99 <= 50 ms", ok=r["list_key_p99_ms"] <= 50,
    ), dict(
        case=f"console under load: 2x2 grid of live run panes, key to screen ({live_n:,} live runs)",
        setup="four of those runs in the live screen's grid (events tail across processes, tokens stream to the "
              "panes over the live channel as from a `vigil worker`); 100 presses of tab; until a frame shows the "
              "next pane focused",
        vigil=f"p50 {r['grid_key_p50_ms']:.0f} ms, p99 {r['grid_key_p99_ms']:.0f} ms", peer="-", ratio=None,
        goal="p99 <= 50 ms", ok=r["grid_key_p99_ms"] <= 50,
    ), dict(
        case=f"console under load: CPU of the console process ({live_n:,} live runs)",
        setup="process time / wall time: runs list idle 10 s, runs list during the presses, grid idle 10 s, grid during the presses",
        vigil=(f"list {r['list_idle_cpu']:.2f} / {r['list_keys_cpu']:.2f} cores, grid {r['grid_idle_cpu']:.2f} / "
               f"{r['grid_keys_cpu']:.2f} cores; RSS {r['rss_mb']:.0f} MB"),
        peer="-", ratio=None, goal="<= 1 core",
        ok=max(r["list_idle_cpu"], r["list_keys_cpu"], r["grid_idle_cpu"], r["grid_keys_cpu"]) <= 1,
    ), dict(
        case=f"console: runs list first paint on a {big:,}-run log",
        setup=f"{big:,} finished runs built through Store.append ({built:.1f} s); from VigilApp() to the first rendered "
              f"frame with the list's rows; 3 opens in one process, the first cold",
        vigil=f"{first[0]:.0f} ms (then {', '.join(f'{t:.0f}' for t in first[1:])} ms)", peer="-", ratio=None,
        goal="<= 300 ms", ok=max(first) <= 300,
    )]


if __name__ == "__main__":  # python -m bench.console_load [--quick]
    for row in console_load("--quick" in sys.argv):
        print(row)
