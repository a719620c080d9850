"""Token to screen, measured in a console (Textual, headless run_test) in this process.

    python -m bench.livechan_probe TARGET MODE WATCHED BACKGROUND
    MODE: cross  - a `vigil worker` subprocess drives the runs; tokens come over the live channel
          inproc - this console's own runtime drives them (the in-process path: the ceiling)
          bare   - no console: a plain LiveFeed in this process (the channel alone, to the feed)

A token's time starts when the owner publishes it (Delta.t0, CLOCK_MONOTONIC, shared by the
processes of one host; in-process: when the runtime tells its listeners) and ends when the pane
it is shown in hands it to its Static in the coalesced 50 ms flush (painted in that frame).
Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


async def main(target: str, mode: str, watched: int, background: int) -> dict:
    from console.app import VigilApp
    from console.livetokens import LiveTokens
    from console.widgets.runpane import RunPane
    from kernel.engine.runtime import Runtime
    from kernel.registry import Registry
    from kernel.store import Store

    from .livechan_workflows import GRAPHS, INPUT

    latencies: list[float] = []
    transport: list[float] = []  # owner's publish to this process's feed (cross only)
    T0 = time.monotonic_ns()
    now_t0 = [0]

    original_delta, original_token, original_flush = LiveTokens._delta, RunPane.token, RunPane._flush_stream

    def delta(self, d):
        now_t0[0] = d.t0
        transport.append((time.monotonic_ns() - d.t0) / 1e6)
        original_delta(self, d)

    def token(self, action_id, text):
        self.__dict__.setdefault("_bench_t0", []).append(now_t0[0] or time.monotonic_ns())
        now_t0[0] = 0
        original_token(self, action_id, text)

    def flush(self):
        pending = self.__dict__.get("_bench_t0")
        if self._stream_dirty and pending:
            t = time.monotonic_ns()
            latencies.extend((t - t0) / 1e6 for t0 in pending)
            if os.environ.get("VIGIL_LIVEBENCH_TRACE"):
                print(f"{(t - T0) / 1e6:8.0f} ms  {len(pending):3d} tokens  worst {(t - min(pending)) / 1e6:6.0f} ms", file=sys.stderr)
            pending.clear()
        original_flush(self)

    LiveTokens._delta, RunPane.token, RunPane._flush_stream = delta, token, flush
    if os.environ.get("VIGIL_LIVEBENCH_SLOW"):  # profiling a miss: name every callback over 40 ms
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.04
    registry = Registry()
    for graph in GRAPHS:
        registry.add(graph)
    worker = None
    env = {**os.environ, "VIGIL_DB": target, "VIGIL_WORKFLOWS": "bench.livechan_workflows"}
    if mode in ("cross", "bare"):
        async with await Store.open(target) as store:
            rt = Runtime(store, registry)
            runs = [await rt.enqueue("livebench", INPUT) for _ in range(watched + background)]
    if mode == "bare":
        return await _bare(target, env, runs[:watched], latencies)
    app = VigilApp(target, registry if mode == "inproc" else Registry(), adopt=False)
    started = time.monotonic()
    async with app.run_test(size=(200, 50)) as pilot:
        if mode == "inproc":
            runs = [await app.runtime.start("livebench", INPUT) for _ in range(watched + background)]
        app.open_panes(runs[:watched])
        while not app.screen.query(RunPane):
            await pilot.pause(0.05)
        if mode == "cross":
            worker = subprocess.Popen([sys.executable, "-m", "console.cli", "worker", "--concurrency", "64"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:
            infos = [await app.store.run(r) for r in runs]
            if all(i.status == "completed" for i in infos):
                break
            if time.monotonic() - started > 300:
                raise RuntimeError("runs did not complete")
            await pilot.pause(0.2)
        await pilot.pause(0.2)
    if worker is not None:
        worker.terminate()
        worker.wait(30)
    from .livechan_workflows import TOKENS

    return dict(n=len(latencies), expected=watched * TOKENS, p50=_pct(latencies, 0.5),
                p99=_pct(latencies, 0.99), max=max(latencies, default=float("nan")),
                transport_p50=_pct(transport, 0.5), transport_p99=_pct(transport, 0.99))


async def _bare(target: str, env: dict, watched: list[str], latencies: list[float]) -> dict:
    from kernel.live.feed import LiveFeed
    from kernel.store import Store

    from .livechan_workflows import TOKENS

    def arrived(delta) -> None:
        latencies.append((time.monotonic_ns() - delta.t0) / 1e6)

    async with await Store.open(target) as store:
        feed = LiveFeed(store, arrived)
        feed.want(set(watched))
        task = asyncio.create_task(feed.run())
        worker = subprocess.Popen([sys.executable, "-m", "console.cli", "worker", "--concurrency", "64"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not all([(await store.run(r)).status == "completed" for r in watched]):
                await asyncio.sleep(0.2)
        finally:
            task.cancel()
            worker.terminate()
            worker.wait(30)
    # deltas, not tokens: a delta carries every token coalesced since the last send
    return dict(n=len(latencies), expected=len(watched) * TOKENS, p50=_pct(latencies, 0.5),
                p99=_pct(latencies, 0.99), max=max(latencies, default=float("nan")))


if __name__ == "__main__":
    target, mode, watched, background = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(asyncio.run(main(target, mode, watched, background))))
