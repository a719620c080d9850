"""The console headless (App.run_test, 120x40) in a process of its own, on a log that another
process is busy with. Prints one JSON object.

    python -m bench.console_load_probe live DB         # runs list and a 2x2 grid while runs are live
    python -m bench.console_load_probe paint DB        # time to the first paint of the runs list
    python -m bench.console_load_probe grid DB [N]     # tab in a 2x2 grid of the 4 newest runs, N presses


Key to screen: from the key press (`simulate_key`, no Pilot idle-wait) to the first frame the
compositor renders that shows its effect. Frames are caught by wrapping `App._display`, which the
screen calls with every rendered update (headless, the update is rendered and then dropped, so
the whole cost of a frame is paid). CPU: process time / wall time over a window.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from console.app import VigilApp
from console.screens.live import LiveScreen
from console.screens.runs import RunsScreen
from console.widgets.runlist import RunList
from console.widgets.runpane import RunPane
from kernel.registry import Registry

from bench.common import rss_mb

SIZE = (120, 40)


async def _until(condition, timeout=60.0):
    start = time.perf_counter()
    while not condition():
        await asyncio.sleep(0.005)
        if time.perf_counter() - start > timeout:
            raise TimeoutError("console did not get there")


class Frames:
    """Every rendered frame: (time, what `probe()` said the screen showed then)."""

    def __init__(self, app: VigilApp) -> None:
        self.seen: list[tuple[float, object]] = []
        self.probe = lambda: None
        original = app._display

        def display(screen, renderable):
            if renderable is not None:
                self.seen.append((time.perf_counter(), self.probe()))
            return original(screen, renderable)

        app._display = display

    async def first(self, after: float, want: object, timeout: float = 30.0) -> float:
        """Time of the first frame after `after` that showed `want`."""
        start = time.perf_counter()
        while True:
            hits = [t for t, shown in self.seen if t >= after and shown == want]
            if hits:
                return hits[0]
            await asyncio.sleep(0.002)
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"no frame showed {want!r}")


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def _cpu_window(seconds: float) -> float:
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu0) / (time.perf_counter() - t0)


async def _keys(app, frames: Frames, key_of, target_of, shown, presses: int) -> tuple[list[float], float]:
    """Press keys, each after the last one's frame; latencies (ms) and CPU over the presses."""
    frames.probe = shown
    out = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(presses):
        want = target_of(i)
        pressed = time.perf_counter()
        app.simulate_key(key_of(i))
        seen = await frames.first(pressed, want)
        out.append((seen - pressed) * 1000)
        frames.seen.clear()
        await asyncio.sleep(0.03)
    return out, (time.process_time() - cpu0) / (time.perf_counter() - t0)


async def live(db: Path) -> dict:
    app = VigilApp(db, Registry(), adopt=False)
    out: dict = {}
    frames = Frames(app)
    async with app.run_test(size=SIZE):
        await _until(lambda: isinstance(app.screen, RunsScreen))
        runs = app.screen.query_one(RunList)
        await _until(lambda: runs.count > 0 and runs.item(0) is not None)
        out["runs_listed"] = runs.count
        out["list_idle_cpu"] = await _cpu_window(10)
        lat, cpu = await _keys(app, frames, lambda i: "j" if i % 2 == 0 else "k",
                               lambda i: 1 if i % 2 == 0 else 0, lambda: runs.cursor, 150)
        out.update(list_key_p50_ms=_pct(lat, 50), list_key_p99_ms=_pct(lat, 99), list_keys_cpu=cpu)

        # a 2x2 grid of four live runs (the first four rows: the newest, all running)
        ids = [runs.item(i)[0].run_id for i in range(4)]
        app.open_panes(ids)
        await _until(lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 4)
        await asyncio.sleep(1.0)
        out["grid_idle_cpu"] = await _cpu_window(10)
        screen = app.screen

        def focused_pane():
            node = screen.focused
            while node is not None and not isinstance(node, RunPane):
                node = node.parent
            return node.run_id if node is not None else None

        start = ids.index(focused_pane())
        lat, cpu = await _keys(app, frames, lambda i: "tab", lambda i: ids[(start + i + 1) % 4], focused_pane, 100)
        out.update(grid_key_p50_ms=_pct(lat, 50), grid_key_p99_ms=_pct(lat, 99), grid_keys_cpu=cpu)
        out["rss_mb"] = rss_mb()
    return out


async def _tabs(app, frames: Frames, presses: int) -> dict:
    """Tab through the grid on screen: key to frame, and the CPU each press cost (process time
    from the key to its frame, so other processes on the machine do not count)."""
    screen = app.screen
    ids = [p.run_id for p in screen.query(RunPane)]

    def focused_pane():
        node = screen.focused
        while node is not None and not isinstance(node, RunPane):
            node = node.parent
        return node.run_id if node is not None else None

    frames.probe = focused_pane
    start = ids.index(focused_pane())
    lat, cpu_each = [], []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(presses):
        want = ids[(start + i + 1) % len(ids)]
        c, pressed = time.process_time(), time.perf_counter()
        app.simulate_key("tab")
        seen = await frames.first(pressed, want)
        cpu_each.append((time.process_time() - c) * 1000)
        lat.append((seen - pressed) * 1000)
        frames.seen.clear()
        await asyncio.sleep(0.03)
    return dict(grid_key_p50_ms=_pct(lat, 50), grid_key_p99_ms=_pct(lat, 99),
                grid_key_cpu_p50_ms=_pct(cpu_each, 50), grid_key_cpu_p99_ms=_pct(cpu_each, 99),
                grid_keys_cpu=(time.process_time() - cpu0) / (time.perf_counter() - t0))


async def grid(db: Path, presses: int = 60) -> dict:
    """The grid alone, on a log nobody else writes: what a tab costs the console itself."""
    app = VigilApp(db, Registry(), adopt=False)
    frames = Frames(app)
    async with app.run_test(size=SIZE):
        await _until(lambda: isinstance(app.screen, RunsScreen))
        runs = app.screen.query_one(RunList)
        await _until(lambda: runs.count >= 4 and runs.item(3) is not None)
        app.open_panes([runs.item(i)[0].run_id for i in range(4)])
        await _until(lambda: isinstance(app.screen, LiveScreen) and len(app.screen.query(RunPane)) == 4)
        panes = list(app.screen.query(RunPane))
        await _until(lambda: all(p.info is not None for p in panes))
        await asyncio.sleep(1.0)  # the state trees load on their half-second tick
        return await _tabs(app, frames, presses)


async def paint(db: Path, repeats: int = 3) -> dict:
    times = []
    count = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        app = VigilApp(db, Registry(), adopt=False)
        frames = Frames(app)

        def shown():
            screen = app.screen if app._screen_stack else None
            if not isinstance(screen, RunsScreen) or not screen.query(RunList):
                return False
            runs = screen.query_one(RunList)
            return runs.count > 0 and runs.item(0) is not None

        frames.probe = shown
        async with app.run_test(size=SIZE):
            seen = await frames.first(t0, True)
            times.append((seen - t0) * 1000)
            count = app.screen.query_one(RunList).count
    return dict(first_paint_ms=times, runs=count)


if __name__ == "__main__":
    what, db, *more = sys.argv[1], Path(sys.argv[2]), *sys.argv[3:]
    print(json.dumps(asyncio.run({"live": live, "paint": paint, "grid": grid}[what](db, *map(int, more)))))
