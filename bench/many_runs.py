"""Many live agent runs in one process: vigil's Runtime on a real SQLite file beside LangGraph
(AsyncSqliteSaver) at the same concurrency, against the same loopback model server, which runs in
a process of its own (bench/openai_stream_server.py). Each side runs in a fresh process of its own
(bench/many_runs_probe.py), so RSS and CPU are that side's alone. LangGraph is measured twice:
with vigil's own model client (runtime against runtime: the peer of the ratio and the goal) and as
its users write the agent, with langchain-openai's ChatOpenAI (its own row).

    python -m bench.run --only many_runs [--quick]     # quick: 1,000 runs only

BENCH_LC_UPTO=1000 leaves the ChatOpenAI peer out above 1,000 runs (at 10,000 it does not finish
in 25 minutes: bench/NOTES.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import fresh_db

ROOT = Path(__file__).resolve().parent.parent
TURNS, TOKENS = 5, 6
PARAMS = (f"agent loop of {TURNS} model turns (tool call on the first {TURNS - 1}), 9 steps a run; "
          f"model: loopback OpenAI-compatible SSE server in its own process (1 asyncio process, <= 1 core), "
          f"first token 300 ms, then 30 tokens/s, {TOKENS} content tokens + the tool call per turn (about 0.5 s a turn); "
          "WAL, synchronous=FULL on both; LangGraph durability='sync'")
INFO: dict = {}
KEEP = Path(__file__).resolve().parent / "many_runs.jsonl"
DEADLINE = 900  # seconds a side is given at 10,000 runs (see many_runs_probe._measure)


def load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


class ModelServer:
    def __init__(self, turns: int = TURNS) -> None:
        self.turns = turns

    def __enter__(self) -> "ModelServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.openai_stream_server", "--turns", str(self.turns), "--tokens", str(TOKENS)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "port":
            raise RuntimeError("the model server did not start")
        self.url = f"http://127.0.0.1:{line[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait()


def probe(which: str, url: str, n: int, target: str, timeout: float = 2400) -> dict:
    env = dict(os.environ, BENCH_DEADLINE=str(DEADLINE))
    out = subprocess.run([sys.executable, "-m", "bench.many_runs_probe", which, url, str(n), target],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{which} probe failed: {out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["load"] = load()
    r["which"] = which
    if r.get("timed_out"):  # runs go on in step with each other: count the work done, in runs' worth
        r["runs_per_s"] = r["model_calls"] / TURNS / r["wall_s"]
    with open(KEEP, "a") as f:  # every probe's figures, kept whatever happens to the rest of the run
        f.write(json.dumps(r) + "\n")
    return r


def _done(r: dict) -> str:
    if r.get("timed_out"):
        return (f"stopped at {r['wall_s']:.0f} s with {r['finished']:,} of {r['n']:,} completed; rate in runs' worth "
                f"of model calls ({r['model_calls']:,} / {TURNS})")
    return f"all {r['completed']:,} completed in {r['wall_s']:.0f} s"


def _cpu(r: dict) -> str:
    """CPU the measured process got: on a shared machine, less than it asked for."""
    return f"{r['cpu_cores']:.2f} cores, {_cpu_ms(r):.0f} ms CPU a run"


def _cpu_ms(r: dict) -> float:
    """CPU per run: per TURNS model calls made (all N runs' worth if all finished; fewer, and
    counted as such, when the deadline stopped a side with runs still going)."""
    return r["cpu_cores"] * r["wall_s"] * 1000 / max(1, r["model_calls"] / TURNS)


def _rows(n: int, ours: dict, theirs: dict, backend: str) -> list[dict]:
    where = "SQLite file" if backend == "sqlite" else "PostgreSQL"
    setup = (f"{n:,} runs started at once in one process, {where}; {PARAMS}; vigil's collector tuned as `vigil worker` "
             f"tunes it (kernel/gctune.py), LangGraph's at Python's defaults; load {ours['load']} / {theirs.get('load', '-')}")
    rows = [dict(
        case=f"{n:,} concurrent agent runs ({where}): runs/s completed",
        setup=setup,
        vigil=f"{ours['runs_per_s']:,.1f}/s ({_done(ours)}; {_cpu(ours)})",
        peer=f"{theirs['runs_per_s']:,.1f}/s LangGraph ({_done(theirs)}; {_cpu(theirs)})" if theirs else "-",
        ratio=ours["runs_per_s"] / theirs["runs_per_s"] if theirs else None,
        goal=">= 5x LangGraph at 10,000" if n >= 10_000 else "(goal at 10,000)",
        ok=(ours["runs_per_s"] / theirs["runs_per_s"] >= 5) if (theirs and n >= 10_000) else None,
    ), dict(
        case=f"{n:,} concurrent agent runs ({where}): step overhead",
        setup="per run, each gap from a model call returning to the next starting holds two steps (think's end, act) "
              "and the next think's start; overhead per step = gap / 2; model time (HTTP + stream) excluded",
        vigil=f"p50 {ours['step_p50_ms']:.1f} ms, p99 {ours['step_p99_ms']:.1f} ms",
        peer=f"p50 {theirs['step_p50_ms']:.1f} ms, p99 {theirs['step_p99_ms']:.1f} ms LangGraph" if theirs else "-",
        ratio=None, goal="p99 <= 5 ms", ok=ours["step_p99_ms"] <= 5,
    ), dict(
        case=f"{n:,} concurrent agent runs ({where}): RSS per waiting run",
        setup="the server holds every first reply until all N model calls are in flight; (RSS then - RSS before the first start) / N",
        vigil=f"{ours['rss_per_run_kb']:,.1f} KB ({ours['rss_base_mb']:.0f} -> {ours['rss_waiting_mb']:.0f} MB)",
        peer=f"{theirs['rss_per_run_kb']:,.1f} KB LangGraph ({theirs['rss_base_mb']:.0f} -> {theirs['rss_waiting_mb']:.0f} MB)" if theirs else "-",
        ratio=ours["rss_per_run_kb"] / theirs["rss_per_run_kb"] if theirs else None,
        goal="<= 50 KB", ok=ours["rss_per_run_kb"] <= 50,
    ), dict(
        case=f"{n:,} concurrent agent runs ({where}): events/s committed",
        setup="events in the log / wall time (LangGraph: checkpoint + write rows)",
        vigil=f"{ours['events_per_s']:,.0f}/s ({ours['events']:,} events)",
        peer=f"{theirs['events_per_s']:,.0f}/s LangGraph rows ({theirs['events']:,})" if theirs else "-",
        ratio=None, goal="-", ok=None,
    )]
    return rows


def many_runs(quick: bool) -> list[dict]:
    sizes = [1000] if quick else [1000, 10_000]
    rows: list[dict] = []
    with ModelServer() as server:
        for n in sizes:
            ours = probe("vigil", server.url, n, str(fresh_db(f"vigil-many-{n}.db")))
            theirs = probe("langgraph", server.url, n, str(fresh_db(f"lg-many-{n}.db")))
            rows += _rows(n, ours, theirs, "sqlite")
            if n <= int(os.environ.get("BENCH_LC_UPTO") or 10_000):
                try:
                    as_written = probe("langgraph_lc", server.url, n, str(fresh_db(f"lglc-many-{n}.db")), timeout=DEADLINE + 600)
                except subprocess.TimeoutExpired:
                    as_written = None
                rows.append(_as_written(n, ours, as_written))
            rows.append(_floor(n, probe("client", server.url, n, "-"), ours, theirs))
    return rows


def _as_written(n: int, ours: dict, theirs: dict | None) -> dict:
    """The second peer: LangGraph with langchain-openai's ChatOpenAI, as its users write the agent."""
    if theirs is None:
        return dict(case=f"{n:,} concurrent agent runs: runs/s against LangGraph + ChatOpenAI",
                    setup=f"LangGraph + ChatOpenAI did not finish in {DEADLINE + 600} s (bench/NOTES.md: httpx's pool scan)",
                    vigil=f"{ours['runs_per_s']:,.1f}/s", peer="did not finish", ratio=None, goal="-", ok=None)
    return dict(
        case=f"{n:,} concurrent agent runs: runs/s against LangGraph + ChatOpenAI",
        setup="the same agent as LangGraph users write it: langchain-openai ChatOpenAI (streaming, bind_tools) on its own "
              "openai/httpx client (no connection limit), MessagesState, prebuilt ToolNode and tools_condition, the same "
              f"AsyncSqliteSaver; the goal's peer is the row above (LangGraph on vigil's client); load {theirs['load']}",
        vigil=f"{ours['runs_per_s']:,.1f}/s ({_cpu(ours)})",
        peer=f"{theirs['runs_per_s']:,.1f}/s LangGraph + ChatOpenAI ({_done(theirs)}; {_cpu(theirs)}; "
             f"{theirs['rss_per_run_kb']:,.1f} KB a waiting run)",
        ratio=ours["runs_per_s"] / theirs["runs_per_s"], goal="-", ok=None)


def _floor(n: int, floor: dict, ours: dict, theirs: dict) -> dict:
    """What neither runtime can go under: the same model calls, N at once, no runtime, no log."""
    per_run = _cpu_ms
    best = per_run(theirs) / per_run(floor)
    return dict(
        case=f"{n:,} concurrent agent runs: the model client alone (CPU a run)",
        setup="the same 5 model calls a run (the kernel's OpenAI client, the conversation each turn would send), "
              f"N at once, no runtime and no log; the runs/s ratio vigil could reach if it cost nothing: {best:.1f}x; load {floor['load']}",
        vigil=f"vigil {per_run(ours):.1f} ms a run", peer=f"{per_run(floor):.1f} ms client alone; LangGraph {per_run(theirs):.1f} ms",
        ratio=per_run(ours) / per_run(floor), goal="-", ok=None)


def many_runs_pg(quick: bool) -> list[dict]:
    """vigil alone on PostgreSQL (the LangGraph peer here is SQLite's: its PostgreSQL saver is not in
    the bench extra); the same server, agent and measures as many_runs."""
    from . import pg_cases

    try:
        pg_cases.pgserver.find_bindir()
    except pg_cases.pgserver.PgNotInstalled as exc:
        return [dict(case="many runs on PostgreSQL", setup=f"skipped: {exc}", vigil="-", peer="-", ratio=None, goal="-", ok=None)]
    sizes = [1000] if quick else [1000, 10_000]
    rows: list[dict] = []
    pg = pg_cases.pgserver.PgServer(durable=True).start()
    try:
        with ModelServer() as server:
            for n in sizes:
                dsn = pg.create_database()
                rows += [r for r in _rows(n, probe("vigil", server.url, n, dsn), {}, "postgres")]
                pg.drop_database(dsn)
    finally:
        pg.stop()
    return rows


if __name__ == "__main__":  # one size, one side, for profiling: python -m bench.many_runs vigil 1000
    with ModelServer() as s:
        print(json.dumps(probe(sys.argv[1], s.url, int(sys.argv[2]), os.environ.get("TARGET") or str(fresh_db(f"one-{sys.argv[1]}.db")))))
