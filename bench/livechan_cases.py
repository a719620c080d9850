"""Live tokens across processes (issue 14): token to screen in a console while a `vigil worker`
subprocess streams, on SQLite (unix socket) and PostgreSQL (NOTIFY), next to the in-process path
(the console driving the runs itself), measured in the same run. bench/livechan_probe.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .common import WORK, fresh_db

ROOT = Path(__file__).resolve().parent.parent


def _probe(target: str, mode: str, watched: int, background: int, tokens: int) -> dict:
    env = {**os.environ, "VIGIL_LIVEBENCH_TOKENS": str(tokens)}
    out = subprocess.run([sys.executable, "-m", "bench.livechan_probe", target, mode, str(watched), str(background)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(backend: str, how: str, watched: int, background: int, tokens: int, cross: dict, inproc: dict) -> dict:
    return dict(
        case=f"live tokens: token to screen across processes ({backend})",
        setup=f"a `vigil worker` streams {watched + background} runs x {tokens} tokens at 50/s, the console "
              f"(run_test) shows {watched} in panes; {how}; {cross['n']}/{cross['expected']} tokens shown",
        vigil=f"p50 {cross['p50']:.0f} ms, p99 {cross['p99']:.0f} ms, max {cross['max']:.0f} ms",
        peer=f"in-process: p50 {inproc['p50']:.0f} ms, p99 {inproc['p99']:.0f} ms",
        ratio=cross["p99"] / inproc["p99"] if inproc["p99"] else None,
        goal="p99 <= 100 ms", ok=cross["p99"] <= 100,
    )


def _bare_row(backend: str, watched: int, background: int, tokens: int, bare: dict) -> dict:
    return dict(
        case=f"live tokens: the channel alone ({backend})",
        setup=f"the same worker and runs; a LiveFeed in a plain asyncio process, no console; per delta "
              f"(tokens sent together are one delta): {bare['n']} deltas",
        vigil=f"p50 {bare['p50']:.1f} ms, p99 {bare['p99']:.1f} ms, max {bare['max']:.0f} ms",
        peer="-", ratio=None, goal="p99 <= 100 ms", ok=bare["p99"] <= 100,
    )


def livechan(quick: bool) -> list[dict]:
    watched, background, tokens = (4, 4, 100) if quick else (4, 16, 300)
    WORK.mkdir(parents=True, exist_ok=True)
    cross = _probe(str(fresh_db("livechan-cross.db")), "cross", watched, background, tokens)
    inproc = _probe(str(fresh_db("livechan-inproc.db")), "inproc", watched, background, tokens)
    bare = _probe(str(fresh_db("livechan-bare.db")), "bare", watched, background, tokens)
    rows = [_row("SQLite", "unix socket", watched, background, tokens, cross, inproc),
            _bare_row("SQLite", watched, background, tokens, bare)]
    from .pg_cases import pgserver

    try:
        pgserver.find_bindir()
    except pgserver.PgNotInstalled as exc:
        return rows + [dict(case="live tokens on PostgreSQL", setup=f"skipped: {exc}", vigil="-", peer="-",
                            ratio=None, goal="-", ok=None)]
    server = pgserver.PgServer().start()
    try:
        dsns = [server.create_database() for _ in range(3)]
        cross = _probe(dsns[0], "cross", watched, background, tokens)
        inproc = _probe(dsns[1], "inproc", watched, background, tokens)
        bare = _probe(dsns[2], "bare", watched, background, tokens)
        rows += [_row("PostgreSQL", "NOTIFY through a local server", watched, background, tokens, cross, inproc),
                 _bare_row("PostgreSQL", watched, background, tokens, bare)]
    finally:
        server.stop()
    return rows
