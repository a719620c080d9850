"""Where a scrubber move's time goes (what bench/NOTES.md "Issue 14" reports): per move, its CPU,
the garbage collections inside it, the screen layouts, and the rows each widget really re-renders.

    python -m bench.scrub_profile DB RUN_ID [MOVES]     # the probe's moves; prints a summary
    python -m bench.scrub_profile DB RUN_ID 150 --cprofile   # and a cProfile of them (tottime)

On a database `bench.run` builds (RUN_ID `long`), or with `big` after bench.bigstate.load_big_state.
"""

from __future__ import annotations

import asyncio
import collections
import cProfile
import gc
import pstats
import random
import sys
import time
from pathlib import Path

from textual._styles_cache import StylesCache
from textual.screen import Screen

from bench.console_probe import _shows, _until
from console.app import VigilApp
from console.screens.runs import RunsScreen
from console.widgets.timeline import Timeline
from kernel.registry import Registry

rows: collections.Counter = collections.Counter()
layouts = [0]
pauses: list[tuple[int, float]] = []


def _instrument() -> None:
    # measurement only: counts what Textual re-renders (private internals, read not changed)
    render_widget = StylesCache.render_widget

    def counted(self, widget, crop):
        dirty = sum(1 for y in crop.line_range if y in self._dirty_lines or y not in self._cache)
        rows[f"{type(widget).__name__}#{widget.id or type(widget.parent).__name__}"] += dirty
        return render_widget(self, widget, crop)

    StylesCache.render_widget = counted
    refresh_layout = Screen._refresh_layout

    def counted_layout(self, *a, **k):
        layouts[0] += 1
        return refresh_layout(self, *a, **k)

    Screen._refresh_layout = counted_layout

    def on_gc(phase, info):
        if phase == "start":
            on_gc.t0 = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - on_gc.t0) * 1000))

    gc.callbacks.append(on_gc)


async def main(db: Path, run_id: str, n: int, profile: bool) -> None:
    _instrument()
    app = VigilApp(db, Registry(), adopt=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, RunsScreen))
        info = await app.store.run(run_id)
        app.open_scrubber(run_id)
        await _until(pilot, lambda: _shows(app, info.last_seq))
        timeline = app.screen.query_one(Timeline)
        rows.clear(), pauses.clear()
        layouts[0] = 0
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        moves, rng = [], random.Random(3)
        for i in range(n):
            seq = timeline.seq_at(timeline.cursor)
            before = len(pauses)
            t0, c0 = time.perf_counter(), time.process_time()
            if i % 3 == 2:
                kind, target = "jump", rng.randrange(1, info.last_seq)
                app.screen._go(target)
            else:
                kind, target = "step", seq - 1 if seq > 1 else seq + 1
                app.simulate_key("left" if target < seq else "right")
            await _until(pilot, lambda: _shows(app, target))
            gcs = pauses[before:]
            moves.append(((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000, kind,
                          sum(ms for _, ms in gcs), max((g for g, _ in gcs), default=None)))
        if prof:
            prof.disable()
    for what, k in (("wall", 0), ("cpu", 1)):
        v = sorted(m[k] for m in moves)
        print(f"{what}: p50 {v[len(v) // 2]:.1f} ms, p99 {v[int(len(v) * 0.99) - 1]:.1f} ms, max {v[-1]:.1f} ms")
    print(f"screen layouts per move: {layouts[0] / n:.2f}")
    print(f"collections: {len(pauses)} ({sum(1 for g, _ in pauses if g == 2)} full), {sum(ms for _, ms in pauses):.0f} ms")
    print("slowest moves (wall, cpu, kind, gc ms, oldest generation collected):")
    for m in sorted(moves, key=lambda m: -m[1])[:5]:
        print(f"  {m[0]:.1f} {m[1]:.1f} {m[2]} {m[3]:.1f} {m[4]}")
    print("rows re-rendered per move:")
    for name, count in rows.most_common(8):
        print(f"  {name:40} {count / n:.1f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(Path(args[0]), args[1], int(args[2]) if len(args) > 2 else 150, "--cprofile" in sys.argv))
