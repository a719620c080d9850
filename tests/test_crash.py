"""kill -9 the process driving runs at random points; restart; nothing completed runs twice."""

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_helpers import ROOT, vigil
from kernel.events import ActionRequested, ActionSucceeded, InterruptRaised
from kernel.store import Store

HERE = Path(__file__).resolve().parent

WORKER = """
import asyncio, sys
from kernel.registry import Registry
from kernel.engine.runtime import Runtime
from kernel.store import Store
import crash_workflows

async def main(db, start, which):
    registry = Registry()
    registry.add(crash_workflows.graph)
    registry.add(crash_workflows.agent)
    async with await Store.open(db) as store:
        async with Runtime(store, registry) as rt:
            for n in range(start):
                if which == "agent":
                    await rt.start("ledger-agent", {"messages": [{"role": "user", "content": f"acct-{n}"}]})
                else:
                    await rt.start("ledger", {"n": n})
            await rt.resume()
            print("driving", flush=True)
            await rt.settle()
    print("settled", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


async def _read_logs(db: Path, run_ids: list[str]) -> dict[str, list]:
    async with await Store.open(db, readonly=True) as store:
        return {r: [rec.event async for rec in store.iter_events(r)] for r in run_ids}


def _worker(db: Path, ledger: Path, start: int, which: str = "ledger") -> subprocess.Popen:
    env = {**os.environ, "VIGIL_LEDGER": str(ledger), "PYTHONPATH": f"{ROOT}{os.pathsep}{HERE}"}
    return subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(start), which], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _crash_and_recover(db, tmp_path: Path, kills: int, seed: int, which: str = "ledger") -> None:
    rng = random.Random(seed)
    ledger = tmp_path / "ledger.txt"
    killed = 0
    start = 4
    while killed < kills:
        proc = _worker(db, ledger, start, which)
        start = 0
        assert proc.stdout.readline().strip() == "driving", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.35))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        if proc.returncode == 0 and killed < kills:
            start = 4  # every run finished before the kill: give the next round new ones
    final = _worker(db, ledger, 0, which)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err

    runs = [json.loads(line) for line in vigil("runs", "--json", "--limit", "0", db=db).stdout.splitlines()]
    assert runs
    logs = asyncio.run(_read_logs(db, [r["run_id"] for r in runs]))
    for run in runs:
        assert run["status"] in ("completed", "waiting"), run
        if run["status"] == "waiting":
            kinds = {e.kind for e in logs[run["run_id"]] if isinstance(e, InterruptRaised)}
            assert kinds == {"in_doubt"}, run

    lines = ledger.read_text().splitlines()
    keys = collections.Counter(line.split(" ", 1)[0] for line in lines)
    twice = {k: n for k, n in keys.items() if n > 1}
    assert not twice, f"effects that ran twice: {twice}"
    # every tool call the log says completed is in the ledger, once
    for run_id, events in logs.items():
        tools = {e.action_id for e in events if isinstance(e, ActionRequested) and e.kind == "tool"}
        for e in events:
            if isinstance(e, ActionSucceeded) and e.action_id in tools:
                assert keys[f"{run_id}:{e.action_id}"] == 1, e.action_id
    verify = vigil("verify", db=db)
    assert verify.returncode == 0, verify.stdout


@pytest.mark.parametrize("seed", [1])
def test_kill_9_at_random_points_ten_times(both_backends, tmp_path, seed):
    _crash_and_recover(both_backends, tmp_path, kills=10, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_kill_9_at_random_points_fifty_times(both_backends, tmp_path, seed):
    _crash_and_recover(both_backends, tmp_path, kills=50, seed=seed)


@pytest.mark.parametrize("seed", [4])
def test_kill_9_agent_runs_ten_times(both_backends, tmp_path, seed):
    """The agent loop, one tool call a turn: run inline in the act step (no task of its own),
    it keeps every promise of the task it replaced across kill -9 and resume."""
    _crash_and_recover(both_backends, tmp_path, kills=10, seed=seed, which="agent")
    runs = [json.loads(line) for line in vigil("runs", "--json", "--limit", "0", db=both_backends).stdout.splitlines()]
    logs = asyncio.run(_read_logs(both_backends, [r["run_id"] for r in runs]))
    tools = [e.action_id for events in logs.values() for e in events
             if isinstance(e, ActionRequested) and e.kind == "tool"]
    assert tools and all(a.endswith(".act#t0.0") for a in tools), tools
