"""Where a step's overhead goes: the gap between one model call returning and the next starting
(bench/many_runs_probe.py's "step overhead"), taken apart from outside the kernel.

    python -m bench.step_probe gaps URL N DB        # phases of every gap, wall and main-thread CPU
    python -m bench.step_probe cpu URL N DB         # CPU per step over the whole run, model/run spans
    python -m bench.step_probe client URL N -       # the same for the model client alone
    python -m bench.step_probe instant - N DB       # vigil with a model that answers at once, in process
    python -m bench.step_probe profile URL N DB [SORT]          # cProfile of the main thread
    python -m bench.step_probe instant-profile - N DB [SORT]

Env: STAGGER_MS (spread the starts), SWITCH_MS (the GIL's switch interval), GC_FREEZE=1.

URL is the loopback model server (bench/openai_stream_server.py). The same agent and model as
bench.many_runs_probe (its BenchModel, tool, prompt and users are imported from it).

`gaps`: the driver's phases are wrapped (class attributes patched in this process only; the
kernel has no timing code) and each mark records (run, label, perf_counter_ns, thread_time_ns).
For every gap the marks of that run in it are listed in order; between two consecutive marks the
wall time and the main thread's CPU are summed per (label -> label) transition. With one run the
CPU is the run's own; with N the wall between marks that span an `await` includes other runs'
work (queueing on the one loop), which is the difference between the two columns.

`cpu`: process time (all threads: the SQLite writer's too) and the main thread's alone, over the
N runs from the first start to the last end, per step (9 steps a run) and per run; `client`
gives the same for the model client alone (the same calls, no runtime), so vigil's own CPU per
step is the difference.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

from bench.many_runs_probe import SYSTEM, BenchModel, _user, converse, lookup

STEPS_PER_RUN = 9
# Env STAGGER_MS: start run i i*STAGGER_MS ms after the first (0: all at once, as
# bench.many_runs_probe does, which keeps their model calls in lockstep: every run's reply
# ends in the same few ms, and what one run does not wait for in its gap it waits for in its
# model call). Spread over a turn (~550 ms / N) the runs' turns interleave as live ones would.
STAGGER_S = float(os.environ.get("STAGGER_MS") or 0) / 1e3

_marks: dict[str, list[tuple[str, int, int]]] = defaultdict(list)  # run key -> marks
_current_key: Any = None  # contextvar set per driver task: which run a mark belongs to


def _key() -> str:
    return _current_key.get() if _current_key is not None else "?"


def mark(label: str, key: str | None = None) -> None:
    _marks[key or _key()].append((label, time.perf_counter_ns(), time.thread_time_ns()))


_delays: dict[tuple[str, int], int] = {}  # (run key, index of its mark) -> run-queue delay, ns


def _run_delay_ns() -> int:
    """The loop thread's time spent runnable but not running (the OS scheduler's queue):
    /proc/thread-self/schedstat, second field. What a gap waits that is neither its CPU nor
    the loop's other work, on a shared machine, is mostly this (or the GIL: what is left)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1])


def mark_delay(label: str, key: str) -> None:
    mark(label, key)
    _delays[(key, len(_marks[key]) - 1)] = _run_delay_ns()


class TimedModel(BenchModel):
    """BenchModel, marking the call's start and return in the run's timeline."""

    async def complete(self, messages, tools, on_token):
        key = next(m["content"] for m in messages if m["role"] == "user")
        mark_delay("model.start", key)
        try:
            return await super().complete(messages, tools, on_token)
        finally:
            mark_delay("model.end", key)


def _wrap_async(cls: type, name: str, label: str) -> None:
    fn = getattr(cls, name)

    @functools.wraps(fn)
    async def wrapper(*a, **kw):
        mark(f"{label}>")
        try:
            return await fn(*a, **kw)
        finally:
            mark(f"{label}<")

    setattr(cls, name, wrapper)


def _wrap_sync(cls: type, name: str, label: str, *, detail=None) -> None:
    fn = getattr(cls, name)

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        tag = f"{label}:{detail(*a, **kw)}" if detail else label
        mark(f"{tag}>")
        try:
            return fn(*a, **kw)
        finally:
            mark(f"{tag}<")

    setattr(cls, name, wrapper)


def instrument() -> None:
    """Wrap the driver's phases. Each driver task gets the run's user message as its key (the
    model marks by that too), through a context variable set when the view's RunStarted is fed."""
    import contextvars

    from kernel.engine import appends, context, effects, supersteps
    from kernel.engine.driver import RunDriver

    global _current_key
    _current_key = contextvars.ContextVar("step_probe_key", default="?")
    start = RunDriver.start

    def keyed_start(self):
        started = self.view.started
        msgs = (started.input or {}).get("messages") if started else None
        key = next((m["content"] for m in msgs or () if m.get("role") == "user"), "?")
        token = _current_key.set(key)
        try:
            start(self)  # the driver task copies this context
        finally:
            _current_key.reset(token)

    RunDriver.start = keyed_start
    _wrap_async(supersteps.Supersteps, "_superstep", "superstep")
    _wrap_async(supersteps.Supersteps, "_complete", "complete")
    _wrap_async(supersteps.Supersteps, "_execute", "node")
    _wrap_async(effects.Effects, "effect", "effect")
    _wrap_async(effects.Effects, "_run_effect", "run")
    _wrap_async(appends.Appends, "started", "started")
    _wrap_sync(appends.Appends, "post", "post", detail=lambda self, *ev: type(ev[0]).__name__)
    _wrap_sync(RunDriver, "llm_signature", "llm_signature")
    _wrap_sync(context.Ctx, "_next_id", "next_id")


_gc: list[tuple[int, int, int]] = []  # (generation, start ns, end ns) of each collection


def _gc_watch(phase: str, info: dict) -> None:
    if phase == "start":
        _gc.append((info["generation"], time.perf_counter_ns(), 0))
    elif _gc:
        g, t0, _ = _gc[-1]
        _gc[-1] = (g, t0, time.perf_counter_ns())


def _gc_in(t0: int, t1: int) -> float:
    """ms of garbage collection between two perf_counter_ns instants."""
    return sum(max(0, min(e, t1) - max(s, t0)) for _, s, e in _gc if e) / 1e6


def _gap_phases(n: int) -> dict:
    """Per transition a -> b inside gaps: count, wall p50/p99 and summed means, main-thread CPU."""
    trans: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    gaps_wall, gaps_cpu, gaps_delay, gaps_gc = [], [], [], []
    _slowest = [0, []]
    for key, marks in _marks.items():
        if key == "?":
            continue
        ends = [i for i, m in enumerate(marks) if m[0] == "model.end"]
        for i in ends:
            j = next((k for k in range(i + 1, len(marks)) if marks[k][0] == "model.start"), None)
            if j is None:
                continue
            gaps_wall.append(marks[j][1] - marks[i][1])
            gaps_cpu.append(marks[j][2] - marks[i][2])
            gaps_delay.append(_delays[(key, j)] - _delays[(key, i)])
            gaps_gc.append(_gc_in(marks[i][1], marks[j][1]))
            if marks[j][1] - marks[i][1] > _slowest[0]:
                _slowest[:] = [marks[j][1] - marks[i][1],
                               [(a[0], b[0], round((b[1] - a[1]) / 1e6, 3), round((b[2] - a[2]) / 1e6, 3))
                                for a, b in zip(marks[i:j], marks[i + 1:j + 1])]]
            for a, b in zip(marks[i:j], marks[i + 1:j + 1]):
                trans[(a[0], b[0])].append((b[1] - a[1], b[2] - a[2]))
    ms = lambda ns: round(ns / 1e6, 3)
    pick = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p / 100 * len(xs)))]
    rows = []
    for (a, b), xs in trans.items():
        walls = [w for w, _ in xs]
        cpus = [c for _, c in xs]
        rows.append(dict(step=f"{a} -> {b}", n=len(xs), wall_mean=ms(statistics.fmean(walls)),
                         wall_p99=ms(pick(walls, 99)), cpu_mean=ms(statistics.fmean(cpus))))
    rows.sort(key=lambda r: -r["wall_mean"] * r["n"])
    return dict(runs=n, gaps=len(gaps_wall), gap_p50_ms=ms(pick(gaps_wall, 50)), gap_p99_ms=ms(pick(gaps_wall, 99)),
                gap_cpu_p50_ms=ms(pick(gaps_cpu, 50)), gap_cpu_mean_ms=ms(statistics.fmean(gaps_cpu)),
                # the slowest gaps: wall, the loop thread's CPU in them (its own and other runs'
                # work) and how long the OS kept it waiting for a core
                blocked_ms_total=ms(sum(max(0, w - c - d) for w, c, d in zip(gaps_wall, gaps_cpu, gaps_delay))),
                runqueue_ms_total=ms(sum(gaps_delay)),
                gc_in_gaps_ms=round(sum(gaps_gc), 3),
                slowest=[f"{a} -> {b}: {w} ms wall, {c} ms CPU" for a, b, w, c in _slowest[1] if w > 0.2],
                gc=dict(collections=[sum(1 for g, _, _ in _gc if g == gen) for gen in (0, 1, 2)],
                        max_ms=[round(max(((e - s) / 1e6 for g, s, e in _gc if g == gen and e), default=0), 3)
                                for gen in (0, 1, 2)]),
                worst=[dict(wall_ms=ms(w), cpu_ms=ms(c), runqueue_ms=ms(d), gc_ms=round(g, 3)) for w, c, d, g in
                       sorted(zip(gaps_wall, gaps_cpu, gaps_delay, gaps_gc), reverse=True)[:5]],
                step_p50_ms=ms(pick(gaps_wall, 50) / 2), step_p99_ms=ms(pick(gaps_wall, 99) / 2),
                phases=rows)


async def _vigil(url: str, n: int, target: str, model: BenchModel, around=None) -> dict:
    from kernel.agents.agent import agent_graph
    from kernel.engine.runtime import Runtime
    from kernel.registry import Registry
    from kernel.store import Store
    from kernel.tools import tool

    registry = Registry()
    registry.add(agent_graph("many", model=model, tools=[tool(idempotent=True)(lookup)], system=SYSTEM))
    async with await Store.open(target) as store:
        async with Runtime(store, registry) as rt:
            await rt.start("many", {"messages": [_user(-1)]})  # warm-up
            await rt.settle()
            _marks.clear()
            model.calls.clear()
            gc.collect()
            if os.environ.get("GC_FREEZE"):  # what is alive now is never scanned again
                gc.freeze()
            cpu0, th0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
            if around:
                around.enable()
            async def start(i: int) -> None:
                await asyncio.sleep(i * STAGGER_S)
                await rt.start("many", {"messages": [_user(i)]})

            await asyncio.gather(*(start(i) for i in range(n)))
            await rt.settle()
            if around:
                around.disable()
            wall = time.perf_counter() - t0
            cpu, th = time.process_time() - cpu0, time.thread_time() - th0
    return dict(wall_s=wall, cpu_s=cpu, main_thread_cpu_s=th)


async def _client(url: str, n: int, model: BenchModel) -> dict:
    """The model client alone, the same calls (bench.many_runs_probe's `client`)."""
    async def one(i: int) -> None:
        await converse(model, i)

    await one(-1)
    model.calls.clear()
    gc.collect()
    cpu0, th0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
    async def start(i: int) -> None:
        await asyncio.sleep(i * STAGGER_S)
        await one(i)

    await asyncio.gather(*(start(i) for i in range(n)))
    wall = time.perf_counter() - t0
    return dict(wall_s=wall, cpu_s=time.process_time() - cpu0, main_thread_cpu_s=time.thread_time() - th0)


class InstantModel:
    """The loopback server's replies (bench/openai_stream_server.py: 6 tokens, `lookup` on the
    first 4 turns) returned at once, in process: what is left is vigil's own CPU per step."""

    name = "openai:bench"

    def __init__(self, turns: int = 5, tokens: int = 6) -> None:
        self.turns, self.tokens = turns, tokens
        self.calls: dict = {}

    async def complete(self, messages, tools, on_token):
        await asyncio.sleep(0)  # a real call yields to the loop at least once
        turn = sum(1 for m in messages if m["role"] == "assistant")
        words = [f"word{i} " for i in range(self.tokens - 1)] + [f"turn{turn}."]
        for w in words:
            if on_token:
                on_token(w)
        calls = []
        if turn < self.turns - 1:
            calls = [{"id": f"call_{turn}", "name": "lookup", "arguments": {"order": f"A-{turn:04d}"}}]
        return {"role": "assistant", "content": "".join(words), "tool_calls": calls,
                "usage": {"input_tokens": 20 * len(messages), "output_tokens": self.tokens}}


def _spans(model: Any) -> dict:
    """Model calls (entry to return) and runs (first call's start to last call's return), ms:
    with the runs' gaps short, any queueing for the loop shows up in these instead."""
    calls, runs = [], []
    for c in getattr(model, "calls", {}).values():
        c.sort()
        calls += [(b - a) * 1e3 for a, b in c]
        if c:
            runs.append((c[-1][1] - c[0][0]) * 1e3)
    if not calls:
        return {}
    pick = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p / 100 * len(xs)))]
    gaps = model.gaps_ms()
    return dict(step_p50_ms=pick(gaps, 50) / 2, step_p99_ms=pick(gaps, 99) / 2,
                model_p50_ms=pick(calls, 50), model_p99_ms=pick(calls, 99),
                run_span_p50_ms=pick(runs, 50), run_span_max_ms=max(runs))


def _per_step(out: dict, n: int, model: Any = None) -> dict:
    out.update(_spans(model))
    steps = n * STEPS_PER_RUN
    out.update(runs=n, cpu_ms_per_run=out["cpu_s"] * 1e3 / n, cpu_ms_per_step=out["cpu_s"] * 1e3 / steps,
               main_cpu_ms_per_step=out["main_thread_cpu_s"] * 1e3 / steps, cores=out["cpu_s"] / out["wall_s"])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main(argv: list[str]) -> None:
    which, url, count, target = argv[:4]
    if os.environ.get("SWITCH_MS"):  # the GIL's switch interval (the console runs with 0.5 ms)
        sys.setswitchinterval(float(os.environ["SWITCH_MS"]) / 1e3)
    n = int(count)
    if which == "gaps":
        instrument()
        gc.callbacks.append(_gc_watch)
        model = TimedModel(url)
        out = asyncio.run(_vigil(url, n, target, model))
        print(json.dumps({**out, **_gap_phases(n)}, indent=1))
    elif which == "cpu":
        model = BenchModel(url)
        print(json.dumps(_per_step(asyncio.run(_vigil(url, n, target, model)), n, model)))
    elif which == "instant":  # URL unused: the model answers in process
        print(json.dumps(_per_step(asyncio.run(_vigil(url, n, target, InstantModel())), n)))
    elif which == "instant-profile":
        prof = cProfile.Profile()
        out = asyncio.run(_vigil(url, n, target, InstantModel(), around=prof))
        s = io.StringIO()
        stats = pstats.Stats(prof, stream=s)
        stats.sort_stats(argv[4] if len(argv) > 4 else "tottime").print_stats(60)
        print(json.dumps(_per_step(out, n)))
        print(s.getvalue())
    elif which == "client":
        model = BenchModel(url)
        print(json.dumps(_per_step(asyncio.run(_client(url, n, model)), n, model)))
    elif which == "profile":
        prof = cProfile.Profile()
        out = asyncio.run(_vigil(url, n, target, BenchModel(url), around=prof))
        s = io.StringIO()
        stats = pstats.Stats(prof, stream=s)
        stats.sort_stats(argv[4] if len(argv) > 4 else "tottime").print_stats(45)
        print(json.dumps(_per_step(out, n)))
        print(s.getvalue())
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    main(sys.argv[1:])
